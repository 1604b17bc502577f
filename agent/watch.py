"""The agent's loop: long-poll the desired bundle, check it, apply it, report ACK or NACK.

Every event is one log line (``event=... key=value``). Network errors and server restarts are
retried with capped exponential backoff and jitter; a status report keeps its attempt id across
retries, so Canopy counts it once.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from dataclasses import dataclass, field

from agent import __version__
from agent.bundle import BundleError, bundle_from_json
from agent.client import CanopyClient, Refused, TransportError

log = logging.getLogger("canopy-agent")


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.attempt = 0


def event(name: str, **values) -> None:
    parts = [f"event={name}"]
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        if any(c.isspace() for c in text) or '"' in text or not text:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    log.info(" ".join(parts))


@dataclass
class Agent:
    client: CanopyClient
    applier: object  # DirectoryApplier | KubectlApplier
    wait: int = 30
    retry_failed_after: float = 60.0
    once: bool = False
    sleep: object = time.sleep
    backoff: Backoff = field(default_factory=Backoff)
    stopping: bool = False
    _moved_from: str | None = None
    _hints_after: float = 0.0

    def _follow(self, hint: str) -> None:
        if time.monotonic() < self._hints_after:
            return
        before = self.client.base
        moved = self.client.follow(hint)
        if moved:
            self._moved_from = before
            event("url_moved", url=moved, reason="the server serves long polls there")

    def run(self) -> int:
        """Until stopped (or after one attempt with ``once``): 0 when the last attempt was
        ACKed, 1 after a NACK, 2 when Canopy refuses the token."""
        event("start", version=__version__, url=self.client.base, target=self.applier.describe())
        etag: str | None = None
        failed_at: float | None = None
        result = 0
        while not self.stopping:
            started = time.monotonic()
            wait = 0 if self.once else self.wait
            if failed_at is not None:
                # Hold the poll no longer than the retry of the refused revision is due.
                due = self.retry_failed_after - (started - failed_at)
                wait = max(1, min(wait, math.ceil(due)))
            try:
                answer = self.client.config(etag=etag, wait=wait)
            except TransportError as exc:
                if self._moved_from and self.backoff.attempt >= 3:
                    event("url_back", url=self._moved_from, reason="the agent URL is unreachable")
                    self.client.base, self._moved_from = self._moved_from, None
                    self._hints_after = time.monotonic() + 60  # then try the agent URL again
                delay = self.backoff.next_delay()
                event("unreachable", error=exc, retry_in=f"{delay:.1f}s")
                self.sleep(delay)
                continue
            except Refused as exc:
                event("refused", status=exc.status, error=exc.message)
                if self.once or exc.status in (401, 403):
                    return 2
                self.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            if not self.once and answer.agent_url:
                self._follow(answer.agent_url)
            if answer.status == 304:
                now = time.monotonic()
                if failed_at is not None and now - failed_at >= self.retry_failed_after:
                    etag, failed_at = None, None  # fetch the failed revision again and retry
                elif now - started < min(1.0, wait / 2):
                    self.sleep(1.0)  # a server that does not hold long polls: do not spin
                continue
            ok = self.attempt(answer.document, answer.etag)
            etag = answer.etag
            failed_at = None if ok else time.monotonic()
            result = 0 if ok else 1
            if self.once:
                return result
        return result

    def attempt(self, document, etag: str | None) -> bool:
        attempt_id = str(uuid.uuid4())
        revision = document.get("revision") if isinstance(document, dict) else None
        if isinstance(document, dict) and revision is None and document.get("resources") == []:
            # Nothing rolled out to this cluster yet: nothing to apply, and that is in sync.
            event("no_revision", detail="no revision rolled out to this cluster yet")
            self.report(None, attempt_id, "ACK", None)
            return True
        try:
            bundle = bundle_from_json(document, etag_digest=etag)
        except BundleError as exc:
            event("invalid", revision=revision, resource=exc.resource, error=exc.message)
            self.report(revision, attempt_id, "NACK", exc.detail())
            return False
        if self.applier.applied() == (bundle.revision, bundle.digest):
            event("already_applied", revision=bundle.revision, digest=bundle.digest[:12])
            self.report(bundle.revision, attempt_id, "ACK", None)
            return True
        event("applying", revision=bundle.revision, resources=len(bundle.resources))
        try:
            summary = self.applier.apply(bundle)
        except BundleError as exc:
            event("nack", revision=bundle.revision, resource=exc.resource, error=exc.message)
            self.report(bundle.revision, attempt_id, "NACK", exc.detail())
            return False
        event("applied", revision=bundle.revision, digest=bundle.digest[:12], detail=summary)
        self.report(bundle.revision, attempt_id, "ACK", None)
        return True

    def report(self, revision: int | None, attempt_id: str, state: str, error: dict | None) -> None:
        """Report until Canopy has it (the same attempt id each time: counted once)."""
        if not isinstance(revision, int) or isinstance(revision, bool):
            revision = None
        backoff = Backoff()
        while not self.stopping:
            try:
                self.client.status(
                    revision=revision,
                    attempt_id=attempt_id,
                    state=state,
                    error=error,
                    agent=f"canopy-agent/{__version__}",
                )
            except TransportError as exc:
                delay = backoff.next_delay()
                event("report_retry", state=state, error=exc, retry_in=f"{delay:.1f}s")
                self.sleep(delay)
                continue
            except Refused as exc:
                event("report_refused", state=state, status=exc.status, error=exc.message)
                return
            event("reported", revision=revision, state=state, attempt=attempt_id[:8])
            return
