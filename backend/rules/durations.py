"""Prometheus's durations (``model.ParseDuration`` / ``Duration.String``), in milliseconds."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
_MAX_MS = 2**63 // 1_000_000  # Go's time.Duration is int64 nanoseconds


class DurationError(ValueError):
    pass


def duration_parse(text: str) -> int:
    """``"1h30m"`` -> 5_400_000. ``"0"`` is zero; an empty string is not a duration."""
    if text == "0":
        return 0
    match = _DURATION.match(text)
    if not text or match is None:
        raise DurationError(f'not a valid duration string: "{text}"')
    total = sum(int(g) * unit for g, (_, unit) in zip(match.groups(), _UNITS, strict=True) if g)
    if total > _MAX_MS:
        raise DurationError(f'not a valid duration string: "{text}"')
    return total


def duration_format(ms: int) -> str:
    """Prometheus's shortest form: 90_000 -> ``"1m30s"``, 0 -> ``"0s"``."""
    if ms == 0:
        return "0s"
    out = []
    for name, unit in _UNITS:
        if ms >= unit:
            out.append(f"{ms // unit}{name}")
            ms %= unit
    return "".join(out)
