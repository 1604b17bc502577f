// The Metrics explorer (/metrics): several PromQL queries at once, each in a CodeMirror 6
// editor with Prometheus's own PromQL language support (completions of metric names, labels,
// values and functions from Canopy's /prometheus API; syntax errors underlined where they
// are), drawn by uPlot (drag to zoom) or shown as a table of the instant result. Relative or
// absolute time range, step, query history (this browser), a label browser, and the state
// in the URL (shareable, back button). The mesh-config revisions made in the range are
// drawn on every chart as markers (when the user may read them: config:read). Exemplars of
// the queried series (query_exemplars) are dots on the chart: hover shows their labels,
// value and time, a click opens their trace when Canopy stores it.
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { EditorState } from "@codemirror/state";
import { defaultKeymap, history as editHistory, historyKeymap, insertNewlineAndIndent } from "@codemirror/commands";
import { acceptCompletion, autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, completionStatus } from "@codemirror/autocomplete";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { lintKeymap } from "@codemirror/lint";
import { PromQLExtension } from "@prometheus-io/codemirror-promql";
import { drawChart, fmtValue, labelText, toColumns } from "./lib/chart.js";

const { el, getJSON } = window.CanopyDom;
const root = document.getElementById("explorer");
const API = root.dataset.api; // "/prometheus/api/v1/"
const ORG = root.dataset.org;
const REVISIONS_API = root.dataset.revisions; // "/api/v1/config/revisions"
const JAEGER = root.dataset.jaeger; // "/jaeger/api/"
const TRACE_URL = root.dataset.traceUrl; // "/traces/"
const MAX_EXEMPLARS = 500; // dots per chart
const MAX_SERIES = 50;
const TARGET_POINTS = 250;
const NICE_STEPS = [15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const HISTORY_KEY = `canopy.explorer.history.${ORG}`;
const HISTORY_MAX = 30;
const $ = (id) => document.getElementById(id);
const form = $("metrics-form");
const panelsBox = $("panels");
const radios = [...form.querySelectorAll("input[name=range]")];
const RANGES = Object.fromEntries(radios.map((r) => [r.value, Number(r.dataset.seconds)]));
const DEFAULT_RANGE = "1h";
const fromInput = $("range-from");
const toInput = $("range-to");
const stepInput = $("step");
const picker = $("metric-pick");
const nameList = $("metric-names");
const onboarding = $("onboarding");
const revisionsToggle = $("revisions-toggle");
const showRevisions = $("show-revisions");
const exemplarsToggle = $("exemplars-toggle");
const showExemplars = $("show-exemplars");

let metricTypes = {};
const panels = [];
let revisions = []; // the config revisions created in the current range
let revisionsReady = Promise.resolve([]);

// ---- the completion client: Canopy's Prometheus API, with the session and this org ----
function withOrg(input) {
  const u = new URL(typeof input === "string" ? input : input.url, location.href);
  u.searchParams.set("org", ORG);
  return u.toString();
}
const promql = new PromQLExtension()
  .activateCompletion(true)
  .activateLinter(true)
  .setComplete({
    remote: {
      url: `${location.origin}${API.replace(/\/api\/v1\/$/, "")}`,
      httpMethod: "GET",
      fetchFn: (input, init) => fetch(withOrg(input), { ...init, credentials: "same-origin" }),
      httpErrorHandler: () => {},
      cache: { maxAge: 60_000 },
    },
  });

// ---- time ----
const pad = (n) => String(n).padStart(2, "0");
function localInput(seconds) {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function duration(s) {
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
const selectedRange = () => (radios.find((r) => r.checked) || {}).value || "";

/** {start, end, step, label} of the range asked for. */
function window_() {
  let start;
  let end;
  let label;
  if (fromInput.value && toInput.value && !selectedRange()) {
    start = new Date(fromInput.value).getTime() / 1000;
    end = new Date(toInput.value).getTime() / 1000;
    label = `${new Date(start * 1000).toLocaleString()} – ${new Date(end * 1000).toLocaleString()}`;
  } else {
    const range = selectedRange() || DEFAULT_RANGE;
    end = Math.floor(Date.now() / 1000);
    start = end - RANGES[range];
    label = `the last ${range}`;
  }
  const span = Math.max(1, end - start);
  const wanted = stepInput.value.trim();
  let step = NICE_STEPS.find((s) => s >= span / TARGET_POINTS) || 86400;
  if (wanted) step = parseDuration(wanted) || step;
  return { start: Math.floor(start / step) * step, end, step, label };
}
function parseDuration(text) {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] || "s"];
}

// ---- history ----
function historyRead() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch { return []; }
}
function historyAdd(q) {
  const list = [q, ...historyRead().filter((x) => x !== q)].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  showHistory();
}
function showHistory() {
  const list = historyRead();
  const box = $("history");
  box.replaceChildren(...(list.length
    ? list.map((q) => el("li", {}, el("button", { type: "button", class: "link-button mono", title: q, onclick: () => {
      const target = panels[0];
      target.set(q);
      runAll(true);
    } }, q)))
    : [el("li", { class: "muted" }, "Queries you run are kept here, in this browser.")]));
}

