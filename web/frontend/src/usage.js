// The cardinality explorer on /settings/usage: reads Canopy's Mimir-shaped cardinality API
// (label_names, label_values) with the session, for all series or one metric's.
const { el, getJSON } = window.CanopyDom;
const root = document.getElementById("usage");
const ORG = root.dataset.org;
const API = root.dataset.api;
const METRICS_URL = root.dataset.metricsUrl;
const $ = (id) => document.getElementById(id);
const form = $("card-form");
const metricInput = $("card-metric");
const labelsBox = $("card-labels");
const valuesBox = $("card-values");
const meta = $("card-meta");
const fmt = new Intl.NumberFormat();

function url(path, params) {
  const q = new URLSearchParams({ org: ORG });
  for (const [k, v] of Object.entries(params)) {
    for (const item of [].concat(v)) if (item !== "" && item != null) q.append(k, item);
  }
  return `${API}${path}?${q}`;
}

function selectorOf(metric) {
  return metric ? `{__name__="${metric.replace(/["\\]/g, "\\$&")}"}` : "";
}

function bars(rows, onPick) {
  const top = Math.max(1, ...rows.map((r) => r.n));
  return el("ul", { class: "bars bars-wide" }, rows.map((r) => el("li", {},
    el("span", { class: "bar-label" }, onPick
      ? el("button", { type: "button", class: "link-button", onclick: () => onPick(r.name) }, r.name)
      : r.name),
    el("span", { class: "bar" }, el("span", { style: `width: ${Math.round((100 * r.n) / top)}%` })),
    el("span", { class: "bar-value" }, fmt.format(r.n)),
  )));
}

async function fetchJSON(u) {
  const { res, payload } = await getJSON(u);
  if (!res.ok || !payload) throw new Error((payload && payload.error) || `HTTP ${res.status}`);
  return payload;
}

async function showValues(metric, label) {
  valuesBox.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  $("card-values-title").textContent = `Values of ${label}${metric ? ` in ${metric}` : ""}`;
  try {
    const answer = await fetchJSON(url("label_values", { "label_names[]": label, selector: selectorOf(metric), limit: 50 }));
    const item = answer.labels[0];
    if (!item || !item.cardinality.length) {
      valuesBox.replaceChildren(el("p", { class: "muted" }, "No values."));
      return;
    }
    valuesBox.replaceChildren(
      el("p", { class: "muted small" }, `${fmt.format(item.label_values_count)} distinct values over ${fmt.format(item.series_count)} series; the top ${item.cardinality.length} by series:`),
      bars(item.cardinality.map((c) => ({ name: c.label_value, n: c.series_count })),
        label === "__name__" ? (name) => { metricInput.value = name; explore(); } : null),
    );
  } catch (err) {
    valuesBox.replaceChildren(el("p", { class: "msg msg-error" }, err.message));
  }
}

async function explore() {
  const metric = metricInput.value.trim();
  labelsBox.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const answer = await fetchJSON(url("label_names", { selector: selectorOf(metric), limit: 50 }));
    meta.textContent = `${fmt.format(answer.label_names_count)} label names, ${fmt.format(answer.label_values_count_total)} name=value pairs${metric ? ` in ${metric}` : ""}`;
    if (!answer.cardinality.length) {
      labelsBox.replaceChildren(el("p", { class: "muted" }, metric ? `No series of ${metric}.` : "No series yet: once Prometheus writes, its labels show here."));
      valuesBox.replaceChildren();
      return;
    }
    labelsBox.replaceChildren(bars(
      answer.cardinality.map((c) => ({ name: c.label_name, n: c.label_values_count })),
      (label) => showValues(metric, label),
    ));
    const first = answer.cardinality.find((c) => c.label_name !== "__name__") || answer.cardinality[0];
    showValues(metric, metric ? first.label_name : "__name__");
    if (metric) {
      const q = new URLSearchParams({ org: ORG, q: `count by (${first.label_name}) (${metric})` });
      meta.append(" · ", el("a", { href: `${METRICS_URL}?${q}` }, "open in the explorer"));
    }
  } catch (err) {
    labelsBox.replaceChildren(el("p", { class: "msg msg-error" }, err.message));
  }
}

form.addEventListener("submit", (evt) => { evt.preventDefault(); explore(); });
for (const button of document.querySelectorAll("[data-metric]")) {
  button.addEventListener("click", () => {
    metricInput.value = button.dataset.metric;
    explore();
    form.scrollIntoView({ behavior: "smooth", block: "start" });
  });
}
explore();
