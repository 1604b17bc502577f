"""The main pages at 820 x 1180 (an iPad held upright), in a real Chromium, with data: the
sidebar folds above the content, nothing makes the page scroll sideways (wide tables scroll
inside their card), the trace waterfall's span names keep a readable column (ellipsis, the
whole name in the title), and the mesh graph's labels are drawn at a readable size."""

from __future__ import annotations

import pytest

from tests.e2e.demo import MAIN_PAGES, demo_org, log_in, visit
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = pytest.mark.e2e

# The page's own width against the viewport, and every element wider than the viewport that
# is not inside a scrolling box.
OVERFLOW = """() => {
  const vw = window.innerWidth;
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (!r.width || r.right <= vw + 1) continue;
    let clipped = false;
    for (let n = el.parentElement; n && n !== document.body; n = n.parentElement) {
      const o = getComputedStyle(n).overflowX;
      if (o !== "visible") { clipped = true; break; }
    }
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "");
    if (!clipped) wide.push(`${name}.${[...el.classList].join(".")} right=${Math.round(r.right)}`);
  }
  const scrollWidth = document.scrollingElement.scrollWidth;
  return { scrollWidth, innerWidth: vw, wide: wide.slice(0, 8) };
}"""


@pytest.fixture
def tablet(browser):
    context = browser.new_context(viewport={"width": 820, "height": 1180}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def demo(transactional_db, live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return demo_org(live_server.url)


def test_no_page_scrolls_sideways_at_820px(tablet, live_server, demo):
    page = tablet
    log_in(page, live_server.url)
    overflowing = {}
    for name, path, ready in MAIN_PAGES:
        visit(page, live_server.url, path, ready)
        got = page.evaluate(OVERFLOW)
        if got["scrollWidth"] > got["innerWidth"] or got["wide"]:
            overflowing[name] = got
        # The sidebar folds: above the content, not beside it.
        side = page.locator(".sidebar").bounding_box()
        content = page.locator("main, .content").first.bounding_box()
        assert side["width"] > 700 and content["y"] >= side["y"] + side["height"] - 1, name
    assert not overflowing, overflowing


def test_wide_tables_scroll_inside_their_card(tablet, live_server, demo):
    page = tablet
    log_in(page, live_server.url)
    visit(page, live_server.url, "/mesh?group=workload", "#mesh-edges tr")
    table = page.locator("#mesh-edges").locator("xpath=ancestor::table")
    sizes = table.evaluate(
        """t => {
          let box = t;
          while (box && getComputedStyle(box).overflowX === "visible") box = box.parentElement;
          return {overflow: getComputedStyle(box).overflowX, client: box.clientWidth,
                  scroll: box.scrollWidth, page: document.scrollingElement.scrollWidth};
        }"""
    )
    assert sizes["overflow"] in ("auto", "scroll")
    assert sizes["page"] <= 820


def test_waterfall_names_stay_readable_at_820px(tablet, live_server, demo):
    page = tablet
    log_in(page, live_server.url)
    visit(page, live_server.url, f"/traces/{demo.trace_id}", ".wf-name")
    names = page.evaluate(
        """() => [...document.querySelectorAll(".wf-row")].map(r => {
          const n = r.querySelector(".wf-name");
          const bar = r.querySelector(".wf-track").getBoundingClientRect();
          return {width: n.getBoundingClientRect().width, title: n.title, text: n.textContent,
                  clipped: n.scrollWidth > n.clientWidth,
                  ellipsis: getComputedStyle(n).textOverflow, track: bar.width};
        })"""
    )
    assert len(names) == 7
    for n in names:
        assert n["width"] >= 60, n  # never clipped to nothing
        assert n["title"] == n["text"], n  # the whole name on hover
        assert n["ellipsis"] == "ellipsis"
        assert n["track"] > 100, n  # the bars shrink, the names keep their column
    # The deepest names are clipped, with an ellipsis: the label column does not grow past
    # its share and squeeze the bars away.
    label = page.locator(".wf-head-label").bounding_box()
    assert 180 <= label["width"] <= 400


def test_mesh_labels_are_drawn_readable_at_820px(tablet, live_server, demo):
    page = tablet
    log_in(page, live_server.url)
    visit(page, live_server.url, "/mesh?group=workload", "#mesh-edges tr")
    page.wait_for_function("window.canopyMesh && window.canopyMesh.cy.nodes().length === 4")
    sizes = page.evaluate(
        """() => {
          const cy = window.canopyMesh.cy;
          const px = (e) => parseFloat(e.style("font-size")) * cy.zoom();
          return {zoom: cy.zoom(), min: cy.minZoom(), max: cy.maxZoom(),
                  nodes: cy.nodes().map(px), edges: cy.edges().map(px),
                  colour: cy.nodes()[0].style("color")};
        }"""
    )
    assert min(sizes["nodes"]) >= 11, sizes
    assert min(sizes["edges"]) >= 10, sizes
    assert sizes["min"] > 0.1 and sizes["max"] <= 4, sizes
    # Zooming out as far as allowed keeps the labels readable.
    page.evaluate("window.canopyMesh.cy.zoom(window.canopyMesh.cy.minZoom())")
    smallest = page.evaluate(
        """() => {
          const cy = window.canopyMesh.cy;
          return Math.min(...cy.nodes().map(e => parseFloat(e.style("font-size")) * cy.zoom()));
        }"""
    )
    assert smallest >= 11, smallest


def test_service_map_labels_keep_their_size_at_820px(tablet, live_server, demo):
    """The trace-derived service map is drawn at its natural size and scrolls inside its
    box, so its names are never scaled down to fit."""
    page = tablet
    log_in(page, live_server.url)
    visit(page, live_server.url, "/traces/map", ".map-node .node-name")
    got = page.evaluate(
        """() => ({
          names: [...document.querySelectorAll(".map-node .node-name")].map(
            t => t.getBoundingClientRect().height),
          overflow: getComputedStyle(document.querySelector(".map-scroll")).overflowX,
          page: document.scrollingElement.scrollWidth,
        })"""
    )
    assert len(got["names"]) >= 4, got
    assert min(got["names"]) >= 12, got
    assert got["overflow"] in ("auto", "scroll") and got["page"] <= 820, got