// ---- API ----
async function api(path, params, signal) {
  const q = new URLSearchParams({ org: ORG, ...params });
  try {
    const { res, payload } = await getJSON(`${API}${path}?${q}`, signal);
    if (payload && payload.status === "success") return { data: payload.data };
    if (payload && payload.error) return { error: payload.error, type: payload.errorType };
    return { error: `HTTP ${res.status}`, type: "http" };
  } catch (err) {
    if (err.name === "AbortError") throw err;
    return { error: err.message, type: "network" };
  }
}

// ---- config revisions, as markers on the charts ----
/** The revisions created in the window; [] when the user may not read them (403/404) or
    anything else goes wrong: the markers are a help, never an error of their own. */
async function loadRevisions(win) {
  if (!REVISIONS_API) return [];
  const q = new URLSearchParams({ org: ORG, since: String(win.start * 1000), until: String(Math.ceil(win.end) * 1000), limit: "500" });
  try {
    const { res, payload } = await getJSON(`${REVISIONS_API}?${q}`);
    return res.ok && Array.isArray(payload) ? payload : [];
  } catch {
    return [];
  }
}

const revisionTitle = (r) => `r${r.number} · ${new Date(r.created_at).toLocaleString()} · ${r.author || "unknown"}${r.message ? ` — ${r.message}` : ""}`;

function revisionMarkers() {
  if (!showRevisions.checked) return [];
  return revisions.map((r) => ({ x: Date.parse(r.created_at) / 1000, label: `r${r.number}`, title: revisionTitle(r) }));
}

/** The revisions under a chart, as a list: the markers' text, for reading and for tests. */
function revisionList() {
  return el("ul", { class: "revision-markers", "aria-label": "Config revisions in this range", hidden: !showRevisions.checked || !revisions.length },
    [...revisions].sort((a, b) => a.number - b.number).map((r) => el("li", { "data-testid": "revision-marker", "data-number": String(r.number), title: revisionTitle(r) },
      el("span", { class: "revision-tick", "aria-hidden": "true" }),
      el("strong", {}, `r${r.number}`), " ",
      el("span", { class: "muted" }, `${new Date(r.created_at).toLocaleTimeString()} · ${r.author || "unknown"}`),
      r.message ? ` ${r.message}` : "")));
}

showRevisions.addEventListener("change", () => {
  for (const panel of panels) {
    if (panel.plot) panel.plot.redraw();
    for (const list of panel.body.querySelectorAll(".revision-markers")) list.hidden = !showRevisions.checked || !revisions.length;
  }
});

// ---- exemplars, as dots on the charts ----
const TRACE_ID = /^[0-9a-fA-F]{1,32}$/;
const traceStored = new Map(); // trace id -> Promise<boolean>

/** The exemplars of the query's series in the window, flattened for the chart; [] on any
    error (the dots are a help, the chart is the answer). */
async function loadExemplars(query, win, signal) {
  const answer = await api("query_exemplars", { query, start: win.start, end: win.end }, signal);
  if (answer.error || !Array.isArray(answer.data)) return [];
  const out = [];
  for (const group of answer.data) {
    for (const e of group.exemplars || []) {
      const labels = e.labels || {};
      const trace = labels.trace_id || labels.traceID || labels.traceId || "";
      out.push({ t: Number(e.timestamp), v: Number(e.value), labels, series: group.seriesLabels || {}, trace: TRACE_ID.test(trace) ? trace.toLowerCase() : "" });
    }
  }
  out.sort((a, b) => a.t - b.t);
  return out.slice(-MAX_EXEMPLARS);
}

