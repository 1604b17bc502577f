// Time-series charts drawn by uPlot for the explorer and the workload pages: readable axis
// ticks, gaps where a series has no sample, a tooltip with the hovered series' whole label
// set, click-to-toggle legend, and drag-to-zoom reported to the page.
import uPlot from "uplot";
import COLOURS from "./canvas-colours.json";

// Canvas colours live in one file: tests/web/test_canvas_contrast.py checks their contrast.
const CHART = COLOURS.chart;

export const PALETTE = [
  "#0f766e", "#2563eb", "#d97706", "#c026d3", "#dc2626", "#059669", "#7c3aed", "#0891b2",
  "#ca8a04", "#db2777", "#4f46e5", "#65a30d",
];
const SI = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

/** A number as people read it: at most ``digits`` significant digits, no float noise
    (0.098999999999999991 → 0.099), SI prefixes from a thousand up. */
export function fmtValue(v, digits = 4) {
  if (v == null || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  const abs = Math.abs(v);
  for (const [size, prefix] of SI) {
    if (abs >= size) return `${Number((v / size).toPrecision(digits))}${prefix}`;
  }
  if (abs !== 0 && abs < 1e-3) return v.toExponential(2).replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(digits)));
}

export function labelText(metric) {
  const name = metric.__name__ || "";
  const pairs = Object.entries(metric).filter(([k]) => k !== "__name__").sort(([a], [b]) => (a < b ? -1 : 1));
  if (!pairs.length) return name || "{}";
  return `${name}{${pairs.map(([k, v]) => `${k}="${v}"`).join(", ")}}`;
}

/** Prometheus matrix → uPlot's columns over the step grid (null where a series has no point). */
export function toColumns(result, start, end, step) {
  const xs = [];
  for (let t = start; t <= end + 1e-9; t += step) xs.push(Math.round(t * 1000) / 1000);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = result.map((s) => {
    const col = new Array(xs.length).fill(null);
    for (const [t, v] of s.values) {
      const i = index.get(Math.round(t * 1000) / 1000);
      if (i !== undefined) col[i] = Number(v);
    }
    return col;
  });
  return [xs, ...ys];
}

function tooltipPlugin(names) {
  let tip;
  return {
    hooks: {
      init: (u) => {
        tip = document.createElement("div");
        tip.className = "chart-tip";
        tip.hidden = true;
        u.over.appendChild(tip);
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        const { left, top } = u.cursor;
        if (i == null || left < 0) { tip.hidden = true; return; }
        const rows = [];
        u.series.forEach((s, k) => {
          if (k === 0 || !s.show) return;
          const v = u.data[k][i];
          if (v == null) return;
          rows.push({ k, v, near: Math.abs(u.valToPos(v, s.scale) - top) });
        });
        if (!rows.length) { tip.hidden = true; return; }
        rows.sort((a, b) => a.near - b.near);
        const when = new Date(u.data[0][i] * 1000).toLocaleString();
        tip.replaceChildren();
        const head = document.createElement("div");
        head.className = "tip-time";
        head.textContent = when;
        tip.append(head);
        for (const { k, v } of rows.slice(0, 8)) {
          const row = document.createElement("div");
          row.className = "tip-row";
          const sw = document.createElement("span");
          sw.className = "swatch";
          sw.style.setProperty("--c", u.series[k].stroke());
          const label = document.createElement("span");
          label.className = "tip-name tip-full";
          label.textContent = names[k - 1];
          const value = document.createElement("span");
          value.className = "tip-val";
          value.textContent = fmtValue(v, 6);
          row.append(sw, label, value);
          tip.append(row);
        }
        if (rows.length > 8) {
          const more = document.createElement("div");
          more.className = "tip-more";
          more.textContent = `and ${rows.length - 8} more`;
          tip.append(more);
        }
        tip.hidden = false;
        const w = u.over.clientWidth;
        tip.style.left = `${left > w / 2 ? Math.max(0, left - tip.offsetWidth - 12) : left + 12}px`;
        tip.style.top = `${Math.max(0, top - 10)}px`;
      },
    },
  };
}

/** Vertical markers at points in time (config revisions): a thin dashed line across the plot
    and a small label on the canvas, and for each an invisible hover target over the label
    whose title says more (a link when the marker has an ``href``). ``markers()`` returns
    [{x (seconds), label, title, href?}] — [] when the
    page hides them; the plot is redrawn (``plot.redraw()``) when that changes. */
