// The mesh graph (/mesh): workloads and the traffic between them from Istio's metrics,
// laid out left to right by dagre (a layered layout) and drawn by Cytoscape.js. The same
// figures are listed in a table under the graph (keyboard and screen readers, and tests).
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import COLOURS from "./lib/canvas-colours.json";

cytoscape.use(dagre);

const { el } = window.CanopyDom;
const root = document.getElementById("mesh");
const ORG = root.dataset.org;
const GRAPH_URL = root.dataset.graphUrl;
const TRACES_URL = root.dataset.tracesUrl;
const METRICS_URL = root.dataset.metricsUrl;
const REFRESH_MS = 30_000;

const $ = (id) => document.getElementById(id);
const form = $("mesh-form");
const graphBox = $("mesh-graph");
const meta = $("mesh-meta");
const detail = $("mesh-detail");
const tableBody = $("mesh-edges");
const empty = $("mesh-empty");
let cy = null;
let timer = null;
let inflight = null;

// Canvas colours live in one file: tests/web/test_canvas_contrast.py checks their contrast.
const GRAPH = COLOURS.graph;
const HEALTH = GRAPH.health;
const SHAPE = {
  unknown: "diamond",
  ingress: "round-triangle",
  egress: "round-triangle",
  service: "round-rectangle",
  namespace: "round-rectangle",
};