/** Whether Canopy stores the trace (the Jaeger API answers it for this org), asked once. */
function isTraceStored(trace) {
  if (!traceStored.has(trace)) {
    const q = new URLSearchParams({ org: ORG });
    traceStored.set(trace, fetch(`${JAEGER}traces/${trace}?${q}`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((res) => res.ok)
      .catch(() => false));
  }
  return traceStored.get(trace);
}

function traceLink(trace) {
  return `${TRACE_URL}${trace}?${new URLSearchParams({ org: ORG })}`;
}

/** The hover card of a dot, and what its click does. */
function renderExemplar(panel, dot, e) {
  const when = new Date(e.t * 1000).toLocaleString();
  dot.setAttribute("aria-label", `Exemplar ${fmtValue(e.v, 6)} at ${when}${e.trace ? `, trace ${e.trace}` : ""}`);
  dot.dataset.traceId = e.trace;
  const show = async () => {
    const status = el("p", { class: "exemplar-status", role: "status" }, e.trace ? "Checking the trace…" : "No trace id in this exemplar.");
    panel.exemplarTip.replaceChildren(
      el("div", { class: "tip-time" }, `Exemplar · ${when}`),
      el("div", { class: "tip-row" }, el("span", { class: "tip-name" }, "value"), el("span", { class: "tip-val" }, fmtValue(e.v, 8))),
      ...Object.entries(e.labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => el("div", { class: "tip-row" }, el("span", { class: "tip-name" }, k), el("span", { class: "tip-val mono" }, v))),
      el("div", { class: "tip-series" }, labelText(e.series)),
      status,
    );
    panel.exemplarTip.hidden = false;
    const over = dot.parentElement.parentElement;
    over.classList.add("exemplar-hover");
    const left = dot.offsetLeft;
    panel.exemplarTip.style.left = `${left > over.clientWidth / 2 ? Math.max(0, left - panel.exemplarTip.offsetWidth - 8) : left + 18}px`;
    panel.exemplarTip.style.top = `${Math.max(0, dot.offsetTop - 8)}px`;
    if (e.trace) {
      const stored = await isTraceStored(e.trace);
      status.textContent = stored ? "Click to open the trace" : `Trace ${e.trace} not stored in Canopy`;
      status.classList.toggle("exemplar-missing", !stored);
    }
  };
  const hide = (always) => {
    if (!always && dot.matches(":focus")) return;
    panel.exemplarTip.hidden = true;
    dot.parentElement?.parentElement?.classList.remove("exemplar-hover");
  };
  dot.addEventListener("mouseenter", show);
  dot.addEventListener("focus", show);
  dot.addEventListener("mouseleave", () => hide(false));
  dot.addEventListener("blur", () => hide(true));
  dot.addEventListener("mousedown", (ev) => ev.stopPropagation()); // not the start of a zoom drag
  dot.addEventListener("click", async (ev) => {
    ev.stopPropagation();
    if (!e.trace) return;
    if (await isTraceStored(e.trace)) location.assign(traceLink(e.trace));
    else show();
  });
}

function exemplarsOf(panel) {
  return () => (showExemplars.checked ? panel.exemplars : []);
}

showExemplars.addEventListener("change", () => {
  for (const panel of panels) {
    if (panel.plot && panel.exemplars.length) drawGraph(panel);
  }
});

function updateExemplarsToggle() {
  exemplarsToggle.hidden = !panels.some((p) => p.mode === "graph" && p.exemplars.length);
}

// ---- a query panel ----
function makePanel(initial = "", mode = "graph") {
  const box = el("section", { class: "card panel", "aria-label": "Query" });
  const editorBox = el("div", { class: "query-editor", "data-testid": "query-editor" });
  const meta = el("p", { class: "result-meta", role: "status", "aria-live": "polite" });
  const body = el("div", { class: "result-body" });
  const modeButtons = ["graph", "table"].map((m) => el("button", {
    type: "button", class: "small tab", "data-mode": m, "aria-pressed": String(m === mode),
    onclick: () => { panel.mode = m; panel.plot = null; modeButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === m))); runAll(true); },
  }, m === "graph" ? "Graph" : "Table"));
  const remove = el("button", { type: "button", class: "small", title: "Remove this query", onclick: () => {
    if (panels.length === 1) return;
    panels.splice(panels.indexOf(panel), 1);
    box.remove();
    updateExemplarsToggle();
    writeURL(true);
  } }, "Remove");
  // Enter accepts an open completion (even within its first moments), else runs the queries.
  const run = (v) => {
    if (completionStatus(v.state) === "active") { acceptCompletion(v); return true; }
    runAll(true);
    return true;
  };
  const view = new EditorView({
    parent: editorBox,
    state: EditorState.create({
      doc: initial,
      extensions: [
        editHistory(),
        closeBrackets(),
        bracketMatching(),
        autocompletion({ interactionDelay: 0 }),
        syntaxHighlighting(defaultHighlightStyle),
        placeholder("sum by (destination_service) (rate(istio_requests_total[5m]))"),
        keymap.of([
          { key: "Enter", run },
          { key: "Shift-Enter", run: insertNewlineAndIndent },
          ...closeBracketsKeymap, ...completionKeymap, ...lintKeymap, ...historyKeymap, ...defaultKeymap,
        ]),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": "PromQL query" }),
        promql.asExtension(),
      ],
    }),
  });
  box.append(
    el("div", { class: "panel-head" }, editorBox, el("div", { class: "panel-tools" }, modeButtons, remove)),
    el("div", { class: "result-head" }, meta),
    body,
  );
  const panel = {
    box, view, meta, body, mode, controller: null, exemplars: [], exemplarTip: null, graph: null,
    get query() { return view.state.doc.toString().trim(); },
    set(q) { view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: q } }); },
  };
  panelsBox.append(box);
  panels.push(panel);
  return panel;
}

