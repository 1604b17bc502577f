"""The trace search in a real Chromium: it starts on the busiest service, the "go to trace" box
takes the short ids the list shows (one match opens it, several are listed, none is said), and
the scatter plot is one tab stop walked with the arrow keys."""

import re
import time

import pytest
from django.test import Client

from backend.pipeline.drain import org_drain
from backend.tenancy.services import token_create
from tests.e2e.test_traces_pages import (
    CHECKOUT_TRACE,
    GLOBEX_TRACE,
    MINUTE_NS,
    S,
    log_in,
    searched,
    send,
    shop,  # noqa: F401  (the fixture)
)

pytestmark = pytest.mark.e2e
TWIN_A = "deadbeef01" + "a" * 22
TWIN_B = "deadbeef02" + "b" * 22


@pytest.fixture
def twins(shop):  # noqa: F811
    _, token = token_create(org=shop, name="twins", scopes=["traces:write"])
    now = time.time_ns()
    client = Client()
    send(client, token, TWIN_A, now - 3 * MINUTE_NS, [S("e000000000000001", "web", "GET /a", 0, 4)])
    send(client, token, TWIN_B, now - 2 * MINUTE_NS, [S("e000000000000002", "web", "GET /b", 0, 6)])
    org_drain(signal="traces", org_id=shop.pk)
    return shop


def lookup(page, text: str) -> None:
    page.fill("#trace-lookup", text)
    page.press("#trace-lookup", "Enter")
    page.wait_for_load_state()


def test_busiest_service_short_ids_and_a_keyboard_scatter(page, live_server, twins):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/traces")
    searched(page)
    # catalog has the most spans in the last hour (two in each of five traces)
    assert page.input_value("#service") == "catalog"
    assert "service=catalog" in page.url
    assert page.inner_text("#service-hint") == "Busiest in the last 1h: 10 spans"

    page.select_option("#service", "frontend")
    page.wait_for_url(re.compile(r"service=frontend"))
    searched(page)
    assert page.is_hidden("#service-hint")
    short = page.inner_text(f".trace-item[data-trace-id='{CHECKOUT_TRACE}'] .trace-short-id")
    assert short == CHECKOUT_TRACE[:8]

    # The scatter: no dot is a tab stop; the chart is one, walked with the arrow keys.
    assert page.locator(".scatter .dot-link").count() == 6
    assert page.locator(".scatter a, .scatter [tabindex]:not(svg)").count() == 0
    page.focus(".scatter svg")
    page.keyboard.press("ArrowRight")
    assert page.locator(".scatter .dot-link.current").count() == 1
    assert page.is_visible(".scatter .chart-tip")
    assert page.inner_text("#scatter-current").startswith("1 of 6: frontend:")
    page.keyboard.press("End")
    assert page.inner_text("#scatter-current").startswith("6 of 6:")
    # Tab leaves the chart for the list, the keyboard path through the traces.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('trace-row')")
    page.focus(".scatter svg")
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/traces/[0-9a-f]{32}\?org=acme$"))
    page.go_back()
    searched(page)

    # The short id the list shows opens its trace.
    lookup(page, short)
    page.wait_for_url(f"{live_server.url}/traces/{CHECKOUT_TRACE}?org=acme")
    page.wait_for_selector(".wf-row")

    # A prefix two traces share: both are listed to choose from.
    page.goto(f"{live_server.url}/traces")
    lookup(page, "deadbeef")
    page.wait_for_selector("#trace-matches li a")
    matches = page.locator("#trace-matches li a")
    assert matches.count() == 2
    assert "2 traces start with deadbeef" in page.inner_text("#trace-matches h2")
    assert "web: GET /b" in matches.nth(0).inner_text()  # the most recent first
    matches.nth(1).click()
    page.wait_for_url(f"{live_server.url}/traces/{TWIN_A}?org=acme")
    page.wait_for_selector(".wf-row")

    # None (another org's trace included): said plainly, next to the box.
    page.goto(f"{live_server.url}/traces")
    lookup(page, GLOBEX_TRACE[:8])
    assert "No trace with spans in the last 24 h" in page.inner_text(".msg-error")
    assert page.input_value("#trace-lookup") == GLOBEX_TRACE[:8]
    lookup(page, "dead")
    assert "too short" in page.inner_text(".msg-error")
    assert not errors, errors