export function rate(v) {
  if (!v) return "0";
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
  return v.toPrecision(2);
}
const pct = (v) => (v == null ? "–" : `${Number(v.toFixed(2))}%`);
const ms = (v) => (v == null ? "–" : `${v >= 100 ? v.toFixed(0) : Number(v.toFixed(1))} ms`);
function bytes(v) {
  const units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${Number(v.toFixed(1))} ${units[i]}`;
}

function params() {
  const data = new FormData(form);
  return { group: data.get("group"), window: data.get("window"), refresh: data.get("refresh") === "on" };
}

function edgeLabel(e) {
  if (e.protocol === "tcp") return bytes(e.tcpBytesPerSecond);
  const parts = [`${rate(e.rps)} rps`];
  if (e.errorPct) parts.push(pct(e.errorPct));
  return parts.join(" · ");
}

// Zoom limits: past 0.4 the labels (kept readable, below) would hide the graph; past 3 a node
// fills the box.
const MIN_ZOOM = 0.4;
const MAX_ZOOM = 3;

function edgeColor(e) {
  if (e.errorPct >= 10) return HEALTH.failing;
  if (e.errorPct >= 1) return HEALTH.degraded;
  return GRAPH.edge_quiet;
}

function nodeName(nodes, id) {
  const n = nodes.get(id);
  return n ? (n.namespace && n.kind !== "namespace" ? `${n.label} (${n.namespace})` : n.label) : id;
}

function traceService(node) {
  // Istio's proxies name spans' service "<canonical service>.<namespace>".
  if (!node || ["unknown", "egress", "namespace"].includes(node.kind)) return "";
  const app = node.kind === "version" ? node.label.split(" ")[0] : node.label;
  return node.namespace ? `${app}.${node.namespace}` : app;
}

function selectorFor(side, node) {
  if (!node || node.kind === "unknown") return `${side}_workload="unknown"`;
  if (node.kind === "namespace") return `${side}_workload_namespace="${node.namespace}"`;
  if (node.kind === "service") return `destination_service_name="${node.label}"`;
  const [app, version] = node.label.split(" ");
  if (node.kind === "app") return `${side}_app="${app}",${side}_workload_namespace="${node.namespace}"`;
  if (node.kind === "version") return `${side}_app="${app}",${side}_version="${version}"`;
  return `${side}_workload="${node.label}",${side}_workload_namespace="${node.namespace}"`;
}

function edgeLinks(edge, nodes, win) {
  const src = nodes.get(edge.source);
  const dst = nodes.get(edge.target);
  const sel = `reporter="${edge.reporter}",${selectorFor("source", src)},${selectorFor("destination", dst)}`;
  const query = edge.protocol === "tcp"
    ? `sum(rate(istio_tcp_sent_bytes_total{${sel}}[${win}]))`
    : `sum by (response_code) (rate(istio_requests_total{${sel}}[${win}]))`;
  const links = [el("a", { href: `${METRICS_URL}?${new URLSearchParams({ org: ORG, q: query })}` }, "Metrics in the explorer")];
  const service = traceService(dst);
  if (service) {
    const q = new URLSearchParams({ org: ORG, service, lookback: "1h" });
    if (edge.errorPct) q.set("errorsOnly", "true");
    links.unshift(el("a", { href: `${TRACES_URL}?${q}` }, edge.errorPct ? "Failing traces" : "Traces"));
  }
  return links;
}

function showDetail(html) {
  detail.replaceChildren(...html);
  detail.hidden = false;
}

function describeEdge(edge, nodes, win) {
  showDetail([
    el("h3", {}, `${nodeName(nodes, edge.source)} → ${nodeName(nodes, edge.target)}`),
    el("dl", { class: "facts" },
      el("dt", {}, "Protocol"), el("dd", {}, edge.protocol),
      edge.protocol === "tcp"
        ? [el("dt", {}, "Bytes"), el("dd", {}, bytes(edge.tcpBytesPerSecond))]
        : [
          el("dt", {}, "Requests"), el("dd", {}, `${rate(edge.rps)} /s`),
          el("dt", {}, "Errors"), el("dd", {}, `${pct(edge.errorPct)} (5xx and gRPC non-OK)`),
          el("dt", {}, "p95 latency"), el("dd", {}, ms(edge.p95Ms)),
        ],
      el("dt", {}, "mTLS"), el("dd", {}, edge.mtlsPct == null ? "unknown (no destination report)" : `${edge.mtlsPct}% of requests`),
      el("dt", {}, "Reported by"), el("dd", {}, `${edge.reporter} proxy`),
    ),
    el("p", { class: "links" }, edgeLinks(edge, nodes, win)),
  ]);
}

function pageOf(node) {
  if (!node || !node.namespace) return null;
  if (node.kind === "workload") return `/mesh/workload/${encodeURIComponent(node.namespace)}/${encodeURIComponent(node.label)}`;
  if (node.kind === "app" || node.kind === "version") {
    return `/mesh/app/${encodeURIComponent(node.namespace)}/${encodeURIComponent(node.label.split(" ")[0])}`;
  }
  return null;
}

function describeNode(node, win) {
  const service = traceService(node);
  const page = pageOf(node);
  const sel = selectorFor("destination", node);
  const q = `sum by (response_code) (rate(istio_requests_total{${sel}}[${win}]))`;
  showDetail([
    el("h3", {}, node.label),
    el("dl", { class: "facts" },
      el("dt", {}, "Kind"), el("dd", {}, node.kind === "unknown" ? "outside the mesh (no sidecar)" : node.kind),
      node.namespace ? [el("dt", {}, "Namespace"), el("dd", {}, node.namespace)] : null,
      el("dt", {}, "Inbound"), el("dd", {}, `${rate(node.inRps)} rps, ${pct(node.errorPct)} errors`),
      el("dt", {}, "Outbound"), el("dd", {}, `${rate(node.outRps)} rps`),
      el("dt", {}, "Health"), el("dd", {}, node.health),
    ),
    el("p", { class: "links" },
      page ? el("a", { href: `${page}?${new URLSearchParams({ org: ORG })}` }, "Its page") : null,
      service ? el("a", { href: `${TRACES_URL}?${new URLSearchParams({ org: ORG, service })}` }, "Traces") : null,
      el("a", { href: `${METRICS_URL}?${new URLSearchParams({ org: ORG, q })}` }, "Metrics"),
    ),
  ]);
}

function draw(graph) {
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const elements = [
    ...graph.nodes.map((n) => ({
      data: { id: n.id, label: n.label, color: HEALTH[n.health], shape: SHAPE[n.kind] || "ellipse" },
    })),
    ...graph.edges.map((e) => ({
      data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), color: edgeColor(e),
        mtls: e.mtlsPct != null && e.mtlsPct >= 100 ? "solid" : "dashed" },
    })),
  ];
  if (cy) cy.destroy();
  cy = cytoscape({
    container: graphBox,
    elements,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: {
        label: "data(label)", "background-color": GRAPH.node_fill, "border-width": 3, "border-color": "data(color)",
        shape: "data(shape)", width: 34, height: 34, "font-size": 12, color: GRAPH.node_label,
        "text-valign": "bottom", "text-margin-y": 6, "text-background-color": GRAPH.label_background,
        "text-background-opacity": GRAPH.node_label_background_opacity, "text-background-padding": 2 } },
      { selector: "edge", style: {
        label: "data(label)", width: 2, "line-color": "data(color)", "target-arrow-color": "data(color)",
        "target-arrow-shape": "triangle", "curve-style": "bezier", "line-style": "data(mtls)",
        "font-size": 11, color: GRAPH.edge_label, "text-background-color": GRAPH.label_background,
        "text-background-opacity": GRAPH.edge_label_background_opacity,
        "text-background-padding": 2, "text-rotation": "autorotate" } },
      { selector: ":selected", style: { "overlay-color": GRAPH.selected_overlay, "overlay-opacity": 0.15 } },
    ],
    layout: { name: "dagre", rankDir: "LR", nodeSep: 40, rankSep: 120, padding: 20 },
    minZoom: MIN_ZOOM,
    maxZoom: MAX_ZOOM,
  });
  // Labels stay readable whatever the zoom (a narrow screen fits a wide graph by zooming
  // out): their font grows as the graph shrinks, so they are never drawn below 12 / 11 px.
  const readable = () => {
    const z = cy.zoom();
    cy.style()
      .selector("node").style("font-size", Math.max(12, 12 / z))
      .selector("edge").style("font-size", Math.max(11, 11 / z))
      .update();
  };
  cy.on("zoom", readable);
  readable();
  cy.on("tap", "edge", (evt) => describeEdge(graph.edges.find((e) => e.id === evt.target.id()), nodes, graph.window));
  cy.on("tap", "node", (evt) => describeNode(nodes.get(evt.target.id()), graph.window));
  window.canopyMesh = { cy, graph };

  tableBody.replaceChildren(...graph.edges.map((e) => el("tr", { "data-edge": e.id },
    el("td", {}, el("button", { type: "button", class: "link-button", onclick: () => describeEdge(e, nodes, graph.window) },
      `${nodeName(nodes, e.source)} → ${nodeName(nodes, e.target)}`)),
    el("td", { class: "num" }, e.protocol === "tcp" ? bytes(e.tcpBytesPerSecond) : `${rate(e.rps)} rps`),
    el("td", { class: "num" }, e.protocol === "tcp" ? "–" : pct(e.errorPct)),
    el("td", { class: "num" }, ms(e.p95Ms)),
    el("td", {}, e.mtlsPct == null ? "–" : `${e.mtlsPct}%`),
    el("td", {}, e.protocol),
    el("td", {}, e.reporter),
  )));
}

async function load() {
  const p = params();
  const url = new URL(GRAPH_URL, location.href);
  url.search = new URLSearchParams({ org: ORG, group: p.group, window: p.window });
  history.replaceState(null, "", `?${new URLSearchParams({ org: ORG, group: p.group, window: p.window, refresh: p.refresh ? "on" : "off" })}`);
  if (inflight) inflight.abort();
  inflight = new AbortController();
  root.setAttribute("aria-busy", "true");
  meta.textContent = "Loading…";
  try {
    const { res, payload } = await window.CanopyDom.getJSON(url, inflight.signal);
    if (!res.ok || !payload) {
      meta.textContent = `Could not load the graph: ${(payload && (payload.detail || payload.error)) || res.status}`;
      return;
    }
    const empty_ = payload.edges.length === 0;
    empty.hidden = !empty_;
    $("mesh-main").hidden = empty_;
    if (!empty_) draw(payload);
    const when = new Date(payload.time * 1000).toLocaleTimeString();
    meta.textContent = `${payload.nodes.length} nodes, ${payload.edges.length} edges · rates over the last ${payload.window} at ${when}`;
  } catch (err) {
    if (err.name !== "AbortError") meta.textContent = `Could not load the graph: ${err.message}`;
  } finally {
    root.removeAttribute("aria-busy");
  }
}

function schedule() {
  clearInterval(timer);
  if (params().refresh) timer = setInterval(load, REFRESH_MS);
}

form.addEventListener("change", () => { load(); schedule(); });
form.addEventListener("submit", (evt) => { evt.preventDefault(); load(); });
$("mesh-fit").addEventListener("click", () => cy && cy.fit(undefined, 20));
// The box narrows when the detail panel opens (or the window shrinks): the graph is fitted
// to it again rather than left cut at the edge.
let boxWidth = 0;
new ResizeObserver(() => {
  const w = graphBox.clientWidth;
  if (!cy || !w || Math.abs(w - boxWidth) < 8) { boxWidth = w || boxWidth; return; }
  boxWidth = w;
  cy.resize();
  cy.fit(undefined, 20);
}).observe(graphBox);
load();
schedule();