function showState(panel, ...kids) {
  panel.body.replaceChildren(el("div", { class: "state" }, ...kids));
}

function showError(panel, { error, type }) {
  // "1:12: parse error: …": Prometheus names the position; point at it in the query.
  const pos = /^(\d+):(\d+):/.exec(error || "");
  panel.body.replaceChildren(el("div", { class: "error-box", role: "alert" },
    el("p", { class: "error-title" }, el("span", { class: "pill pill-err" }, type || "error"), " The query failed"),
    el("pre", { class: "error-text" }, error),
    pos ? el("pre", { class: "error-text error-caret", "aria-hidden": "true" }, `${panel.query.split("\n")[Number(pos[1]) - 1] || ""}\n${" ".repeat(Number(pos[2]) - 1)}^`) : null,
  ));
  panel.meta.textContent = "";
  if (pos) {
    const line = panel.view.state.doc.line(Math.min(Number(pos[1]), panel.view.state.doc.lines));
    const at = Math.min(line.from + Number(pos[2]) - 1, line.to);
    panel.view.dispatch({ selection: { anchor: at } });
  }
}

async function runPanel(panel, win) {
  const query = panel.query;
  if (panel.controller) panel.controller.abort();
  if (!query) { showState(panel, el("p", {}, "Write a PromQL query, start from a metric, or pick an example; Enter runs it.")); panel.meta.textContent = ""; panel.exemplars = []; updateExemplarsToggle(); return; }
  panel.controller = new AbortController();
  panel.body.setAttribute("aria-busy", "true");
  try {
    if (panel.mode === "table") {
      panel.exemplars = [];
      updateExemplarsToggle();
      const answer = await api("query", { query, time: win.end }, panel.controller.signal);
      if (answer.error) return showError(panel, answer);
      return showTable(panel, answer.data, win);
    }
    const [answer, , exemplars] = await Promise.all([
      api("query_range", { query, start: win.start, end: win.end, step: win.step }, panel.controller.signal),
      revisionsReady,
      loadExemplars(query, win, panel.controller.signal),
    ]);
    panel.exemplars = answer.error ? [] : exemplars;
    updateExemplarsToggle();
    if (answer.error) return showError(panel, answer);
    showGraph(panel, answer.data, win);
  } catch (err) {
    if (err.name !== "AbortError") showError(panel, { error: err.message, type: "network" });
  } finally {
    panel.body.removeAttribute("aria-busy");
  }
}

function noData(panel, win) {
  showState(panel,
    el("p", { class: "state-title" }, `No data for this query in ${win.label}`),
    el("p", {}, "Check the metric name and labels (the label browser lists them), or look further back."),
    el("div", { class: "widen" }, Object.keys(RANGES).filter((r) => RANGES[r] > (win.end - win.start)).slice(0, 2).map((r) =>
      el("button", { type: "button", class: "small", onclick: () => setRange(r) }, `Last ${r}`))));
}

