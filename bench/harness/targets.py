"""One remote-write target measured: the senders' run, until when every sample was
acknowledged and then stored (queryable), and the CPU its process tree and the machine used."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.harness.cpu import background_load, machine_cpu_seconds, wait_idle
from bench.harness.senders import Payloads, SendResult, run_senders


class Unavailable(Exception):
    """A figure cannot be measured for this target (endpoint missing, query unsupported...)."""


def prometheus_api_query(
    url: str, expr: str, at: float, headers: dict[str, str] | None = None
) -> float:
    """Value of a one-element instant vector from a Prometheus-compatible API (0 if empty)."""
    try:
        r = requests.post(
            url, data={"query": expr, "time": repr(at)}, headers=headers or {}, timeout=30
        )
    except requests.RequestException as exc:
        raise Unavailable(f"query endpoint unreachable: {exc}") from None
    if r.status_code in (404, 405, 501):
        raise Unavailable(f"query endpoint answered {r.status_code}")
    try:
        body = r.json()
    except ValueError:
        raise Unavailable(f"query endpoint answered {r.status_code} without JSON") from None
    if r.status_code in (401, 403):
        raise Unavailable(f"query endpoint answered {r.status_code}: {body}")
    if body.get("status") != "success":
        raise Unavailable(f"query failed: {body.get('errorType')}: {body.get('error')}")
    result = body["data"]["result"]
    if body["data"].get("resultType") == "scalar":
        return float(result[1])
    return float(result[0]["value"][1]) if result else 0.0


def wait_stored(
    check: Callable[[], float],
    expected: int,
    cpu: Callable[[], float] | None,
    timeout: float,
) -> tuple[float, float | None, float, str | None]:
    """Poll ``check`` until it reaches ``expected``.

    Returns (t_stored, server CPU just before the successful query, machine CPU likewise, note).
    Raises Unavailable when the check cannot run, TimeoutError on timeout.
    """
    deadline = time.monotonic() + timeout
    interval = 0.05
    got = 0.0
    while True:
        cpu_before = cpu() if cpu else None
        mach_before = machine_cpu_seconds()
        got = check()
        if got >= expected:
            note = None
            if got > expected:
                note = f"stored count {got:.0f} > {expected} (data left from an earlier run?)"
            return time.monotonic(), cpu_before, mach_before, note
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {got:.0f} of {expected} samples visible after {timeout}s")
        time.sleep(interval)
        interval = min(0.5, interval * 1.5)


@dataclass
class TargetResult:
    name: str
    samples: int
    send: SendResult | None = None
    stored_s: float | None = None
    stored_note: str | None = None
    server_cpu: float | None = None
    cpu_note: str | None = None
    machine_cpu: float | None = None
    bytes_on_disk: int | None = None
    bytes_note: str | None = None
    details: list[str] = field(default_factory=list)

    @property
    def ack_s(self) -> float | None:
        if self.send is None or self.send.t_ack is None:
            return None
        return self.send.t_ack - self.send.t0

    @property
    def ack_rate(self) -> float | None:
        return self.send.ok_samples / self.ack_s if self.ack_s else None

    @property
    def stored_rate(self) -> float | None:
        return self.samples / self.stored_s if self.stored_s else None

    def per_m(self, value: float | None) -> float | None:
        return None if value is None else value / (self.samples / 1e6)

    @property
    def bytes_per_sample(self) -> float | None:
        return None if self.bytes_on_disk is None else self.bytes_on_disk / self.samples

    def as_dict(self) -> dict[str, Any]:
        s = self.send
        return {
            "target": self.name,
            "samples": self.samples,
            "ok_samples": s.ok_samples if s else None,
            "statuses": dict(s.statuses) if s else None,
            "first_error": s.first_error if s else None,
            "ack_seconds": self.ack_s,
            "ack_samples_per_s": self.ack_rate,
            "stored_seconds": self.stored_s,
            "stored_samples_per_s": self.stored_rate,
            "stored_note": self.stored_note,
            "server_cpu_s_per_m": self.per_m(self.server_cpu),
            "sender_cpu_s_per_m": self.per_m(s.sender_cpu) if s else None,
            "machine_cpu_s_per_m": self.per_m(self.machine_cpu),
            "bytes_per_sample": self.bytes_per_sample,
            "details": self.details,
        }


def measure_target(
    name: str,
    url: str,
    headers: dict[str, str],
    payloads: Payloads,
    *,
    cpu: Callable[[], float] | None,
    stored_check: Callable[[], float] | None,
    ready_timeout: float,
    settle_timeout: float,
) -> TargetResult:
    res = TargetResult(name, payloads.total_samples)
    marks: dict[str, float | None] = {}
    background = background_load(1.0)
    res.details.append(f"background load before the run: {background:.2f} of {os.cpu_count()} CPUs")

    def on_start() -> None:
        marks["cpu0"] = cpu() if cpu else None
        marks["mach0"] = machine_cpu_seconds()

    res.send = run_senders(url, headers, payloads, on_start)
    cpu_end = cpu() if cpu else None
    mach_end = machine_cpu_seconds()
    if res.send.ok_samples < payloads.total_samples:
        res.stored_note = "not every request was acknowledged"
    elif stored_check is not None:
        try:
            t_stored, cpu_at, mach_at, note = wait_stored(
                stored_check, payloads.total_samples, cpu, ready_timeout
            )
            res.stored_s = t_stored - res.send.t0
            res.stored_note = note
            cpu_end, mach_end = (cpu_at if cpu else None), mach_at
        except Unavailable as exc:
            res.stored_note = f"n/a: {exc}"
        except TimeoutError as exc:
            res.stored_note = f"n/a: {exc}"
    else:
        res.stored_note = "n/a: no stored-check query"
    if res.stored_s is None and cpu is not None and settle_timeout > 0:
        # cannot tell when storage finished: count CPU until the server tree goes idle
        wait_idle(cpu, settle_timeout)
        cpu_end, mach_end = cpu(), machine_cpu_seconds()
        res.cpu_note = "CPU counted until the server tree went idle"
    if cpu is not None and marks.get("cpu0") is not None and cpu_end is not None:
        res.server_cpu = cpu_end - marks["cpu0"]
    res.machine_cpu = mach_end - marks["mach0"]
    return res
