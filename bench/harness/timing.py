"""Wall and CPU time of a call repeated in process (the decoder benchmarks)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CallTimes:
    """Times the calls given to :meth:`time` while :meth:`more` says so: for at least
    ``seconds`` and ``min_calls`` calls. CPU is process time, which leaves out time the VM's
    CPU was taken away."""

    def __init__(self, *, seconds: float, min_calls: int) -> None:
        self.deadline = time.perf_counter() + seconds
        self.min_calls = min_calls
        self.walls: list[float] = []
        self.cpus: list[float] = []

    def more(self) -> bool:
        return time.perf_counter() < self.deadline or len(self.walls) < self.min_calls

    def time(self, call: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)
        return result

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.walls, n=10)[-1]

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def mean_cpu(self) -> float:
        return sum(self.cpus) / len(self.cpus)
