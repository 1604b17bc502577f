"""Strict readers of request parameters, one per type, each with bounds: whatever a caller
sends, they return a value the code after them can use (in int64 arithmetic, in PostgreSQL,
in numpy) or raise :class:`ParamError`, which every API answers with a 400 in its own shape.

Pure Python (no Django): the Prometheus API, the tracing APIs and the management API share
them. API-specific formats (Prometheus's float-or-RFC-3339 times, Go durations) are read in
their API's module and bounded with the constants here.
"""

from __future__ import annotations

import re

# Bounds every time and duration fits in, with room for int64 arithmetic in nanoseconds
# (±9.2e18): times between 1678 and 2262 in ns are what int64 nanoseconds can hold; Canopy
# accepts times from 1970 minus a little to 9999 only where they are kept in milliseconds.
MAX_TIME_S = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_TIME_NS_S = 9_000_000_000  # the largest seconds value nanoseconds in int64 can hold (2255)
MAX_DURATION_S = 292 * 365 * 86_400  # Prometheus's and Go's: int64 nanoseconds
MAX_TEXT_LENGTH = 4096
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


class ParamError(ValueError):
    """A request parameter that cannot be read: a 400 with this message."""


def text(name: str, value: str | None, *, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    """A text parameter: no NUL (PostgreSQL refuses it in text), at most ``max_length``."""
    if value is None:
        return None
    if "\x00" in value:
        raise ParamError(f"{name} must not contain a NUL character")
    if len(value) > max_length:
        raise ParamError(f"{name} is longer than {max_length} characters")
    return value


def integer(name: str, value: str | None, *, minimum: int, maximum: int) -> int | None:
    """A decimal integer within [minimum, maximum]; None when absent or empty."""
    if value is None or value == "":
        return None
    value = value.strip()
    if not _INTEGER.fullmatch(value):
        raise ParamError(f"{name} must be an integer, not {value[:40]!r}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise ParamError(f"{name} must be between {minimum} and {maximum}, not {number}")
    return number


def limit(name: str, value: str | None, *, default: int, maximum: int) -> int:
    """A result-count limit: absent or 0 means ``default``; larger than ``maximum`` is cut to
    it (as Jaeger and Zipkin do); negative is refused."""
    number = integer(name, value, minimum=0, maximum=2**63 - 1)
    return min(number or default, maximum)
