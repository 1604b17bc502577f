"""A real Prometheus (Debian's package) scrapes itself and remote-writes to Canopy."""

import time

import pytest

from backend.metrics.labels import Matcher
from backend.metrics.selectors import metadata_list, samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tenancy.models import Role
from backend.tenancy.services import member_add, org_create, token_create, user_get_or_create
from tests.compat.prometheus_harness import PrometheusServer

pytestmark = pytest.mark.compat


@pytest.fixture
def orgs(transactional_db):
    owner = user_get_or_create(username="ops")
    acme = org_create(slug="acme", name="Acme", owner=owner)
    globex = org_create(slug="globex", name="Globex", owner=owner)
    member_add(org=globex, user=user_get_or_create(username="x"), role=Role.VIEWER, actor=owner)
    yield acme, globex


def _wait_for_series(org, name, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        org_drain(signal="metrics", org_id=org.pk)
        found = series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", name)])
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{name} did not arrive within {timeout}s")


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_prometheus_self_scrape_arrives_under_the_right_org(
    live_server, orgs, prometheus_binary, auth
):
    acme, globex = orgs
    _, secret = token_create(org=acme, name="prometheus", scopes=["metrics:write"])
    credentials = {"bearer_token": secret} if auth == "bearer" else {"basic_auth": ("acme", secret)}
    with PrometheusServer(
        binary=prometheus_binary,
        remote_write_url=f"{live_server.url}/api/v1/push",
        remote_write_extra={"metadata_config": {"send": True, "send_interval": "1s"}},
        **credentials,
    ) as prom:
        up = _wait_for_series(acme, "up")
        build_info = _wait_for_series(acme, "prometheus_build_info")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not metadata_list(
            org_id=acme.pk, metric="prometheus_build_info"
        ):
            time.sleep(0.5)
        log = prom.log_tail()
        port = prom.port

    (labels,) = up.values()
    assert labels == {"__name__": "up", "job": "prometheus", "instance": f"127.0.0.1:{port}"}
    (info,) = build_info.values()
    assert info["version"] and info["goversion"].startswith("go")
    samples = samples_for_series(org_id=acme.pk, series=up, start_ms=0, end_ms=2**62)
    ((ts, values),) = samples.values()
    assert len(ts) >= 1 and set(values) == {1.0}
    assert abs(ts[-1] / 1000 - time.time()) < 120
    (meta,) = metadata_list(org_id=acme.pk, metric="prometheus_build_info")
    assert meta[1] == "gauge" and "build" in meta[2].lower(), meta
    # Nothing under the other org, and Prometheus saw no errors from us.
    assert series_match(org_id=globex.pk, matchers=[Matcher("__name__", "=~", ".+")]) == {}
    assert "non-recoverable error" not in log and "status 4" not in log
