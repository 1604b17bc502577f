"""Waking long-polling agents: one PostgreSQL LISTEN per server process, many waiters.

A waiting request registers a ``Waiter`` (an ``asyncio.Event``) under its cluster id; one
background task per event loop holds a single autocommit connection with ``LISTEN
canopy_meshconfig`` and sets the events of the clusters each notification names (the rollout
and rollback services NOTIFY in their transaction, so a woken waiter reads committed state). A
thousand waiters cost a thousand events and one connection, not a thread or a connection each.

A rollout to a thousand clusters wakes a thousand waiters at once. Rather than a thousand reads
of the same new state, the listener reads the desired bundles of all the woken clusters in one
query (``resolver``) and hands each waiter its own: the answers go out together.

Nothing is lost across a lost connection: whenever the listener (re)subscribes it wakes every
waiter, and each re-reads its desired bundle; a waiter registers *before* its first read, so a
notification between its read and its wait still wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from django.db import connections

from backend.meshconfig.notify import NOTIFY_CHANNEL, notify_payload_parse

log = logging.getLogger(__name__)

_RETRY_MAX_SECONDS = 5.0


def listen_conninfo() -> str:
    """libpq connection string of Django's default database (the test database in tests)."""
    params = connections["default"].get_connection_params()
    keys = ("dbname", "user", "password", "host", "port", "sslmode", "options")
    return psycopg.conninfo.make_conninfo(
        **{k: str(params[k]) for k in keys if params.get(k) not in (None, "")}
    )


# (org id, cluster ids) -> {cluster id: what its waiters should be handed}
Resolver = Callable[[int, list[int]], Awaitable[dict[int, Any]]]


class Waiter:
    """One waiting request: ``event`` is set when its cluster's desired state may have
    changed; ``hint`` is then that state as read for it (None: read it yourself)."""

    __slots__ = ("event", "hint")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.hint: Any = None

    def take_hint(self) -> Any:
        hint, self.hint = self.hint, None
        self.event.clear()
        return hint


class Wakeups:
    """Per-event-loop registry of waiting clusters and the listener that wakes them."""

    def __init__(self, conninfo: str | None = None, resolver: Resolver | None = None):
        self._conninfo = conninfo
        self.resolver = resolver
        self._waiters: dict[int, set[Waiter]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def register(self, cluster_id: int) -> Waiter:
        self._ensure_listener()
        waiter = Waiter()
        self._waiters[cluster_id].add(waiter)
        return waiter

    def unregister(self, cluster_id: int, waiter: Waiter) -> None:
        waiters = self._waiters.get(cluster_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[cluster_id]

    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def wake(self, cluster_ids, hints: dict[int, Any] | None = None) -> None:
        for cluster_id in cluster_ids:
            for waiter in self._waiters.get(cluster_id, ()):
                waiter.hint = (hints or {}).get(cluster_id)
                waiter.event.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.hint = None
                waiter.event.set()

    async def _notified(self, payload: str) -> None:
        try:
            org_id, cluster_ids = notify_payload_parse(payload)
        except ValueError:
            log.warning("ignored a malformed %s payload", NOTIFY_CHANNEL)
            return
        waiting = [i for i in cluster_ids if i in self._waiters]
        if not waiting:
            return
        hints = None
        if self.resolver is not None:
            try:
                hints = await self.resolver(org_id, waiting)
            except Exception:  # the waiters then read for themselves
                log.exception("reading the woken clusters' bundles failed")
        self.wake(waiting, hints)

    def _ensure_listener(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def _listen_forever(self) -> None:
        delay = 0.1
        conninfo = self._conninfo or listen_conninfo()
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    self.wake_all()  # anything sent while we were not listening
                    delay = 0.1
                    async for notify in conn.notifies():
                        await self._notified(notify.payload)
            except asyncio.CancelledError:
                raise
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("meshconfig listener lost (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(_RETRY_MAX_SECONDS, delay * 2)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_by_loop: dict[int, Wakeups] = {}


def wakeups(*, resolver: Resolver | None = None) -> Wakeups:
    """The running event loop's registry (an ASGI server has one loop; a WSGI request run
    through async_to_sync gets a short-lived one and never waits)."""
    loop = asyncio.get_running_loop()
    registry = _by_loop.get(id(loop))
    if registry is None:
        registry = _by_loop[id(loop)] = Wakeups(resolver=resolver)
    elif resolver is not None and registry.resolver is None:
        registry.resolver = resolver
    return registry
