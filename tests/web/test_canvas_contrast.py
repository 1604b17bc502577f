"""Contrast of the text drawn on canvases — the mesh graph's labels (Cytoscape) and the charts'
axes and revision markers (uPlot) — which the in-browser audit (tests/e2e/test_contrast.py)
cannot see: computed from the configured colours (web/frontend/src/lib/canvas-colours.json,
which mesh.js and chart.js import) against everything that can lie behind the text, to WCAG
AA's 4.5:1. The dashboard has one (light) theme."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "web" / "frontend" / "src"
COLOURS = json.loads((SRC / "lib" / "canvas-colours.json").read_text())
CSS = (ROOT / "web" / "static" / "web" / "canopy.css").read_text()
AA = 4.5


def _rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    assert re.fullmatch(r"[0-9a-fA-F]{6}", h), colour
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        x = c / 255
        return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4

    r, g, b = map(channel, _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def over(top: str, alpha: float, below: str) -> str:
    """``top`` at ``alpha`` opacity composited over ``below``."""
    mixed = (
        round(alpha * t + (1 - alpha) * b) for t, b in zip(_rgb(top), _rgb(below), strict=True)
    )
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _css_var(name: str) -> str:
    return re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{3,6}})", CSS).group(1)


def _text_on_backgrounds() -> list[tuple[str, str, str]]:
    """(what, text colour, a colour behind it) for every canvas text and every background it
    can be drawn on."""
    g, c = COLOURS["graph"], COLOURS["chart"]
    # Under a label's translucent box: the graph's background, a node's fill, any edge's or
    # node border's colour (labels cross lines), each maybe under the selection overlay.
    under = [g["background"], g["node_fill"], g["edge_quiet"], *g["health"].values()]
    under += [over(g["selected_overlay"], 0.15, u) for u in list(under)]
    cases = []
    for what, text, opacity in (
        ("node label", g["node_label"], g["node_label_background_opacity"]),
        ("edge label", g["edge_label"], g["edge_label_background_opacity"]),
    ):
        for u in under:
            cases.append((what, text, over(g["label_background"], opacity, u)))
    # Axis ticks sit outside the plot on the card or the page; a marker's label inside the
    # plot, where grid lines can cross it.
    for bg in c["backgrounds"]:
        cases.append(("chart axis", c["axis_text"], bg))
        cases.append(("revision marker label", c["marker"], bg))
    cases.append(("revision marker label", c["marker"], c["grid"]))
    return cases


@pytest.mark.parametrize(("what", "text", "background"), _text_on_backgrounds())
def test_canvas_text_has_aa_contrast(what, text, background):
    ratio = contrast(text, background)
    assert ratio >= AA, f"{what}: {text} on {background} is {ratio:.2f}:1 < {AA}:1"


def test_the_ratio_is_wcags():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#999999", "#ffffff") == pytest.approx(2.85, abs=0.01)  # fails AA
    assert contrast("#5b6b7a", "#ffffff") == pytest.approx(5.48, abs=0.01)
    assert over("#000000", 0.5, "#ffffff") == "#808080"


def test_the_backgrounds_are_the_pages_own():
    """The backgrounds checked are the ones the stylesheet draws the canvases on."""
    graph_bg = re.search(r"\.mesh-graph \{[^}]*background:\s*(#[0-9a-fA-F]{3,6})", CSS).group(1)
    assert graph_bg == COLOURS["graph"]["background"]
    assert set(COLOURS["chart"]["backgrounds"]) >= {_css_var("panel"), _css_var("bg")}


def test_the_scripts_draw_with_these_colours():
    """mesh.js and chart.js take their canvas colours from the checked file, not literals."""
    mesh = (SRC / "mesh.js").read_text()
    chart = (SRC / "lib" / "chart.js").read_text()
    assert 'from "./lib/canvas-colours.json"' in mesh
    assert 'from "./canvas-colours.json"' in chart
    for source in (mesh, chart):
        for key in ("color", "text-background-color", "overlay-color"):
            literal = re.search(rf'"?{key}"?:\s*"#', source)
            assert literal is None, literal
    assert not re.search(r'\baxes:[\s\S]*?stroke:\s*"#', chart)