function showGraph(panel, data, win) {
  const result = data.resultType === "scalar" ? [{ metric: {}, values: [data.result] }] : data.result;
  panel.plot = null;
  if (!result.length) { panel.meta.textContent = ""; return noData(panel, win); }
  const drawn = result.slice(0, MAX_SERIES);
  panel.meta.textContent = `${result.length} series · step ${duration(win.step)} · ${win.label}`;
  if (panel.exemplars.length) panel.meta.textContent += ` · ${panel.exemplars.length} exemplar${panel.exemplars.length === 1 ? "" : "s"}`;
  const chartBox = el("div", { class: "chart", tabindex: "0", "aria-label": `Chart of ${drawn.length} series; drag across it to zoom in` });
  // (no null among the children: replaceChildren would write it out as the text "null")
  panel.body.replaceChildren(...[chartBox, revisionList(),
    result.length > MAX_SERIES ? el("p", { class: "note" }, `Showing ${MAX_SERIES} of ${result.length} series: aggregate (sum by, topk) to see fewer.`) : null].filter(Boolean));
  panel.graph = { chartBox, drawn, win };
  drawGraph(panel);
}

/** (Re)draw the panel's chart: again when the exemplar toggle changes the y range. */
function drawGraph(panel) {
  const { drawn, win } = panel.graph;
  // a fresh box each time: the old chart's resize observer watches the old one
  const chartBox = el("div", { class: "chart", tabindex: "0", "aria-label": panel.graph.chartBox.getAttribute("aria-label") });
  panel.graph.chartBox.replaceWith(chartBox);
  panel.graph.chartBox = chartBox;
  const withExemplars = showExemplars.checked && panel.exemplars.length > 0;
  panel.plot = drawChart(chartBox, {
    columns: toColumns(drawn, win.start, win.end, win.step),
    names: drawn.map((s) => labelText(s.metric)),
    onZoom: (from, to) => zoom(from, to),
    markers: revisionMarkers,
    ...(withExemplars ? { exemplars: exemplarsOf(panel), renderExemplar: (dot, e) => renderExemplar(panel, dot, e) } : {}),
  });
  panel.exemplarTip = null;
  if (withExemplars) {
    panel.exemplarTip = el("div", { class: "exemplar-tip", "data-testid": "exemplar-tip", hidden: true });
    panel.plot.over.append(panel.exemplarTip);
  }
}

function showTable(panel, data, win) {
  panel.meta.textContent = `instant query at ${new Date(win.end * 1000).toLocaleString()}`;
  let rows;
  if (data.resultType === "scalar" || data.resultType === "string") rows = [[data.resultType, data.result[1]]];
  else if (data.resultType === "matrix") rows = data.result.map((s) => [labelText(s.metric), s.values.map(([t, v]) => `${fmtValue(Number(v), 6)} @${t}`).join("\n")]);
  else rows = data.result.map((s) => [labelText(s.metric), fmtValue(Number(s.value[1]), 8)]);
  if (!rows.length) return noData(panel, win);
  panel.meta.textContent += ` · ${rows.length} series`;
  panel.body.replaceChildren(el("div", { class: "table-scroll" }, el("table", { class: "table data-table result-table" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Series"), el("th", { scope: "col", class: "num" }, "Value"))),
    el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("td", { class: "mono" }, k), el("td", { class: "num mono" }, v)))))));
}

// ---- URL and range ----
function readURL() {
  const p = new URLSearchParams(location.search);
  const queries = p.getAll("q");
  const modes = p.getAll("mode");
  const range = p.get("range");
  for (const r of radios) r.checked = r.value === (range || (p.get("from") ? "" : DEFAULT_RANGE));
  fromInput.value = p.get("from") ? localInput(Number(p.get("from"))) : "";
  toInput.value = p.get("to") ? localInput(Number(p.get("to"))) : "";
  stepInput.value = p.get("step") || "";
  while (panels.length) panels.pop().box.remove();
  (queries.length ? queries : [""]).forEach((q, i) => makePanel(q, modes[i] === "table" ? "table" : "graph"));
}

