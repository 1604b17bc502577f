// A workload's (or app's) page: RED over time inbound and outbound from Istio's metrics,
// its top operations from the span metrics, and its recent and slowest traces.
import { drawChart, fmtValue, toColumns } from "./lib/chart.js";

const { el, getJSON } = window.CanopyDom;
const root = document.getElementById("workload");
const ORG = root.dataset.org;
const PROM = root.dataset.prom; // /prometheus/api/v1/
const JAEGER = root.dataset.jaeger; // /jaeger/api/
const TRACE_URL = root.dataset.traceUrl; // /traces/
const TRACES_URL = root.dataset.tracesUrl;
const METRICS_URL = root.dataset.metricsUrl;
const KIND = root.dataset.kind; // workload | app
const NS = root.dataset.namespace;
const NAME = root.dataset.name;
const REVISIONS_API = root.dataset.revisions; // /api/v1/config/revisions
const REVISIONS_URL = root.dataset.revisionsUrl; // the mesh config timeline page
// Istio's service of a workload is its app: reviews-v2 → reviews.
const APP = KIND === "app" ? NAME : NAME.replace(/-v\d+$/, "");
const $ = (id) => document.getElementById(id);
const esc = (v) => v.replace(/["\\]/g, "\\$&");

async function prom(path, params) {
  const { res, payload } = await getJSON(`${PROM}${path}?${new URLSearchParams({ org: ORG, ...params })}`);
  if (!payload || payload.status !== "success") throw new Error((payload && payload.error) || `HTTP ${res.status}`);
  return payload.data;
}

function selector(side, reporter) {
  const key = KIND === "app" ? `${side}_app` : `${side}_workload`;
  return `reporter="${reporter}",${key}="${esc(NAME)}",${side}_workload_namespace="${esc(NS)}"`;
}

function seconds() { return Number(new FormData($("workload-form")).get("range")); }

// ---- mesh-config revisions that touched this service, as markers on every chart ----
let revisions = [];
const revisionHref = (r) => `${REVISIONS_URL}?${new URLSearchParams({ org: ORG })}#r${r.number}`;
const revisionTitle = (r) => `r${r.number} · ${new Date(r.created_at).toLocaleString()} · ${r.author || "unknown"}`
  + `${r.message ? ` — ${r.message}` : ""} · ${r.touched.join(", ")}`;
const revisionMarkers = () => revisions.map((r) => ({ x: Date.parse(r.created_at) / 1000, label: `r${r.number}`, title: revisionTitle(r), href: revisionHref(r) }));

/** The revisions in the window whose changes touched this service; [] without config:read
    (or on any failure): the markers are a help, never an error of their own. */
async function loadRevisions(start, end) {
  const box = $("revisions");
  if (!REVISIONS_API) return [];
  const q = new URLSearchParams({ org: ORG, since: String(start * 1000), until: String(end * 1000), service: APP, namespace: NS, limit: "100" });
  let list = [];
  try {
    const { res, payload } = await getJSON(`${REVISIONS_API}?${q}`);
    list = res.ok && Array.isArray(payload) ? payload : [];
  } catch {
    list = [];
  }
  box.replaceChildren(...(list.length
    ? [...list].sort((a, b) => a.number - b.number).map((r) => el("li", { "data-testid": "revision-marker", "data-number": String(r.number), title: revisionTitle(r) },
      el("span", { class: "revision-tick", "aria-hidden": "true" }),
      el("a", { href: revisionHref(r) }, el("strong", {}, `r${r.number}`)), " ",
      el("span", { class: "muted" }, `${new Date(r.created_at).toLocaleString()} · ${r.author || "unknown"}`),
      r.message ? ` ${r.message}` : "",
      el("span", { class: "muted" }, ` (${r.touched.join(", ")})`)))
    : [el("li", { class: "muted" }, `No mesh-config revision touched ${APP} (${NS}) in this window.`)]));
  return list;
}

async function chart(box, queries, { unit = "", names, yRange = null }) {
  const span = seconds();
  const end = Math.floor(Date.now() / 1000);
  const step = Math.max(15, Math.ceil(span / 200 / 15) * 15);
  const start = Math.floor((end - span) / step) * step;
  box.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const answers = await Promise.all(queries.map((q) => prom("query_range", { query: q, start, end, step })));
    const series = [];
    const labels = [];
    answers.forEach((a, i) => { for (const s of a.result) { series.push(s); labels.push(names[i]); } });
    if (!series.length) { box.replaceChildren(el("p", { class: "muted empty-chart" }, "No traffic in this window.")); return; }
    const link = el("a", { class: "small", href: `${METRICS_URL}?${new URLSearchParams([["org", ORG], ...queries.map((q) => ["q", q])])}` }, "Open in the explorer");
    const plotBox = el("div", { class: "chart" });
    box.replaceChildren(plotBox, link);
    await revisionsReady;
    drawChart(plotBox, { columns: toColumns(series, start, end, step), names: labels, height: 200, unit, yRange, markers: revisionMarkers });
  } catch (err) {
    box.replaceChildren(el("p", { class: "msg msg-error" }, err.message));
  }
}

function red(prefix, side, reporter) {
  const sel = selector(side, reporter);
  const win = `[${Math.max(60, 4 * Math.max(15, Math.ceil(seconds() / 200 / 15) * 15))}s]`;
  const total = `sum(rate(istio_requests_total{${sel}}${win}))`;
  chart($(`${prefix}-rate`), [total], { names: ["requests/s"] });
  chart($(`${prefix}-success`), [
    `100 * (1 - ((sum(rate(istio_requests_total{${sel},response_code=~"5.."}${win})) or vector(0)) / ${total}))`,
  ], { names: ["success %"], unit: "%", yRange: [0, 100] });
  chart($(`${prefix}-latency`), [0.5, 0.9, 0.99].map((q) =>
    `histogram_quantile(${q}, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${sel}}${win})))`), {
    names: ["p50", "p90", "p99"], unit: " ms",
  });
}

async function traceService() {
  const { payload } = await getJSON(`${JAEGER}services?${new URLSearchParams({ org: ORG })}`);
  const services = (payload && payload.data) || [];
  const app = KIND === "app" ? NAME : NAME.replace(/-v\d+$/, "");
  const wanted = [`${app}.${NS}`, app, NAME, `${NAME}.${NS}`];
  const select = $("trace-service");
  select.replaceChildren(...services.map((s) => el("option", { value: s }, s)));
  const found = wanted.find((w) => services.includes(w));
  if (found) select.value = found;
  select.closest("label").hidden = !services.length;
  return services.length ? select.value : "";
}

async function operations(service) {
  const body = $("operations");
  if (!service) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No traces from this org yet: send OTLP or Zipkin spans (the Traces page says how), and span metrics fill this table.")));
    return;
  }
  const s = `service="${esc(service)}"`;
  const w = `[${Math.max(300, seconds())}s]`;
  try {
    const [calls, errors, p95] = await Promise.all([
      prom("query", { query: `topk(10, sum by (span_name) (rate(traces_spanmetrics_calls_total{${s}}${w})))` }),
      prom("query", { query: `sum by (span_name) (rate(traces_spanmetrics_calls_total{${s},status_code="STATUS_CODE_ERROR"}${w}))` }),
      prom("query", { query: `histogram_quantile(0.95, sum by (span_name, le) (rate(traces_spanmetrics_latency_bucket{${s}}${w})))` }),
    ]);
    const by = (a) => Object.fromEntries(a.result.map((r) => [r.metric.span_name, Number(r.value[1])]));
    const err = by(errors);
    const lat = by(p95);
    const rows = calls.result.sort((a, b) => b.value[1] - a.value[1]);
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted" }, `No spans from ${service} in this window.`)));
      return;
    }
    body.replaceChildren(...rows.map((r) => {
      const op = r.metric.span_name;
      const rate = Number(r.value[1]);
      const q = new URLSearchParams({ org: ORG, service, operation: op });
      return el("tr", {},
        el("td", {}, el("a", { href: `${TRACES_URL}?${q}` }, op)),
        el("td", { class: "num" }, `${fmtValue(rate)}/s`),
        el("td", { class: "num" }, rate ? `${fmtValue((100 * (err[op] || 0)) / rate, 3)}%` : "–"),
        el("td", { class: "num" }, lat[op] == null || Number.isNaN(lat[op]) ? "–" : `${fmtValue(lat[op] * 1000, 3)} ms`));
    }));
  } catch (e) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "4" }, e.message)));
  }
}

