"""The agent API: what a cluster's ``canopy-agent`` calls, with its cluster token.

- ``GET /api/v1/agent/config``: the cluster's desired bundle, ``ETag: "<digest>"``. With
  ``If-None-Match: "<digest>"`` and ``?wait=N`` (1-60 s) the request is held until the desired
  bundle differs (answered within a second of the rollout's commit, woken by PostgreSQL NOTIFY)
  or N seconds pass (304).
- ``POST /api/v1/agent/status``: ``{"revision", "attempt_id", "state": "ACK"|"NACK",
  "error"}``; idempotent per attempt id.

Every call is a heartbeat. The handlers here are transport-free coroutines returning a
``Reply``: ``agent_server.py`` serves them from a small ASGI app (uvicorn, its own port: long
polls cost an event, not a thread), and ``agent_urls.py`` exposes the same handlers as Django
async views on the main server, where requests are never held (``wait`` counts as 0) because a
gunicorn thread would be; their answers name the agent server's URL (``Canopy-Agent-Url``) so
an agent started with the web URL moves its polls there.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from backend.meshconfig import agent_selectors, selectors, services
from backend.meshconfig.agent_wakeups import wakeups
from backend.tenancy.access import AccessError, access_from_authorization
from backend.tenancy.models import Scope
from backend.tenancy.ttlcache import TTLCache

MAX_WAIT_SECONDS = 60
# A heartbeat is written at most this often per cluster and wait (silence only counts after
# 3 x the wait, a minute or more): the poll an agent opens right after its report skips it.
HEARTBEAT_RESOLUTION_SECONDS = 5.0
_heartbeats: TTLCache[tuple[int, int, str], bool] = TTLCache(ttl=HEARTBEAT_RESOLUTION_SECONDS)
MAX_STATUS_BODY_BYTES = 64 * 1024
AGENT_URL_HEADER = "Canopy-Agent-Url"
_MAX_ETAGS = 8


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _refusal(status: int, detail: str, **headers: str) -> Reply:
    return Reply(status, {"detail": detail}, headers)


# Database work runs off the event loop. In the agent server a small pool of threads does it
# (each keeps its own connection, cleaned as Django does between requests); elsewhere (Django's
# own views, tests) it runs in the caller's thread as any sync_to_async call would.
_pool: ThreadPoolExecutor | None = None


def use_thread_pool(threads: int | None = None) -> None:
    global _pool
    _pool = ThreadPoolExecutor(
        max_workers=threads or settings.AGENT_API_DB_THREADS, thread_name_prefix="agent-db"
    )


_CONNECTION_CHECK_SECONDS = 10.0
_checked = threading.local()


def _clean(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    # What Django does between requests (drop a connection that broke or outlived
    # CONN_MAX_AGE), but at most every few seconds per thread and after any error: done before
    # every call it would also re-arm the health check, one more round trip per call.
    now = time.monotonic()
    if now - getattr(_checked, "at", 0.0) > _CONNECTION_CHECK_SECONDS:
        close_old_connections()
        _checked.at = now
    try:
        return fn(**kwargs)
    except DatabaseError:
        close_old_connections()
        _checked.at = time.monotonic()
        raise


async def _db(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    if _pool is None:
        return await sync_to_async(fn, thread_sensitive=True)(**kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, _clean, fn, kwargs)


def _cluster_for(*, authorization: str, scope: str):
    """The cluster of the agent token in ``authorization``, or a refusal. A token that is not
    a cluster's agent token (a user's token, of this org or another) finds no cluster: 404,
    like a cluster that does not exist."""
    try:
        access = access_from_authorization(authorization)
    except AccessError as exc:
        return _refusal(exc.status, exc.message, **{"WWW-Authenticate": "Bearer"})
    if access is None:
        return _refusal(
            401,
            "authentication required: Authorization: Bearer <the cluster's agent token>",
            **{"WWW-Authenticate": "Bearer"},
        )
    cluster = agent_selectors.agent_cluster(token=access.token)
    if cluster is None:
        return _refusal(404, "no cluster has this token: use the cluster's agent token")
    if not access.allows(scope):
        return _refusal(403, f"this token lacks the {scope} scope")
    return cluster


async def _resolve_woken(org_id: int, cluster_ids: list[int]) -> dict[int, tuple]:
    return await _db(agent_selectors.agent_bundles, org_id=org_id, cluster_ids=cluster_ids)


def _wait_seconds(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    try:
        wait = int(raw)
    except ValueError:
        raise ValueError("wait must be a whole number of seconds") from None
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait must be between 0 and {MAX_WAIT_SECONDS} seconds")
    return wait


def _etags(header: str) -> set[str]:
    """The digests an If-None-Match header names (weak or strong, quoted or not)."""
    tags = set()
    for part in header.split(",")[:_MAX_ETAGS]:
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if tag:
            tags.add(tag)
    return tags


async def config_reply(
    *,
    authorization: str,
    if_none_match: str = "",
    wait: str | None = None,
    user_agent: str = "",
    can_wait: bool = False,
) -> Reply:
    try:
        wait_seconds = _wait_seconds(wait)
    except ValueError as exc:
        return _refusal(400, str(exc))
    found = await _db(_cluster_for, authorization=authorization, scope=Scope.CONFIG_READ)
    if isinstance(found, Reply):
        return found
    cluster = found
    wanted = _etags(if_none_match)
    held = wait_seconds if (can_wait and wanted) else 0
    beat = (cluster.pk, held, user_agent[:100])
    if _heartbeats.get(beat) is None:
        await _db(
            services.cluster_seen,
            cluster=cluster,
            wait_seconds=held,
            agent_version=user_agent[:100] or None,
        )
        _heartbeats.set(beat, True)
    # Register before the first read: a rollout committed between the read and the wait still
    # sets the event.
    registry = wakeups(resolver=_resolve_woken) if held else None
    waiter = registry.register(cluster.pk) if registry else None
    try:
        number, digest, resources = await _db(agent_selectors.agent_bundle, cluster=cluster)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + held
        while waiter is not None and digest in wanted:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                break
            # The listener read this cluster's new bundle with the others it woke; without
            # that (a reconnect, a failed read) read it here.
            hint = waiter.take_hint()
            if hint is None:
                hint = await _db(agent_selectors.agent_bundle, cluster=cluster)
            number, digest, resources = hint
    finally:
        if registry is not None:
            registry.unregister(cluster.pk, waiter)
    headers = {"ETag": f'"{digest}"', "Cache-Control": "no-store"}
    if digest in wanted:
        return Reply(304, None, headers)
    body = {"cluster": cluster.name, "revision": number, "digest": digest, "resources": resources}
    return Reply(200, body, headers)


def _report(*, cluster, document: dict[str, Any], user_agent: str) -> Reply:
    try:
        status = services.cluster_report(
            cluster=cluster,
            revision=document.get("revision"),
            attempt_id=document.get("attempt_id"),
            state=document.get("state"),
            error=document.get("error"),
            agent_version=str(document.get("agent_version") or user_agent)[:100],
        )
    except services.MeshConfigError as exc:
        return _refusal(400, "; ".join(exc.messages))
    return Reply(
        200,
        {
            "cluster": cluster.name,
            "state": selectors.cluster_state(status),
            "desired": status.desired.number if status.desired_id else None,
            "applied": status.applied.number if status.applied_id else None,
        },
    )


async def status_reply(*, authorization: str, body: bytes, user_agent: str = "") -> Reply:
    found = await _db(_cluster_for, authorization=authorization, scope=Scope.CONFIG_REPORT)
    if isinstance(found, Reply):
        return found
    if len(body) > MAX_STATUS_BODY_BYTES:
        return _refusal(413, f"the report is over {MAX_STATUS_BODY_BYTES} bytes")
    try:
        document = json.loads(body or b"null")
    except (ValueError, RecursionError):
        return _refusal(400, "the body must be JSON")
    if not isinstance(document, dict):
        return _refusal(
            400, 'the body must be a JSON object: {"revision", "attempt_id", "state", "error"}'
        )
    return await _db(_report, cluster=found, document=document, user_agent=user_agent)


# Django views (the main server). Token-authenticated, no cookies: CSRF does not apply.


def _render(reply: Reply) -> HttpResponse:
    if reply.body is None:
        response = HttpResponse(status=reply.status)
    else:
        response = JsonResponse(reply.body, status=reply.status)
    for name, value in reply.headers.items():
        response[name] = value
    return response


@csrf_exempt
async def agent_config_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _render(_refusal(405, "use GET", Allow="GET, HEAD"))
    reply = await config_reply(
        authorization=request.headers.get("Authorization", ""),
        if_none_match=request.headers.get("If-None-Match", ""),
        wait=request.GET.get("wait"),
        user_agent=request.headers.get("User-Agent", ""),
        can_wait=False,  # a held request would hold a gunicorn thread: the agent server waits
    )
    response = _render(reply)
    # Where long polls are served: the agent moves there (same host only, see agent/watch.py).
    response[AGENT_URL_HEADER] = settings.AGENT_PUBLIC_URL
    return response


@csrf_exempt
async def agent_status_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(_refusal(405, "use POST", Allow="POST"))
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _render(_refusal(400, "Content-Length must be a number"))
    if length > MAX_STATUS_BODY_BYTES:
        return _render(_refusal(413, f"the report is over {MAX_STATUS_BODY_BYTES} bytes"))
    reply = await status_reply(
        authorization=request.headers.get("Authorization", ""),
        body=request.body,
        user_agent=request.headers.get("User-Agent", ""),
    )
    return _render(reply)
