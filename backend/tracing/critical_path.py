"""A trace's critical path: the chain of work that decided its duration.

Walking back from the root's end, the path follows the child that finished last; the parent's
own time between its children is on the path too. Children running past their parent's end
(asynchronous work) are clipped to it, and a child still running at the time already walked
back to is not the one its parent waited for (Jaeger's rule). The result is chronological
segments ``(span_id, start, end)`` that tile the root's duration exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAX_DEPTH = 500


class SpanTimes(Protocol):
    span_id: bytes
    parent_span_id: bytes | None
    start_ns: int
    duration_ns: int


def critical_path(spans: Sequence[SpanTimes]) -> list[tuple[bytes, int, int]]:
    if not spans:
        return []
    ids = {s.span_id for s in spans}
    children: dict[bytes, list[SpanTimes]] = {}
    roots = []
    for span in spans:
        if (
            span.parent_span_id
            and span.parent_span_id in ids
            and span.parent_span_id != span.span_id
        ):
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    root = min(roots or spans, key=lambda s: (s.start_ns, -s.duration_ns))
    segments: list[tuple[bytes, int, int]] = []
    seen: set[bytes] = set()

    def walk(span: SpanTimes, lo: int, hi: int, depth: int) -> None:
        """Cover exactly [lo, hi] (the part of ``span`` on the path) with segments."""
        seen.add(span.span_id)
        cursor = hi
        kids = sorted(
            children.get(span.span_id, []), key=lambda c: c.start_ns + c.duration_ns, reverse=True
        )
        for child in kids:
            if depth >= MAX_DEPTH or child.span_id in seen:
                break
            # Clipped to the parent; then, as Jaeger does, only a child that has finished by
            # the time walked back to can be the one the parent was waiting for.
            c_start = max(child.start_ns, lo)
            c_end = min(child.start_ns + child.duration_ns, hi)
            if c_end > cursor or c_end <= c_start:
                continue
            if cursor > c_end:
                segments.append((span.span_id, c_end, cursor))
            walk(child, c_start, c_end, depth + 1)
            cursor = c_start
        if cursor > lo:
            segments.append((span.span_id, lo, cursor))

    walk(root, root.start_ns, root.start_ns + root.duration_ns, 0)
    segments.reverse()
    return segments
