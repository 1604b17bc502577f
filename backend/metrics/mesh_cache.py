"""The mesh graph, kept a few seconds in Redis per (org, grouping, window, time).

The mesh page asks for the same graph again and again: its auto-refresh, every viewer of the
org, every tab, a switch of grouping and back. Building it costs five PromQL queries (tens of
ms quiet, several hundred under a heavy ingest load), so an answer is kept
``MESH_GRAPH_CACHE_SECONDS`` (default 10 s; 0 turns the cache off) and served as is until it
expires: at most that many seconds behind the store, never more (there is no other
invalidation). Keys are the org's id and the validated parameters only: one org never reads
another's graph, and bad parameters are refused before any key is built. A request without
``time`` ("now") shares one entry per (org, grouping, window): its answer says the time it
was built for. Redis unavailable: the graph is built, as without the cache.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from backend.metrics.mesh import GROUPINGS, WINDOWS, MeshQueryError, mesh_graph

log = logging.getLogger(__name__)


def _key(org_id: int, grouping: str, window: str, time_ms: int | None) -> str:
    at = "now" if time_ms is None else str(time_ms)
    return f"canopy:mesh-graph:v1:{org_id}:{grouping}:{window}:{at}"


def mesh_graph_cached(*, org_id: int, grouping: str, window: str, time_ms: int | None) -> dict:
    """``mesh_graph`` for the org, from the cache when an answer at most
    ``MESH_GRAPH_CACHE_SECONDS`` old is there. ``time_ms`` None: now."""
    if org_id is None:
        raise ValueError("the mesh graph needs an org")
    if grouping not in GROUPINGS:
        raise MeshQueryError(f"group must be one of {', '.join(GROUPINGS)}")
    if window not in WINDOWS:
        raise MeshQueryError(f"window must be one of {', '.join(WINDOWS)}")
    ttl = settings.MESH_GRAPH_CACHE_SECONDS

    def build() -> dict:
        at = time.time_ns() // 10**6 if time_ms is None else time_ms
        return mesh_graph(org_id=org_id, grouping=grouping, window=window, time_ms=at)

    if ttl <= 0:
        return build()
    key = _key(org_id, grouping, window, time_ms)
    try:
        blob = get_redis_connection("default").get(key)
    except RedisError as exc:
        log.warning("mesh graph cache unavailable: %s", exc)
        return build()
    if blob:
        return json.loads(blob)
    graph = build()
    try:
        get_redis_connection("default").set(key, json.dumps(graph, allow_nan=False), ex=ttl)
    except (RedisError, ValueError) as exc:  # ValueError: a NaN cannot be kept as JSON
        log.warning("mesh graph not cached: %s", exc)
    return graph