async function traces(service) {
  const recent = $("recent-traces");
  const slowest = $("slowest-traces");
  if (!service) {
    for (const box of [recent, slowest]) box.replaceChildren(el("li", { class: "muted" }, "No traces yet."));
    return;
  }
  const lookback = `${Math.round(seconds() / 60)}m`;
  const { payload } = await getJSON(`${JAEGER}traces?${new URLSearchParams({ org: ORG, service, lookback, limit: 100 })}`);
  const list = ((payload && payload.data) || []).map((t) => {
    const start = Math.min(...t.spans.map((s) => s.startTime));
    const end = Math.max(...t.spans.map((s) => s.startTime + s.duration));
    const rootSpan = t.spans.find((s) => !s.references || !s.references.length) || t.spans[0];
    return { id: t.traceID, start, duration: end - start, name: rootSpan.operationName, spans: t.spans.length,
      error: t.spans.some((s) => (s.tags || []).some((g) => g.key === "error" && g.value)) };
  });
  const item = (t) => el("li", {}, el("a", { href: `${TRACE_URL}${t.id}?${new URLSearchParams({ org: ORG })}`, class: "mono" }, t.id.slice(0, 12)),
    " ", t.name, " ", el("span", { class: "muted" }, `${fmtValue(t.duration / 1000, 3)} ms · ${t.spans} spans · ${new Date(t.start / 1000).toLocaleTimeString()}`),
    t.error ? el("span", { class: "pill pill-err" }, "error") : null);
  const none = el("li", { class: "muted" }, `No traces of ${service} in the last ${lookback}.`);
  recent.replaceChildren(...(list.length ? [...list].sort((a, b) => b.start - a.start).slice(0, 8).map(item) : [none]));
  slowest.replaceChildren(...(list.length ? [...list].sort((a, b) => b.duration - a.duration).slice(0, 8).map(item) : [none.cloneNode(true)]));
}

let revisionsReady = Promise.resolve();

async function load() {
  const end = Math.floor(Date.now() / 1000);
  revisionsReady = loadRevisions(end - seconds(), end).then((list) => { revisions = list; });
  red("in", "destination", "destination");
  red("out", "source", "source");
  const service = await traceService();
  operations(service);
  traces(service);
}

$("workload-form").addEventListener("change", (e) => {
  if (e.target.id === "trace-service") { operations(e.target.value); traces(e.target.value); } else load();
});
load();
