"""The agent API's own server: ``python -m backend.meshconfig.agent_server --bind HOST:PORT``.

A small ASGI app under uvicorn that serves only ``/api/v1/agent/config``,
``/api/v1/agent/status`` and ``/healthz`` (everything else is 404: the dashboard and the user
API stay on gunicorn). A waiting agent costs one connection and one ``asyncio.Event``, not a
thread: a thousand agents long-polling leave the gunicorn threads to everyone else. Database
work runs in a small thread pool (``CANOPY_AGENT_DB_THREADS``). ``make run`` starts it beside
gunicorn (``backend/runner.py``), compose as the ``agent-api`` service.

It bypasses Django's middleware on purpose: sync-only middleware (WhiteNoise) would make every
async request hop onto one shared thread, and the held ones would hold it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
django.setup()

from django.conf import settings  # noqa: E402

from backend.meshconfig import agent_api  # noqa: E402
from backend.meshconfig.agent_wakeups import wakeups  # noqa: E402

CONFIG_PATH = "/api/v1/agent/config"
STATUS_PATH = "/api/v1/agent/status"
HEALTH_PATH = "/healthz"
# every path ``application`` answers (anything else is 404); the reliability suite walks them
PATHS = (CONFIG_PATH, STATUS_PATH, HEALTH_PATH)


async def _send(send, reply: agent_api.Reply, *, head: bool = False) -> None:
    body = b"" if reply.body is None else json.dumps(reply.body).encode()
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if reply.body is not None:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _read_body(receive, limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` (read no further)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _config(scope, receive, headers: dict[str, str]) -> agent_api.Reply | None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    handler = asyncio.ensure_future(
        agent_api.config_reply(
            authorization=headers.get("authorization", ""),
            if_none_match=headers.get("if-none-match", ""),
            wait=(query.get("wait") or [None])[0],
            user_agent=headers.get("user-agent", ""),
            can_wait=True,
        )
    )
    # A client that goes away stops its wait (no event left behind for the rest of it).
    watcher = asyncio.ensure_future(_disconnected(receive))
    done, _ = await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if handler in done:
        watcher.cancel()
        return handler.result()
    handler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await handler
    return None


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await wakeups().close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    method, path = scope["method"], scope["path"]
    if path == CONFIG_PATH:
        if method not in ("GET", "HEAD"):
            reply = agent_api.Reply(405, {"detail": "use GET"}, {"Allow": "GET, HEAD"})
        else:
            reply = await _config(scope, receive, headers)
            if reply is None:
                return  # the agent hung up
        await _send(send, reply, head=method == "HEAD")
    elif path == STATUS_PATH:
        if method != "POST":
            await _send(send, agent_api.Reply(405, {"detail": "use POST"}, {"Allow": "POST"}))
            return
        body = await _read_body(receive, agent_api.MAX_STATUS_BODY_BYTES)
        if body is None:
            limit = agent_api.MAX_STATUS_BODY_BYTES
            reply = agent_api.Reply(413, {"detail": f"the report is over {limit} bytes"})
        else:
            reply = await agent_api.status_reply(
                authorization=headers.get("authorization", ""),
                body=body,
                user_agent=headers.get("user-agent", ""),
            )
        await _send(send, reply)
    elif path == HEALTH_PATH:
        await _send(send, agent_api.Reply(200, {"status": "ok", "waiting": wakeups().waiting()}))
    else:
        detail = "not found: this port serves /api/v1/agent/ only (the rest is on the web port)"
        await _send(send, agent_api.Reply(404, {"detail": detail}))


def _raise_open_files_limit() -> None:
    # One descriptor per waiting agent: take the hard limit the system allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default=settings.AGENT_API_BIND, help="HOST:PORT")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    _raise_open_files_limit()
    agent_api.use_thread_pool()
    uvicorn.run(
        application,
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        lifespan="on",
        access_log=args.access_log,
        log_level="info",
        limit_concurrency=settings.AGENT_API_MAX_CONNECTIONS,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=3,
        backlog=2048,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
