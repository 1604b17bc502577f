"""Waking the agents' long polls after a publish or rollout: PostgreSQL NOTIFY.

``config_changed_notify(org_id=…, cluster_ids=[…])`` sends ``NOTIFY canopy_meshconfig`` with a
JSON payload ``{"org": <org id>, "clusters": [<cluster id>, …]}``. NOTIFY is transactional:
called inside the transaction that changed the desired revisions (as the services do), it is
delivered when that transaction commits, never before, so a woken waiter always reads the new
state. Payloads stay under PostgreSQL's 8000-byte limit by splitting long id lists over several
notifications. A listener parses a payload with ``notify_payload_parse``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import connection

NOTIFY_CHANNEL = "canopy_meshconfig"
_IDS_PER_PAYLOAD = 500  # 500 ids of up to 12 digits: well under 8000 bytes


def config_changed_notify(*, org_id: int, cluster_ids: Iterable[int]) -> None:
    ids = sorted({int(i) for i in cluster_ids})
    if not ids:
        return
    with connection.cursor() as cursor:
        for start in range(0, len(ids), _IDS_PER_PAYLOAD):
            payload = json.dumps(
                {"org": int(org_id), "clusters": ids[start : start + _IDS_PER_PAYLOAD]},
                separators=(",", ":"),
            )
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])


def notify_payload_parse(payload: str) -> tuple[int, list[int]]:
    """(org id, cluster ids) of a ``canopy_meshconfig`` payload; ValueError if malformed."""
    try:
        data = json.loads(payload)
        return int(data["org"]), [int(i) for i in data["clusters"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a {NOTIFY_CHANNEL} payload: {payload[:200]!r}") from exc
