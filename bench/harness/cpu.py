"""CPU seconds of process trees and of the whole machine, read from /proc."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime+cutime+cstime seconds) of ``pid``, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK


def _all_procs() -> dict[int, tuple[int, float]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _descendants(roots: set[int], procs: dict[int, tuple[int, float]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return seen


def _pgrep(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return {int(x) for x in out.stdout.split()}


class TreeCpu:
    """CPU seconds of the process trees rooted at explicit pids and/or pgrep matches.

    Includes reaped children (cutime/cstime), so short-lived workers are not lost.
    Our own process tree (the benchmark and its senders) is always excluded.
    """

    def __init__(self, pids: list[int], patterns: list[str]) -> None:
        self.pids = set(pids)
        self.patterns = patterns

    def __bool__(self) -> bool:
        return bool(self.pids or self.patterns)

    def _tree(self) -> tuple[set[int], dict[int, tuple[int, float]]]:
        procs = _all_procs()
        roots = set(self.pids)
        for pattern in self.patterns:
            roots |= _pgrep(pattern)
        # Our own tree (the senders) is never counted, except servers we started ourselves
        # and named explicitly as roots.
        ours = _descendants({os.getpid()}, procs) - _descendants(self.pids, procs)
        return _descendants(roots - ours, procs) - ours, procs

    def pids_now(self) -> set[int]:
        return self._tree()[0]

    def __call__(self) -> float:
        tree, procs = self._tree()
        return sum(procs[p][1] for p in tree)


def machine_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def background_load(seconds: float) -> float:
    """CPUs busy on the machine (all processes) over the next ``seconds``: other work skews
    every figure, so the benchmarks say how much there was just before they measure."""
    m0, t0 = machine_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (machine_cpu_seconds() - m0) / (time.monotonic() - t0)


def wait_idle(cpu: Callable[[], float], timeout: float, idle_share: float = 0.05) -> float:
    """Wait until the tree uses < ``idle_share`` of a core for 1s; returns when idling began."""
    deadline = time.monotonic() + timeout
    prev_t, prev = time.monotonic(), cpu()
    idle_since = None
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now_t, now = time.monotonic(), cpu()
        if (now - prev) / (now_t - prev_t) < idle_share:
            idle_since = idle_since or prev_t
            if now_t - idle_since >= 1.0:
                return idle_since
        else:
            idle_since = None
        prev_t, prev = now_t, now
    return time.monotonic()
