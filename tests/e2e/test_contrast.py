"""Contrast of every text on every main page, in a real Chromium, with data on the pages:
each visible text node (and form value or placeholder) against the colour behind it (the
first opaque background up its ancestors, translucent ones composited, opacity applied)
must reach WCAG AA: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). Text drawn on
canvases (uPlot's axes, Cytoscape's labels) is not in the DOM: their colours are checked
in their own tests (test_820px.py for the graph's labels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.demo import MAIN_PAGES, demo_org, log_in, visit
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = pytest.mark.e2e
AUDIT = (Path(__file__).parent / "js" / "contrast.js").read_text()


def audit(page) -> list[dict]:
    return page.evaluate(AUDIT)


def report(found: dict[str, list[dict]]) -> str:
    lines = []
    for name, offenders in found.items():
        for o in offenders:
            lines.append(
                f"{name}: {o['ratio']}:1 < {o['need']}:1  {o['fg']} on {o['bg']}  "
                f"{o['where']}  {o['text']!r}"
            )
    return "\n".join(lines)


@pytest.fixture
def demo(transactional_db, live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return demo_org(live_server.url)


def test_every_text_on_every_main_page_has_aa_contrast(page, live_server, demo):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    found = {}
    page.goto(f"{live_server.url}/login/")
    found["login"] = audit(page)
    log_in(page, live_server.url)
    for name, path, ready in MAIN_PAGES:
        visit(page, live_server.url, path, ready)
        found[name] = audit(page)
    found = {k: v for k, v in found.items() if v}
    assert not found, "text below WCAG AA contrast:\n" + report(found)


def test_the_audit_finds_low_contrast_text(page, live_server, demo):
    """The check can fail: grey-on-white text, text faded by an ancestor's opacity, and text
    on a translucent badge over a dark card are caught; large text is held to 3:1."""
    log_in(page, live_server.url)
    page.evaluate(
        """() => {
          const main = document.querySelector("main") || document.body;
          main.insertAdjacentHTML("afterbegin", `
            <div style="background:#fff"><p id="grey" style="color:#999">grey on white</p></div>
            <div style="opacity:.4"><p id="faded" style="color:#15202b">faded by opacity</p></div>
            <div style="background:#15202b"><span id="badge"
              style="background:rgba(255,255,255,.1);color:#5b6b7a">badge</span></div>
            <p id="big" style="color:#8a8a8a;font-size:28px">large grey</p>
            <p id="fine" style="color:#5b6b7a">muted but fine</p>`);
        }"""
    )
    offenders = {o["text"]: o for o in audit(page)}
    assert {"grey on white", "faded by opacity", "badge"} <= offenders.keys()
    assert offenders["grey on white"]["ratio"] == pytest.approx(2.85, abs=0.01)
    assert "large grey" not in offenders  # 3.45:1 passes for large text
    assert "muted but fine" not in offenders