function writeURL(push) {
  const p = new URLSearchParams({ org: ORG });
  for (const panel of panels) p.append("q", panel.query);
  if (panels.some((x) => x.mode === "table")) for (const panel of panels) p.append("mode", panel.mode);
  const range = selectedRange();
  if (range) p.set("range", range);
  else if (fromInput.value && toInput.value) {
    p.set("from", String(new Date(fromInput.value).getTime() / 1000));
    p.set("to", String(new Date(toInput.value).getTime() / 1000));
  }
  if (stepInput.value.trim()) p.set("step", stepInput.value.trim());
  const url = `?${p}`;
  if (url === location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function setRange(range) {
  for (const r of radios) r.checked = r.value === range;
  fromInput.value = "";
  toInput.value = "";
  runAll(true);
}

function zoom(from, to) {
  for (const r of radios) r.checked = false;
  fromInput.value = localInput(from);
  toInput.value = localInput(to);
  runAll(true);
}

function runAll(push) {
  writeURL(push);
  const win = window_();
  $("range-label").textContent = `Showing ${win.label}, step ${duration(win.step)}`;
  revisionsReady = loadRevisions(win).then((list) => {
    revisions = list;
    revisionsToggle.hidden = !list.length;
    return list;
  });
  for (const panel of panels) {
    if (panel.query && push) historyAdd(panel.query);
    runPanel(panel, win);
  }
}

// ---- metric names, the picker and the label browser ----
async function loadNames() {
  const [names, meta] = await Promise.all([api("label/__name__/values", {}), api("metadata", {})]);
  if (names.error) return;
  metricTypes = Object.fromEntries(Object.entries(meta.data || {}).map(([k, v]) => [k, (v[0] || {}).type]));
  nameList.replaceChildren(...names.data.map((n) => el("option", { value: n })));
  onboarding.hidden = names.data.length > 0;
}

function queryFor(name) {
  const type = metricTypes[name] || (/_total$|_count$|_sum$|_bucket$/.test(name) ? "counter" : "gauge");
  return type === "counter" ? `rate(${name}[5m])` : name;
}

async function browse(name) {
  const box = $("label-browser");
  box.hidden = false;
  const list = $("label-list");
  list.replaceChildren(el("p", { class: "muted" }, "Loading labels…"));
  const answer = await api("series", { "match[]": name, start: Math.floor(Date.now() / 1000) - 86400 });
  if (answer.error) { list.replaceChildren(el("p", { class: "muted" }, answer.error)); return; }
  const values = {};
  for (const s of answer.data) for (const [k, v] of Object.entries(s)) if (k !== "__name__") (values[k] ||= new Set()).add(v);
  $("label-browser-title").textContent = `Labels of ${name}`;
  list.replaceChildren(...Object.keys(values).sort().map((k) => el("details", {},
    el("summary", {}, `${k} `, el("span", { class: "muted" }, `(${values[k].size})`)),
    el("div", { class: "chips" }, [...values[k]].sort().slice(0, 100).map((v) => el("button", {
      type: "button", class: "chip", title: `Add ${k}="${v}" to the query`,
      onclick: () => { panels[0].set(`${queryFor(name).replace(name, `${name}{${k}="${v.replace(/["\\]/g, "\\$&")}"}`)}`); runAll(true); },
    }, v))))));
}

function pick(name) {
  if (!name) return;
  panels[0].set(queryFor(name));
  picker.value = "";
  runAll(true);
  browse(name);
}

form.addEventListener("submit", (e) => { e.preventDefault(); runAll(true); });
for (const r of radios) r.addEventListener("change", () => { fromInput.value = ""; toInput.value = ""; runAll(true); });
for (const input of [fromInput, toInput]) input.addEventListener("change", () => {
  if (fromInput.value && toInput.value) { for (const r of radios) r.checked = false; runAll(true); }
});
stepInput.addEventListener("change", () => runAll(true));
$("add-query").addEventListener("click", () => { makePanel("").view.focus(); });
picker.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); pick(picker.value.trim()); } });
picker.addEventListener("change", () => pick(picker.value.trim()));
for (const chip of document.querySelectorAll(".examples .chip")) {
  chip.addEventListener("click", () => { panels[0].set(chip.dataset.query); runAll(true); });
}
$("recheck").addEventListener("click", loadNames);
window.addEventListener("popstate", () => { readURL(); runAll(false); });

readURL();
showHistory();
loadNames();
if (panels.some((p) => p.query)) runAll(false);
else runAll(false);
window.canopyExplorer = { panels, fmtValue };
