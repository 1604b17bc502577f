"""The mesh graph in a real Chromium, fed through Prometheus remote write like an Istio
mesh's Prometheus would: the edge is drawn and its rate shown."""

import pytest
import requests

from backend.metrics.storage import blocks
from backend.pipeline.drain import org_drain
from backend.tenancy.services import org_create, token_create, user_get_or_create
from bench import istio_payloads as ip
from tests.e2e.test_metrics_explorer import PASSWORD, log_in

pytestmark = pytest.mark.e2e


def requests_series(reporter, src, dst, code):
    return tuple(
        sorted(
            {
                "__name__": "istio_requests_total",
                "reporter": reporter,
                "source_workload": src,
                "source_workload_namespace": "bookinfo" if src != "unknown" else "unknown",
                "source_app": src.rsplit("-", 1)[0],
                "destination_workload": dst,
                "destination_workload_namespace": "bookinfo",
                "destination_app": dst.rsplit("-", 1)[0],
                "destination_service_name": dst.rsplit("-", 1)[0],
                "destination_service_namespace": "bookinfo",
                "response_code": code,
                "request_protocol": "http",
                "connection_security_policy": "mutual_tls"
                if reporter == "destination"
                else "unknown",
            }.items()
        )
    )


@pytest.fixture
def mesh_org(transactional_db, live_server):
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    _, secret = token_create(org=org, name="prom", scopes=["metrics:write"])
    # Ten minutes of 15 s scrapes: productpage → reviews at 8 req/s (1 of them 503),
    # and an uninstrumented caller into productpage at 2 req/s.
    now = blocks.now_ms() // 15_000 * 15_000
    stamps = list(range(now - 600_000, now + 1, 15_000))
    series = {
        requests_series("source", "productpage-v1", "reviews-v2", "200"): 7.0,
        requests_series("source", "productpage-v1", "reviews-v2", "503"): 1.0,
        requests_series("destination", "productpage-v1", "reviews-v2", "200"): 7.0,
        requests_series("destination", "unknown", "productpage-v1", "200"): 2.0,
    }
    values = [[per_s * (t - stamps[0]) / 1000 for t in stamps] for per_s in series.values()]
    body = ip.compress(ip.encode_write_request(list(series), stamps, values))
    response = requests.post(
        f"{live_server.url}/api/v1/push",
        data=body,
        timeout=10,
        headers={**ip.REMOTE_WRITE_HEADERS, "Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 204, response.text
    org_drain(signal="metrics", org_id=org.pk)
    return org


def test_the_graph_shows_the_edge_and_its_rate(page, live_server, mesh_org, tmp_path):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, "ada")
    page.click("nav >> text=Mesh")
    page.wait_for_url("**/mesh")
    page.wait_for_function("window.canopyMesh && window.canopyMesh.cy.edges().length === 2")
    assert page.evaluate("window.canopyMesh.cy.nodes().length") == 3
    row = page.locator("#mesh-edges tr", has_text="productpage (bookinfo) → reviews (bookinfo)")
    assert row.locator("td").nth(1).inner_text() == "8 rps"
    assert row.locator("td").nth(2).inner_text() == "12.5%"
    assert row.locator("td").nth(4).inner_text() == "100%"  # from the destination's report
    outside = page.locator("#mesh-edges tr", has_text="unknown → productpage")
    assert outside.locator("td").nth(1).inner_text() == "2 rps"
    assert outside.locator("td").nth(6).inner_text() == "destination"
    # The edge's details link to its failing traces and to the explorer, pre-filled.
    row.locator("button").click()
    detail = page.locator("#mesh-detail")
    assert "8 /s" in detail.inner_text()
    traces = detail.locator("a", has_text="Failing traces").get_attribute("href")
    assert "service=reviews.bookinfo" in traces and "errorsOnly=true" in traces
    explorer = detail.locator("a", has_text="explorer").get_attribute("href")
    assert "istio_requests_total" in explorer
    # Grouped by workload, the version shows in the node names.
    page.select_option("#mesh-group", "workload")
    page.wait_for_selector("#mesh-edges tr:has-text('reviews-v2 (bookinfo)')")
    page.screenshot(path=str(tmp_path / "mesh.png"), full_page=True)
    assert errors == []


def test_an_empty_mesh_says_what_to_send(page, live_server, transactional_db):
    user = user_get_or_create(username="ada", password=PASSWORD)
    org_create(slug="acme", name="Acme Mesh", owner=user)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/mesh")
    page.wait_for_selector("#mesh-empty:not([hidden])")
    assert "/api/v1/push" in page.inner_text("#mesh-empty")
