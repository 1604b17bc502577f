"""gunicorn's access log without the successful ingest requests.

Every Prometheus shard pushes every few seconds and every sidecar exports spans as often: an
access-log line for each would be most of the log and a visible share of the web processes'
CPU, and says nothing the ingest counters do not. Refused and failed ingest requests (4xx, 5xx)
and every other request are logged as usual.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

INGEST_PATHS = frozenset(
    {"/api/v1/push", "/api/prom/push", "/api/v1/write", "/v1/traces", "/api/v2/spans"}
)


class AccessLogger(Logger):
    def access(self, resp, req, environ, request_time) -> None:
        if req.path in INGEST_PATHS and resp.status_code is not None and resp.status_code < 300:
            return
        super().access(resp, req, environ, request_time)
