"""Mesh configuration push: validated, versioned Istio configuration per tenant.

This docstring is the contract between the user side (this room's models, validation, services,
selectors, user API: ``api.py``/``urls.py``) and the agent side (the agent API in
``agent_api.py``/``agent_urls.py``, the long-poll server, the ``canopy-agent`` CLI). The names
below are stable; they may gain keyword arguments with defaults, never lose or rename any.

Models (``models.py``; all tenant data, ``Model.objects.for_org(org)``)
-----------------------------------------------------------------------
- ``Cluster``: org, ``name`` (DNS-1123 label, unique per org), ``labels`` (dict str→str),
  ``agent_token`` (one-to-one ``tenancy.ApiToken`` with scopes ``config:read`` +
  ``config:report``; ``Scope.CONFIG_REPORT`` is new in tenancy), ``created_by``, ``created_at``.
  ``cluster.status`` is its ``ClusterStatus`` (created with the cluster).
- ``Revision``: append-only; org, ``number`` (1, 2, … per org), ``digest`` (SHA-256 hex of the
  canonical bundle, ``bundle.bundle_digest``), ``parent``, ``author`` / ``author_token``,
  ``message``, ``resources`` (the canonical bundle: a list of resource dicts), ``validation``
  (``{"valid", "findings": [...]}``), ``forced``, ``rollback_of``, ``created_at``.
- ``ClusterStatus`` (one per cluster): ``desired`` / ``desired_at``, ``applied`` /
  ``applied_at``, ``attempted`` (last revision ACKed or NACKed), ``state`` (``SyncState``:
  SYNCED, APPLYING, NACK, STALE, DISCONNECTED — stored as of the last write; show
  ``selectors.cluster_state(status)``, which adds DISCONNECTED after 3 x ``poll_wait_seconds``
  of silence and STALE after 60 s without an answer), ``last_seen``, ``poll_wait_seconds``,
  ``agent_version``, ``error`` (dict), ``last_attempt_id``.
- ``AgentReport``: one per (cluster, attempt id): revision, ``ACK``/``NACK``, error, agent
  version (the newest 100 per cluster are kept).
- ``TelemetrySettings``: per org; sampling percent, traces, metrics, custom tags.

The agent side's calls
----------------------
Authenticate with ``backend.tenancy.access`` as every endpoint does, then:

- ``selectors.cluster_for_token(*, token) -> Cluster | None``: the cluster of an agent token
  (``access.token``); None for any other token (answer 404: a user's token, or another org's
  cluster token, sees no bundle). Check ``access.allows("config:read")`` for GET and
  ``access.allows("config:report")`` for the status report.
- ``selectors.bundle_for_cluster(*, cluster) -> (revision | None, digest, resources)``: the
  desired bundle; ``(None, bundle.EMPTY_DIGEST, [])`` before any rollout. The ETag is
  ``'"%s"' % digest``. Two revisions with the same resources have the same digest (a rollback),
  and the status treats them as the same: SYNCED means applied digest == desired digest.
- ``services.cluster_seen(*, cluster, wait_seconds=None, agent_version=None)``: a heartbeat
  for a GET (records ``last_seen`` and the poll's wait).
- ``services.cluster_report(*, cluster, revision, attempt_id, state, error=None,
  agent_version="") -> ClusterStatus``: ``revision`` is a number (or None for the empty
  bundle), ``state`` ``"ACK"`` or ``"NACK"``; idempotent per ``attempt_id`` (a repeat is only a
  heartbeat); every call is a heartbeat; raises ``services.MeshConfigError`` (a
  ``ValidationError``: answer 400) for an unknown revision, a bad state or attempt id.
- Waking waiters: ``notify.config_changed_notify(*, org_id, cluster_ids)`` (also importable
  from ``services``) sends PostgreSQL ``NOTIFY canopy_meshconfig`` (``notify.NOTIFY_CHANNEL``)
  with payload ``{"org": <id>, "clusters": [<cluster id>, …]}`` (parse with
  ``notify.notify_payload_parse``). The services call it inside the transaction that changes
  desired revisions (rollout, rollback), so it is delivered at commit. LISTEN on that channel
  (e.g. psycopg's ``AsyncConnection`` with autocommit, ``LISTEN canopy_meshconfig``) and, on a
  notification naming a waiting cluster, re-read ``bundle_for_cluster``.

Setting up clusters and revisions (tests, the user API)
-------------------------------------------------------
- ``services.cluster_create(*, org, name, labels=None, actor=None) -> (Cluster, secret)``
- ``services.cluster_token_rotate(*, cluster, actor=None) -> secret``,
  ``services.cluster_delete(*, cluster, actor=None)``
- ``services.revision_publish(*, org, resources, message="", parent=None, check_parent=False,
  actor=None, force=False, known=None) -> Published(revision, report)``; raises
  ``services.Blocked`` (validation errors; ``.report``) or ``services.StaleParent``.
- ``services.rollout_create(*, org, revision, clusters=None | selector=None, actor=None)``
  (``revision`` is a number; ``clusters`` names) → notifies.
- ``services.revision_rollback(*, org, number, actor=None, force=False)`` → notifies.

``actor`` is what ``tenancy.services.audit_record`` takes: a user, a token principal
(``request.user`` of a token request) or None.

User API paths (``urls.py``, under ``/api/v1/``): ``clusters``, ``clusters/<name>``,
``config/validate``, ``config/revisions``, ``config/revisions/<n>``,
``config/revisions/<a>/diff/<b>``, ``config/revisions/<n>/rollback``, ``config/rollouts``,
``config/status``, ``config/telemetry``. A cluster's agent token is refused there (403): it
reads its own bundle only, through the agent API.
"""
