"""A real Prometheus (Debian's package) with ``remote_read`` pointed at Canopy answers PromQL
over Canopy's data, and only the data of the org its token belongs to."""

from __future__ import annotations

import time

import pytest

from backend.tenancy.services import org_create, token_create, user_get_or_create
from tests.compat.prometheus_harness import PrometheusServer
from tests.metrics.samples import counter, load

pytestmark = pytest.mark.compat
NAME = "canopy_requests_total"


@pytest.fixture
def orgs(transactional_db):
    owner = user_get_or_create(username="ops")
    return (
        org_create(slug="acme", name="Acme", owner=owner),
        org_create(slug="globex", name="Globex", owner=owner),
    )


def test_prometheus_remote_read_answers_with_canopys_data(live_server, orgs, prometheus_binary):
    acme, globex = orgs
    now_ms = int(time.time() * 1000) // 1000 * 1000
    base = now_ms - 600_000
    load(
        acme,
        {
            counter(NAME, app="reviews"): [(i * 15, 10.0 * i) for i in range(41)],
            counter(NAME, app="ratings"): [(i * 15, 2.0 * i) for i in range(41)],
        },
        base_ms=base,
    )
    load(globex, {counter("canopy_requests_total", app="secret"): [(0, 1.0)]}, base_ms=base)
    _, secret = token_create(org=acme, name="prometheus", scopes=["metrics:read"])
    config = {
        "global": {"scrape_interval": "1m"},
        "remote_read": [
            {
                "url": f"{live_server.url}/prometheus/api/v1/read",
                "read_recent": True,
                "basic_auth": {"username": "acme", "password": secret},
            }
        ],
    }
    with PrometheusServer(config=config, binary=prometheus_binary) as prom:
        at = (base + 600_000) / 1000
        result = prom.query("sum by (app) (rate(canopy_requests_total[5m]))", time=at)
        rates = {r["metric"]["app"]: float(r["value"][1]) for r in result}
        raw = prom.query("canopy_requests_total", time=at)
        log = prom.log_tail()
    assert rates == pytest.approx({"reviews": 10 / 15, "ratings": 2 / 15}), log
    assert {r["metric"]["app"]: r["value"][1] for r in raw} == {"reviews": "400", "ratings": "80"}
