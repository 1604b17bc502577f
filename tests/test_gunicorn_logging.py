"""The web processes' access log leaves out successful ingest requests only."""

from __future__ import annotations

from types import SimpleNamespace

from gunicorn.config import Config

from backend.gunicorn_logging import AccessLogger


def test_successful_ingest_requests_are_not_access_logged(tmp_path):
    log_file = tmp_path / "access.log"
    config = Config()
    config.set("accesslog", str(log_file))
    logger = AccessLogger(config)

    def request(path, status):
        req = SimpleNamespace(path=path, method="POST", query="", version=(1, 1), headers=[])
        resp = SimpleNamespace(status=f"{status} X", status_code=status, sent=0, headers=[])
        environ = {"REQUEST_METHOD": "POST", "RAW_URI": path, "SERVER_PROTOCOL": "HTTP/1.1"}
        logger.access(resp, req, environ, SimpleNamespace(seconds=0, microseconds=1000))

    request("/api/v1/push", 204)
    request("/v1/traces", 200)
    request("/api/v1/push", 400)
    request("/api/v1/push", 503)
    request("/prometheus/api/v1/query", 200)
    for handler in logger.access_log.handlers:
        handler.flush()
    lines = log_file.read_text().splitlines()
    assert [line.split('"')[1] for line in lines] == [
        "POST /api/v1/push HTTP/1.1",
        "POST /api/v1/push HTTP/1.1",
        "POST /prometheus/api/v1/query HTTP/1.1",
    ]
    assert [line.split('" ')[1].split()[0] for line in lines] == ["400", "503", "200"]
