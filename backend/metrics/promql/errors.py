"""PromQL errors, each carrying the ``errorType`` and HTTP status of Prometheus's API."""

from __future__ import annotations


class PromQLError(Exception):
    error_type = "internal"
    status = 500


class BadData(PromQLError):
    """The query does not parse or its parameters are invalid (400)."""

    error_type = "bad_data"
    status = 400


class ExecutionError(PromQLError):
    """The query parsed but cannot be evaluated, or exceeds a limit (422)."""

    error_type = "execution"
    status = 422


class QueryTimeout(PromQLError):
    error_type = "timeout"
    status = 503


class TooManySamples(ExecutionError):
    def __init__(self) -> None:
        super().__init__(
            "query processing would load too many samples into memory in query execution"
        )


class TooManySeries(ExecutionError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the query exceeded the maximum number of series (limit: {limit} series); "
            "narrow the selectors"
        )
