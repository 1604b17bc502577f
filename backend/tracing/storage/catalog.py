"""The service / operation / resource catalogs the spans point to (rows and blocks alike), and
the span-to-row helpers the outbox shares with them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from backend.tenancy.ttlcache import TTLCache


def json_default(value: Any):
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """JSON for a jsonb column. PostgreSQL cannot store NUL in text or jsonb: senders' NULs
    become U+FFFD (rare, so the clean-up runs only when one is there)."""
    text = json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        text = json.dumps(
            _without_nul(value), default=json_default, ensure_ascii=False, separators=(",", ":")
        )
    return text


SERVICE_NAME_MAX = 512  # the catalogs' column sizes
OPERATION_NAME_MAX = 1024


def _service_text(service: str) -> str:
    return service.replace("\x00", "\ufffd")[:SERVICE_NAME_MAX]


def _operation_text(name: str) -> str:
    return name.replace("\x00", "\ufffd")[:OPERATION_NAME_MAX]


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value or None


# --- catalogs ---------------------------------------------------------------------------------

# Catalog rows never change once created; each process remembers those it has seen.
_services: TTLCache[tuple[int, str], int] = TTLCache(ttl=3600, max_entries=100_000)
_operations: TTLCache[tuple[int, int, str, int], int] = TTLCache(ttl=3600, max_entries=500_000)
_resources: TTLCache[tuple[int, int], int] = TTLCache(ttl=3600, max_entries=100_000)


def caches_clear() -> None:
    for cache in (_services, _operations, _resources):
        cache.clear()


def _service_ids(cur, org_id: int, names: list[str]) -> dict[str, int]:
    names = sorted(set(names))  # key order: concurrent inserts lock the index in one order
    cur.execute(
        "INSERT INTO trace_services (org_id, name, first_seen) "
        "SELECT %s, n, now() FROM unnest(%s::text[]) AS n ON CONFLICT DO NOTHING",
        [org_id, names],
    )
    cur.execute(
        "SELECT name, id FROM trace_services WHERE org_id = %s AND name = ANY(%s)", [org_id, names]
    )
    return dict(cur.fetchall())


def _operation_ids(cur, org_id: int, keys: list[tuple[int, str, int]]) -> dict[tuple, int]:
    keys = sorted(set(keys))
    columns = [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]
    cur.execute(
        """
        INSERT INTO trace_operations (org_id, service_id, name, kind, first_seen)
        SELECT %s, s, n, k, now() FROM unnest(%s::int[], %s::text[], %s::smallint[]) AS t(s, n, k)
        ON CONFLICT DO NOTHING
        """,
        [org_id, *columns],
    )
    cur.execute(
        """
        SELECT o.service_id, o.name, o.kind, o.id FROM trace_operations o
        JOIN unnest(%s::int[], %s::text[], %s::smallint[]) AS t(s, n, k)
          ON o.service_id = t.s AND o.name = t.n AND o.kind = t.k
        WHERE o.org_id = %s
        """,
        [*columns, org_id],
    )
    return {(sid, name, kind): oid for sid, name, kind, oid in cur.fetchall()}


def resource_id(cur, org_id: int, resource: dict[str, Any], memo: dict[int, int]) -> int:
    obj = id(resource)  # the spans of one resource share one dict: hash it once per request
    if obj in memo:
        return memo[obj]
    text = dumps(resource)
    digest = int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True
    )
    rid = _resources.get((org_id, digest))
    if rid is None:
        cur.execute(
            "INSERT INTO trace_resources (org_id, attributes_hash, attributes) "
            "VALUES (%s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
            [org_id, digest, text],
        )
        cur.execute(
            "SELECT id FROM trace_resources WHERE org_id = %s AND attributes_hash = %s",
            [org_id, digest],
        )
        rid = cur.fetchone()[0]
        _resources.set((org_id, digest), rid)
    memo[obj] = rid
    return rid


def catalog_ids(
    cur, org_id: int, triples: Iterable[tuple[str, str, int]]
) -> dict[tuple[str, str, int], tuple[int, int]]:
    """(service id, operation id) of each distinct (service, operation, kind) as the spans
    carry them, the names cleaned once per triple; new names are added to the catalogs."""
    cleaned = {
        (service, name, kind): (_service_text(service), _operation_text(name), kind)
        for service, name, kind in triples
    }
    services = {t[0] for t in cleaned.values()}
    missing = [n for n in services if _services.get((org_id, n)) is None]
    if missing:
        for name, sid in _service_ids(cur, org_id, missing).items():
            _services.set((org_id, name), sid)
    service_ids = {n: _services.get((org_id, n)) for n in services}
    ops = {(service_ids[service], name, kind) for service, name, kind in cleaned.values()}
    missing_ops = [k for k in ops if _operations.get((org_id, *k)) is None]
    if missing_ops:
        for key, oid in _operation_ids(cur, org_id, missing_ops).items():
            _operations.set((org_id, *key), oid)
    out = {}
    for triple, (service, name, kind) in cleaned.items():
        sid = service_ids[service]
        out[triple] = (sid, _operations.get((org_id, sid, name, kind)))
    return out


def names_get(
    *, org_id: int, service_ids: Sequence[int], operation_ids: Sequence[int], resource_ids
) -> tuple[dict[int, str], dict[int, str], dict[int, dict]]:
    """Service names, operation names and resource attributes by id (block readers)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, name FROM trace_services WHERE org_id = %s AND id = ANY(%s)",
            [org_id, list(service_ids)],
        )
        services = dict(cur.fetchall())
        cur.execute(
            "SELECT id, name FROM trace_operations WHERE org_id = %s AND id = ANY(%s)",
            [org_id, list(operation_ids)],
        )
        operations = dict(cur.fetchall())
        cur.execute(
            "SELECT id, attributes FROM trace_resources WHERE org_id = %s AND id = ANY(%s)",
            [org_id, list(resource_ids)],
        )
        resources = {rid: json.loads(a) if isinstance(a, str) else a for rid, a in cur.fetchall()}
    return services, operations, resources