export function markersPlugin(markers, color = CHART.marker) {
  let layer;
  return {
    hooks: {
      init: (u) => {
        layer = document.createElement("div");
        layer.className = "chart-markers";
        u.over.appendChild(layer);
      },
      draw: (u) => {
        const [min, max] = [u.scales.x.min, u.scales.x.max];
        const shown = (markers() || []).filter((m) => m.x >= min && m.x <= max);
        const { ctx } = u;
        const { top, height } = u.bbox;
        const px = devicePixelRatio || 1;
        ctx.save();
        ctx.strokeStyle = color;
        ctx.fillStyle = color;
        ctx.lineWidth = px;
        ctx.setLineDash([4 * px, 3 * px]);
        ctx.font = `${11 * px}px system-ui, sans-serif`;
        ctx.textBaseline = "top";
        for (const m of shown) {
          const x = Math.round(u.valToPos(m.x, "x", true)) + 0.5;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.fillText(m.label, x + 3 * px, top + 2 * px);
        }
        ctx.restore();
        layer.replaceChildren(...shown.map((m) => {
          const hit = document.createElement(m.href ? "a" : "span");
          hit.className = "chart-marker";
          hit.title = m.title;
          if (m.href) {
            hit.href = m.href;
            hit.setAttribute("aria-label", m.title);
          }
          hit.style.left = `${u.valToPos(m.x, "x") - 4}px`;
          return hit;
        }));
      },
    },
  };
}

/** Exemplars as dots at their (time, value): drawn on the canvas, each with a focusable button
    over it (``data-testid="exemplar"``) that ``render(dot, exemplar)`` fills in (hover card,
    click). ``exemplars()`` returns [{t (seconds), v, ...}] — [] when the page hides them; the
    plot is redrawn (``plot.redraw()``) when that changes. */
export function exemplarsPlugin(exemplars, render, color = CHART.exemplar) {
  let layer;
  return {
    hooks: {
      init: (u) => {
        layer = document.createElement("div");
        layer.className = "chart-exemplars";
        u.over.appendChild(layer);
      },
      draw: (u) => {
        const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
        const [ymin, ymax] = [u.scales.y.min, u.scales.y.max];
        const shown = (exemplars() || []).filter((e) => e.t >= xmin && e.t <= xmax && e.v >= ymin && e.v <= ymax);
        const { ctx } = u;
        const px = devicePixelRatio || 1;
        ctx.save();
        ctx.fillStyle = color;
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = px;
        for (const e of shown) {
          ctx.beginPath();
          ctx.arc(u.valToPos(e.t, "x", true), u.valToPos(e.v, "y", true), 4 * px, 0, 2 * Math.PI);
          ctx.fill();
          ctx.stroke();
        }
        ctx.restore();
        layer.replaceChildren(...shown.map((e) => {
          const dot = document.createElement("button");
          dot.type = "button";
          dot.className = "chart-exemplar";
          dot.dataset.testid = "exemplar";
          dot.style.left = `${u.valToPos(e.t, "x") - 6}px`;
          dot.style.top = `${u.valToPos(e.v, "y") - 6}px`;
          render(dot, e);
          return dot;
        }));
      },
    },
  };
}

/** A y range that also holds ``extra()`` values (the exemplars shown), padded a little. */
function yRangeWith(extra) {
  return (u, min, max) => {
    const values = (extra() || []).map((e) => e.v).filter(Number.isFinite);
    let lo = Math.min(min ?? Infinity, ...values);
    let hi = Math.max(max ?? -Infinity, ...values);
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05;
    return [lo >= 0 && lo - pad < 0 ? 0 : lo - pad, hi + pad];
  };
}

/** Draw ``columns`` (uPlot data) into ``box``; ``names`` label the series; ``markers``
    (optional) returns the time markers to draw (see markersPlugin); ``exemplars`` (optional,
    with ``renderExemplar``) the exemplar dots (see exemplarsPlugin). */
export function drawChart(box, { columns, names, height = 300, onZoom, unit = "", yRange = null, markers = null, exemplars = null, renderExemplar = null }) {
  box.replaceChildren();
  const width = Math.max(320, box.clientWidth || 800);
  if (exemplars && !yRange) yRange = yRangeWith(exemplars);
  const opts = {
    width,
    height,
    plugins: [
      tooltipPlugin(names),
      ...(markers ? [markersPlugin(markers)] : []),
      ...(exemplars ? [exemplarsPlugin(exemplars, renderExemplar)] : []),
    ],
    cursor: { drag: { x: Boolean(onZoom), y: false, setScale: false }, focus: { prox: 16 } },
    focus: { alpha: 0.35 },
    legend: { show: names.length > 1 || names[0] !== "", live: false },
    scales: { x: { time: true }, ...(yRange ? { y: { range: yRange } } : {}) },
    axes: [
      { stroke: CHART.axis_text, grid: { stroke: CHART.grid }, ticks: { stroke: CHART.grid } },
      {
        stroke: CHART.axis_text,
        grid: { stroke: CHART.grid },
        ticks: { stroke: CHART.grid },
        size: 60,
        values: (u, splits) => splits.map((v) => `${fmtValue(v)}${unit}`),
      },
    ],
    series: [
      { value: (u, v) => (v == null ? "" : new Date(v * 1000).toLocaleString()) },
      ...names.map((name, i) => ({
        label: name,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.6,
        spanGaps: false,
        points: { show: false },
        value: (u, v) => fmtValue(v, 6),
      })),
    ],
    hooks: {
      setSelect: [
        (u) => {
          if (!onZoom || u.select.width < 5) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          onZoom(from, to);
        },
      ],
    },
  };
  const plot = new uPlot(opts, columns, box);
  const resize = new ResizeObserver(() => {
    const w = box.clientWidth;
    if (w && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  resize.observe(box);
  return plot;
}
