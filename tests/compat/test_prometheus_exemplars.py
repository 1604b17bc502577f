"""Exemplars from a real sender: Debian's Prometheus (2.42, ``exemplar-storage`` on) scrapes an
OpenMetrics target whose counter carries an exemplar and remote-writes it to Canopy with
``send_exemplars``; Canopy serves it back from ``/prometheus/api/v1/query_exemplars``."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from backend.tenancy.services import org_create, token_create, user_get_or_create
from tests.compat.prometheus_harness import PrometheusServer

pytestmark = pytest.mark.compat

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


class _OpenMetrics(BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.time()
        body = (
            "# TYPE checkout_requests counter\n"
            "# HELP checkout_requests Requests.\n"
            f'checkout_requests_total{{route="/cart"}} 7 # '
            f'{{trace_id="{TRACE_ID}",span_id="{SPAN_ID}"}} 1 {now - 1:.3f}\n'
            "# EOF\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenMetrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def orgs(transactional_db):
    owner = user_get_or_create(username="ops")
    return (
        org_create(slug="acme", name="Acme", owner=owner),
        org_create(slug="globex", name="Globex", owner=owner),
    )


def test_prometheus_remote_writes_exemplars_that_query_exemplars_serves(
    live_server, orgs, prometheus_binary, target
):
    acme, globex = orgs
    _, writer = token_create(org=acme, name="prometheus", scopes=["metrics:write"])
    _, reader = token_create(org=acme, name="grafana", scopes=["metrics:read"])
    _, outsider = token_create(org=globex, name="grafana", scopes=["metrics:read"])
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "shop", "static_configs": [{"targets": [target]}]}],
        "remote_write": [
            {
                "url": f"{live_server.url}/api/v1/push",
                "send_exemplars": True,
                "authorization": {"type": "Bearer", "credentials": writer},
                "queue_config": {"batch_send_deadline": "1s", "max_backoff": "2s"},
            }
        ],
    }
    url = f"{live_server.url}/prometheus/api/v1/query_exemplars"
    params = {
        "query": "checkout_requests_total",
        "start": time.time() - 600,
        "end": time.time() + 600,
    }
    found = []
    with PrometheusServer(
        config=config,
        binary=prometheus_binary,
        extra_args=["--enable-feature=exemplar-storage"],
    ) as prom:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            answer = requests.get(url, params, auth=("acme", reader), timeout=10).json()
            found = answer["data"]
        log = prom.log_tail()
    assert found, log
    (series,) = found
    assert series["seriesLabels"] == {
        "__name__": "checkout_requests_total",
        "route": "/cart",
        "job": "shop",
        "instance": target,
    }
    first = series["exemplars"][0]
    assert first["labels"] == {"trace_id": TRACE_ID, "span_id": SPAN_ID}
    assert first["value"] == "1" and abs(first["timestamp"] - time.time()) < 120
    # Prometheus sends each exemplar once per scrape it sees; Canopy keeps one per timestamp.
    stamps = [e["timestamp"] for e in series["exemplars"]]
    assert len(stamps) == len(set(stamps))
    other = requests.get(url, params, auth=("globex", outsider), timeout=10).json()
    assert other == {"status": "success", "data": []}
    assert "non-recoverable error" not in log
