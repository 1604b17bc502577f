/* Canopy's Metrics explorer: PromQL through /prometheus/api/v1, drawn as an inline SVG line
   chart, built with dom.js. Label names and values come from senders and are untrusted: they
   reach the page only as text nodes and attribute values, never as HTML. */
(() => {
  "use strict";

  const root = document.getElementById("explorer");
  if (!root) return;

  const API = root.dataset.api;
  const ORG = root.dataset.org;
  const MAX_SERIES = 50;
  const TARGET_POINTS = 250;
  const MIN_STEP = 15;
  const NICE_STEPS = [15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const TIME_TICKS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  const PALETTE = [
    "#0d9488", "#2563eb", "#f59e0b", "#e11d48", "#7c3aed", "#0891b2",
    "#65a30d", "#db2777", "#ea580c", "#4f46e5", "#ca8a04", "#059669",
  ];

  const { el, svg, getJSON } = window.CanopyDom;
  const $ = (id) => document.getElementById(id);
  const form = $("metrics-form");
  const input = $("q");
  const picker = $("metric-pick");
  const nameList = $("metric-names");
  const onboarding = $("onboarding");
  const resultCard = $("result");
  const meta = $("result-meta");
  const body = $("result-body");
  const radios = [...form.querySelectorAll("input[name=range]")];
  const RANGES = Object.fromEntries(radios.map((r) => [r.value, Number(r.dataset.seconds)]));
  const DEFAULT_RANGE = "1h";

  let knownNames = new Set();
  let metadata = {};
  let inflight = null; // AbortController of the running query
  let view = null; // what the chart shows: {series, start, end, step, hidden}

  // ---- small helpers ------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  const clock = (d, secs) =>
    `${pad(d.getHours())}:${pad(d.getMinutes())}${secs ? `:${pad(d.getSeconds())}` : ""}`;
  const day = (d) => d.toLocaleDateString(undefined, { month: "short", day: "numeric" });

  function duration(s) {
    if (s % 86400 === 0) return `${s / 86400}d`;
    if (s % 3600 === 0) return `${s / 3600}h`;
    if (s % 60 === 0) return `${s / 60}m`;
    return `${s}s`;
  }

  function parseValue(text) {
    if (text === "+Inf") return Infinity;
    if (text === "-Inf") return -Infinity;
    return Number(text); // "NaN" -> NaN
  }

  function trimZeros(text) {
    return text.includes(".") && !text.includes("e") ? text.replace(/\.?0+$/, "") : text;
  }

  const SI = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

  function fmtValue(v, digits = 4) {
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e18)) return v.toExponential(2);
    // k, M, G… once a number no longer fits in `digits` digits.
    const [div, unit] = (a >= 10 ** digits && SI.find(([d]) => a >= d)) || [1, ""];
    const text = (v / div).toPrecision(digits);
    // toPrecision turns 999.95 into "1.000e+3": whole numbers are fine as they are.
    return (text.includes("e") ? String(Math.round(v / div)) : trimZeros(text)) + unit;
  }

  // Label sets the way Prometheus prints them: name{a="b", c="d"}.
  function labelPairs(metric) {
    return Object.keys(metric)
      .filter((k) => k !== "__name__")
      .sort()
      .map((k) => [k, JSON.stringify(metric[k])]);
  }

  function labelText(metric) {
    const name = metric.__name__ || "";
    const pairs = labelPairs(metric);
    if (name && !pairs.length) return name;
    return `${name}{${pairs.map(([k, v]) => `${k}=${v}`).join(", ")}}`;
  }

  function labelNodes(metric) {
    const name = metric.__name__ || "";
    const pairs = labelPairs(metric);
    const out = [];
    if (name) out.push(el("span", { class: "lbl-name" }, name));
    if (name && !pairs.length) return out;
    out.push("{");
    pairs.forEach(([k, v], i) => {
      if (i) out.push(", ");
      out.push(el("span", { class: "lbl-key" }, k), "=", el("span", { class: "lbl-val" }, v));
    });
    out.push("}");
    return out;
  }

  // ---- query state in the URL ---------------------------------------------------------------

  const selectedRange = () => (radios.find((r) => r.checked) || {}).value || DEFAULT_RANGE;

  function applyURL() {
    const params = new URLSearchParams(location.search);
    input.value = params.get("q") || "";
    const range = RANGES[params.get("range")] ? params.get("range") : DEFAULT_RANGE;
    for (const r of radios) r.checked = r.value === range;
    autosize();
  }

  function writeURL(q, range, push) {
    const params = new URLSearchParams({ q, range, org: ORG });
    const url = `${location.pathname}?${params}`;
    if (url === location.pathname + location.search) return;
    history[push ? "pushState" : "replaceState"](null, "", url);
  }

  // Grafana's way: about TARGET_POINTS points across the range, rounded to a nice step.
  function stepFor(rangeS) {
    const raw = rangeS / TARGET_POINTS;
    const dist = (s) => Math.abs(Math.log(s / raw));
    const best = NICE_STEPS.reduce((a, b) => (dist(b) < dist(a) ? b : a));
    return Math.max(MIN_STEP, best);
  }

  // ---- API ----------------------------------------------------------------------------------

  async function api(path, params, signal) {
    const url = `${API}${path}?${new URLSearchParams({ ...params, org: ORG })}`;
    const { res, payload } = await getJSON(url, signal);
    if (payload && payload.status === "success") return { data: payload.data };
    if (payload && payload.status === "error") return { error: payload.error, type: payload.errorType };
    if (payload && payload.detail) return { error: String(payload.detail), type: `HTTP ${res.status}` };
    return { error: `The server answered HTTP ${res.status} ${res.statusText}`.trim(), type: "http" };
  }

  // ---- metric names -------------------------------------------------------------------------

  function metaFor(name) {
    const family = metadata[name] || metadata[name.replace(/_(total|bucket|count|sum)$/, "")];
    return family && family[0];
  }

  async function loadNames() {
    let names;
    try {
      names = await api("label/__name__/values", {});
    } catch {
      names = { error: "unreachable" };
    }
    if (names.error) {
      picker.placeholder = "Metric names are unavailable";
      return;
    }
    try {
      metadata = (await api("metadata", {})).data || {};
    } catch {
      metadata = {};
    }
    knownNames = new Set(names.data);
    nameList.replaceChildren(
      ...names.data.map((name) => {
        const m = metaFor(name);
        const attrs = { value: name };
        if (m) attrs.label = [m.type, m.help].filter(Boolean).join(" · ");
        return el("option", attrs);
      }),
    );
    const n = names.data.length;
    picker.placeholder = n ? `Start from a metric (${n} name${n === 1 ? "" : "s"})…` : "No metrics yet";
    onboarding.hidden = n > 0;
    resultCard.hidden = n === 0 && !input.value.trim();
  }

  // A first query for a picked metric: counters as rates, histogram buckets as a quantile.
  function queryFor(name) {
    const type = (metaFor(name) || {}).type;
    if (/_bucket$/.test(name)) return `histogram_quantile(0.99, sum by (le) (rate(${name}[5m])))`;
    if (type === "counter" || /_(total|count|sum)$/.test(name)) return `rate(${name}[5m])`;
    return name;
  }

  function pick(name) {
    input.value = queryFor(name);
    picker.value = "";
    autosize();
    input.focus();
    run();
  }

  // ---- running a query ----------------------------------------------------------------------

  function showState(...kids) {
    view = null;
    body.replaceChildren(el("div", { class: "state" }, ...kids));
  }

  async function run(push = true) {
    const q = input.value.trim();
    const range = selectedRange();
    resultCard.hidden = false;
    if (!q) {
      meta.textContent = "";
      showState(el("p", {}, "Write a query first, or start from a metric."));
      return;
    }
    writeURL(q, range, push);
    if (inflight) inflight.abort();
    const controller = (inflight = new AbortController());
    const rangeS = RANGES[range];
    const step = stepFor(rangeS);
    const end = Math.floor(Date.now() / 1000);
    const start = Math.floor((end - rangeS) / step) * step; // aligned: stable between runs
    meta.textContent = "Running…";
    body.setAttribute("aria-busy", "true");
    const spinner = el("span", { class: "spinner", "aria-hidden": "true" });
    showState(el("p", { class: "loading" }, spinner, "Running query…"));
    const began = performance.now();
    let answer;
    try {
      answer = await api("query_range", { query: q, start, end, step }, controller.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      answer = { error: `Could not reach Canopy: ${err.message}`, type: "network" };
    }
    if (controller !== inflight) return; // a newer query took over
    inflight = null;
    body.removeAttribute("aria-busy");
    const took = Math.round(performance.now() - began);
    if (answer.error) return showError(answer);
    show(answer.data, { q, range, start, end, step, took });
  }

  function showError({ error, type }) {
    meta.textContent = "Query failed";
    view = null;
    body.replaceChildren(
      el(
        "div",
        { class: "error-box", role: "alert" },
        el(
          "p",
          { class: "error-title" },
          "The query failed",
          type ? el("span", { class: "pill pill-err" }, type) : null,
        ),
        el("pre", { class: "error-text" }, error),
      ),
    );
  }

  function toSeries(data) {
    const points = (values) =>
      values.map(([t, v]) => ({ t: Number(t), v: parseValue(v), raw: v }));
    const { resultType, result } = data;
    if (resultType === "matrix") return result.map((r) => ({ metric: r.metric, points: points(r.values) }));
    if (resultType === "vector") return result.map((r) => ({ metric: r.metric, points: points([r.value]) }));
    if (resultType === "scalar") return [{ metric: {}, points: points([result]) }];
    return null;
  }

  function show(data, ctx) {
    const all = toSeries(data);
    if (all === null) {
      meta.textContent = `${data.resultType} · ${ctx.took} ms`;
      return showState(el("pre", { class: "string-result" }, String(data.result[1])));
    }
    if (!all.length) {
      meta.textContent = `0 series · ${ctx.took} ms`;
      const longer = Object.keys(RANGES).filter((r) => RANGES[r] > RANGES[ctx.range]);
      return showState(
        el("p", { class: "state-title" }, `No data for this query in the last ${ctx.range}`),
        el(
          "p",
          {},
          "The query ran without errors but matched no samples. Check the metric name and the " +
            "label matchers: the metric picker lists every name this organization has.",
        ),
        longer.length
          ? el(
              "p",
              { class: "widen" },
              "Look further back:",
              longer.map((r) =>
                el("button", { type: "button", class: "small", onclick: () => setRange(r) }, `Last ${r}`),
              ),
            )
          : null,
      );
    }
    const series = all.slice(0, MAX_SERIES).map((s, i) => {
      const finite = s.points.filter((p) => Number.isFinite(p.v));
      const lastPoint = s.points[s.points.length - 1];
      return {
        ...s,
        index: i,
        name: labelText(s.metric),
        color: PALETTE[i % PALETTE.length],
        byTime: new Map(s.points.map((p) => [p.t, p])),
        last: finite.length ? finite[finite.length - 1].v : lastPoint ? lastPoint.v : NaN,
      };
    });
    const from = new Date(ctx.start * 1000);
    const to = new Date(ctx.end * 1000);
    const span =
      ctx.end - ctx.start > 86400
        ? `${day(from)} ${clock(from)} – ${day(to)} ${clock(to)}`
        : `${clock(from)} – ${clock(to)}`;
    meta.textContent = `${all.length} series · step ${duration(ctx.step)} · ${span} · ${ctx.took} ms`;

    view = { series, start: ctx.start, end: ctx.end, step: ctx.step, range: ctx.range, hidden: new Set() };
    const chart = el("div", {
      class: "chart",
      tabindex: "0",
      role: "group",
      "aria-label": "Chart. The left and right arrow keys read the values at each time.",
    });
    const note =
      all.length > MAX_SERIES
        ? el(
            "p",
            { class: "note" },
            `Showing ${MAX_SERIES} of ${all.length} series. Aggregate with sum by (…) or add ` +
              "label matchers to see fewer, larger groups.",
          )
        : null;
    body.replaceChildren(...[chart, note, legend(series)].filter(Boolean));
    draw();
  }

  function setRange(range) {
    for (const r of radios) r.checked = r.value === range;
    run();
  }

  // ---- the legend ---------------------------------------------------------------------------

  function legend(series) {
    const rows = series.map((s) =>
      el(
        "tr",
        {},
        el(
          "td",
          {},
          el(
            "button",
            {
              type: "button",
              class: "series-toggle",
              "aria-pressed": "true",
              title: "Show or hide this series",
              onclick: (e) => toggle(s.index, e.currentTarget),
            },
            el("span", { class: "swatch", style: `--c: ${s.color}`, "aria-hidden": "true" }),
            el("span", { class: "labels" }, labelNodes(s.metric)),
          ),
        ),
        el("td", { class: "num" }, fmtValue(s.last, 5)),
      ),
    );
    return el(
      "div",
      { class: "legend" },
      el(
        "table",
        {},
        el("caption", { class: "sr-only" }, "Series and their last values"),
        el(
          "thead",
          {},
          el("tr", {}, el("th", { scope: "col" }, "Series"), el("th", { scope: "col", class: "num" }, "Last")),
        ),
        el("tbody", {}, rows),
      ),
    );
  }

  function toggle(index, button) {
    if (!view) return;
    const hidden = view.hidden;
    if (hidden.has(index)) hidden.delete(index);
    else hidden.add(index);
    button.setAttribute("aria-pressed", String(!hidden.has(index)));
    draw();
  }

  // ---- the chart ----------------------------------------------------------------------------

  function niceNumber(x) {
    const mag = 10 ** Math.floor(Math.log10(x));
    const f = x / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  function yScale(values, count) {
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (!values.length) [lo, hi] = [0, 1];
    else if (lo === hi) [lo, hi] = lo > 0 ? [0, 2 * hi] : lo < 0 ? [2 * lo, 0] : [0, 1];
    const step = niceNumber((hi - lo) / count);
    const first = Math.floor(lo / step) * step;
    const last = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let v = first; v <= last + step / 1e6; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
    const digits = Math.max(3, Math.ceil(Math.log10(Math.max(Math.abs(first), Math.abs(last)) / step)) + 1);
    return { lo: first, hi: last, ticks, label: (v) => fmtValue(v, digits) };
  }

  function timeTicks(start, end, width) {
    const want = Math.max(3, Math.floor(width / 110));
    const every = TIME_TICKS.find((s) => (end - start) / s <= want) || TIME_TICKS[TIME_TICKS.length - 1];
    const offset = new Date(start * 1000).getTimezoneOffset() * 60; // ticks fall on local time
    const ticks = [];
    for (let t = Math.ceil((start - offset) / every) * every + offset; t <= end; t += every) ticks.push(t);
    const label = (t) => {
      const d = new Date(t * 1000);
      const midnight = d.getHours() === 0 && d.getMinutes() === 0;
      return every >= 86400 || (end - start > 86400 && midnight) ? day(d) : clock(d, every < 60);
    };
    return { ticks, label };
  }

  function draw() {
    const chart = body.querySelector(".chart");
    if (!view || !chart) return;
    const { series, start, end, step, hidden } = view;
    const shown = series.filter((s) => !hidden.has(s.index));
    const width = Math.max(280, chart.clientWidth);
    const height = width < 600 ? 240 : 320;
    const finite = shown.flatMap((s) => s.points.filter((p) => Number.isFinite(p.v)).map((p) => p.v));
    const y = yScale(finite, height < 300 ? 4 : 5);
    const yLabels = y.ticks.map(y.label);
    const left = 14 + 6.6 * Math.max(...yLabels.map((l) => l.length));
    const [right, top, bottom] = [14, 10, 26];
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const xOf = (t) => left + ((t - start) / (end - start || 1)) * plotW;
    const yOf = (v) => top + (1 - (v - y.lo) / (y.hi - y.lo)) * plotH;

    const root = svg("svg", {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `Line chart of ${shown.length} series over the last ${view.range}`,
    });
    const grid = svg("g", { class: "grid" });
    const labels = svg("g", { class: "ticks" });
    y.ticks.forEach((v, i) => {
      const py = yOf(v);
      grid.append(svg("line", { x1: left, x2: width - right, y1: py, y2: py, class: v === 0 ? "zero" : "" }));
      const text = svg("text", { x: left - 8, y: py, "text-anchor": "end", "dominant-baseline": "middle" });
      text.textContent = yLabels[i];
      labels.append(text);
    });
    const x = timeTicks(start, end, plotW);
    for (const t of x.ticks) {
      const px = xOf(t);
      grid.append(svg("line", { x1: px, x2: px, y1: top, y2: top + plotH, class: "vertical" }));
      const text = svg("text", { x: px, y: height - 6, "text-anchor": "middle" });
      text.textContent = x.label(t);
      labels.append(text);
    }
    grid.append(svg("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    root.append(grid, labels);

    // One path per series; a missing step or a NaN starts a new sub-path (a gap).
    const lines = svg("g", { class: "lines" });
    for (const s of shown) {
      let d = "";
      let prev = null;
      let runLength = 0;
      const lonely = [];
      for (const p of s.points) {
        if (!Number.isFinite(p.v)) {
          if (runLength === 1) lonely.push(prev);
          [prev, runLength] = [null, 0];
          continue;
        }
        const joined = prev && p.t - prev.t <= step * 1.5;
        if (!joined && runLength === 1) lonely.push(prev);
        runLength = joined ? runLength + 1 : 1;
        d += `${joined ? "L" : "M"}${xOf(p.t).toFixed(1)},${yOf(p.v).toFixed(1)}`;
        prev = p;
      }
      if (runLength === 1 && prev) lonely.push(prev);
      lines.append(svg("path", { d: d || "M0,0", class: "series", stroke: s.color, "data-series": s.name }));
      for (const p of lonely) {
        lines.append(svg("circle", { cx: xOf(p.t), cy: yOf(p.v), r: 2.5, fill: s.color, class: "dot" }));
      }
    }
    const crosshair = svg("line", { class: "crosshair", y1: top, y2: top + plotH, visibility: "hidden" });
    const markers = svg("g", { class: "markers" });
    const area = svg("rect", { x: left, y: top, width: plotW, height: plotH, class: "hover-area" });
    root.append(lines, crosshair, markers, area);

    const tip = el("div", { class: "chart-tip", hidden: "", "aria-hidden": "true" });
    chart.replaceChildren(root, tip);

    const lastIndex = Math.floor((end - start) / step);
    let cursor = null;
    function hover(i) {
      cursor = Math.max(0, Math.min(lastIndex, i));
      const t = start + cursor * step;
      const px = xOf(t);
      crosshair.setAttribute("x1", px);
      crosshair.setAttribute("x2", px);
      crosshair.setAttribute("visibility", "visible");
      const here = shown
        .map((s) => ({ s, p: s.byTime.get(t) }))
        .filter(({ p }) => p)
        .sort((a, b) => (b.p.v || 0) - (a.p.v || 0));
      markers.replaceChildren(
        ...here
          .filter(({ p }) => Number.isFinite(p.v))
          .map(({ s, p }) => svg("circle", { cx: px, cy: yOf(p.v), r: 3.5, fill: s.color })),
      );
      const d = new Date(t * 1000);
      const rows = here.slice(0, 12).map(({ s, p }) =>
        el(
          "div",
          { class: "tip-row" },
          el("span", { class: "swatch", style: `--c: ${s.color}` }),
          el("span", { class: "tip-name" }, s.name),
          el("span", { class: "tip-val" }, Number.isFinite(p.v) ? fmtValue(p.v, 5) : p.raw),
        ),
      );
      tip.replaceChildren(
        el("div", { class: "tip-time" }, `${day(d)} ${clock(d, true)}`),
        ...(rows.length ? rows : [el("div", { class: "tip-empty" }, "No samples at this time")]),
      );
      if (here.length > 12) tip.append(el("div", { class: "tip-more" }, `+ ${here.length - 12} more`));
      tip.hidden = false;
      const room = chart.clientWidth;
      const w = tip.offsetWidth;
      tip.style.left = `${px + 14 + w > room ? Math.max(0, px - 14 - w) : px + 14}px`;
    }
    function unhover() {
      cursor = null;
      crosshair.setAttribute("visibility", "hidden");
      markers.replaceChildren();
      tip.hidden = true;
    }
    area.addEventListener("pointermove", (e) => {
      const box = area.getBoundingClientRect();
      const frac = (e.clientX - box.left) / box.width;
      hover(Math.round((frac * (end - start)) / step));
    });
    area.addEventListener("pointerleave", unhover);
    chart.onkeydown = (e) => {
      const moves = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
      if (e.key in moves) {
        e.preventDefault();
        hover(cursor === null ? lastIndex : cursor + moves[e.key]);
      } else if (e.key === "Home" || e.key === "End") {
        e.preventDefault();
        hover(e.key === "Home" ? 0 : lastIndex);
      } else if (e.key === "Escape") unhover();
    };
    chart.onblur = unhover;
  }

  // ---- wiring -------------------------------------------------------------------------------

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 240)}px`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      run();
    }
  });
  input.addEventListener("input", autosize);
  for (const r of radios) r.addEventListener("change", () => input.value.trim() && run());
  for (const chip of form.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => {
      input.value = chip.dataset.query;
      autosize();
      run();
    });
  }
  picker.addEventListener("input", (e) => {
    // Choosing from the list (not typing) picks right away.
    const chosen = !e.inputType || e.inputType === "insertReplacementText";
    if (chosen && knownNames.has(picker.value)) pick(picker.value);
  });
  picker.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault(); // not a form submit
    const name = picker.value.trim();
    if (name) pick(name);
  });
  $("recheck").addEventListener("click", loadNames);
  window.addEventListener("popstate", () => {
    applyURL();
    if (input.value.trim()) run(false);
    else {
      meta.textContent = "";
      showState(el("p", {}, "Start from a metric, pick an example or write a PromQL query."));
    }
  });
  let lastWidth = 0;
  new ResizeObserver(() => {
    const width = body.clientWidth;
    if (width !== lastWidth) {
      lastWidth = width;
      draw();
    }
  }).observe(body);

  applyURL();
  loadNames();
  if (input.value.trim()) run(false);
})();
