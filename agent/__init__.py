"""``canopy-agent``: the in-cluster side of mesh configuration push.

It dials out to Canopy with a cluster token, long-polls ``GET /api/v1/agent/config`` for the
cluster's desired revision, checks the bundle locally, hands it to an applier (a directory for
GitOps tools, or ``kubectl``) and reports ``ACK`` or ``NACK`` on ``POST /api/v1/agent/status``.

It speaks only HTTP to Canopy and imports nothing of ``backend``, ``ingest`` or ``web``
(an import-linter contract keeps it so): it must run anywhere Python and PyYAML do.
"""

__version__ = "0.1.0"
