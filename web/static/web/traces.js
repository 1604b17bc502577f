/* Canopy's trace search: services, operations and traces from the Jaeger API under /jaeger/api,
   a scatter chart of the traces found (start time × duration) and a list of them. The search
   lives in the URL, so a link shares it and the back button walks through earlier ones.
   Service, operation and tag text is untrusted: it is only ever inserted as text. */
(() => {
  "use strict";

  const root = document.getElementById("traces");
  if (!root) return;

  const T = window.CanopyTraces;
  const { el, svg, api, fmtDuration, fmtAgo, fmtDateTime, plural } = T;
  const API = root.dataset.api;
  const ORG = root.dataset.org;
  const TRACE_URL = root.dataset.traceUrl;
  const DEFAULT_LOOKBACK = root.dataset.defaultLookback;
  const DEFAULT_LIMIT = "20";
  const MAX_LIMIT = 1500;
  const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
  const ACTIVITY_URL = root.dataset.activity;

  const $ = (id) => document.getElementById(id);
  const form = $("trace-form");
  const serviceSel = $("service");
  const opSel = $("operation");
  const serviceHint = $("service-hint");
  const tagsInput = $("tags");
  const minInput = $("min-duration");
  const maxInput = $("max-duration");
  const limitInput = $("limit");
  const errorsBox = $("errors-only");
  const formError = $("form-error");
  const onboarding = $("onboarding");
  const searchCard = $("search-card");
  const resultCard = $("result");
  const meta = $("result-meta");
  const body = $("result-body");
  const lookbackRadios = [...form.querySelectorAll("input[name=lookback]")];
  const sortRadios = [...form.querySelectorAll("input[name=sortBy]")];
  const LOOKBACKS = Object.fromEntries(lookbackRadios.map((r) => [r.value, Number(r.dataset.seconds)]));

  let services = null; // the org's service names, once loaded
  const operations = new Map(); // service -> operation names
  let wantedOperation = ""; // from the URL, until the service's operations are in
  let inflight = null; // AbortController of the running search
  let view = null; // what the scatter shows: {traces, nowMs}

  // ---- the search in the URL ----------------------------------------------------------------

  function stateFromURL() {
    const p = new URLSearchParams(location.search);
    const limit = p.get("limit") || "";
    return {
      service: p.get("service") || "",
      operation: p.get("operation") || "",
      tags: p.get("tags") || "",
      minDuration: p.get("minDuration") || "",
      maxDuration: p.get("maxDuration") || "",
      lookback: LOOKBACKS[p.get("lookback")] ? p.get("lookback") : DEFAULT_LOOKBACK,
      limit: /^\d+$/.test(limit) ? limit : DEFAULT_LIMIT,
      errorsOnly: p.get("errorsOnly") === "true",
      sortBy: p.get("sortBy") === "duration" ? "duration" : "start",
    };
  }

  function readForm() {
    return {
      service: serviceSel.value,
      operation: opSel.value,
      tags: tagsInput.value.trim(),
      minDuration: minInput.value.trim(),
      maxDuration: maxInput.value.trim(),
      lookback: (lookbackRadios.find((r) => r.checked) || {}).value || DEFAULT_LOOKBACK,
      limit: limitInput.value.trim() || DEFAULT_LIMIT,
      errorsOnly: errorsBox.checked,
      sortBy: (sortRadios.find((r) => r.checked) || {}).value || "start",
    };
  }

  function applyState(state) {
    tagsInput.value = state.tags;
    minInput.value = state.minDuration;
    maxInput.value = state.maxDuration;
    limitInput.value = state.limit;
    errorsBox.checked = state.errorsOnly;
    for (const r of lookbackRadios) r.checked = r.value === state.lookback;
    for (const r of sortRadios) r.checked = r.value === state.sortBy;
    wantedOperation = state.operation;
    if (services) fillServices(state.service);
    else serviceSel.dataset.wanted = state.service;
  }

  function searchURL(state) {
    return T.urlWith(location.pathname, {
      org: ORG,
      service: state.service,
      operation: state.operation,
      tags: state.tags,
      minDuration: state.minDuration,
      maxDuration: state.maxDuration,
      lookback: state.lookback,
      limit: state.limit === DEFAULT_LIMIT ? "" : state.limit,
      errorsOnly: state.errorsOnly ? "true" : "",
      sortBy: state.sortBy === "duration" ? "duration" : "",
    });
  }

  function writeURL(state, push) {
    const url = searchURL(state);
    if (url === location.pathname + location.search) return;
    history[push ? "pushState" : "replaceState"](null, "", url);
  }

  const traceHref = (id) => T.urlWith(`${TRACE_URL}${id}`, { org: ORG });

  // ---- reading the form ---------------------------------------------------------------------

  const TAG = /\s*([^\s"'=!~]+)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^\s"']*))\s*/y;

  /** "a=1 b!=2 c=~'x y'" → {tags: {a: "1"}, filters: [["b", "!=", "2"], ["c", "=~", "x y"]]} */
  function parseTags(text) {
    const tags = {};
    const filters = [];
    let i = 0;
    while (i < text.length) {
      TAG.lastIndex = i;
      const m = TAG.exec(text);
      if (!m) {
        const near = text.slice(i).trim().split(/\s+/)[0];
        throw new Error(
          `Cannot read the tag “${near}”. Write key=value pairs separated by spaces, ` +
            'e.g. http.status_code=500 error=true, with values containing spaces in "quotes".',
        );
      }
      const [, key, op] = m;
      const value = m[3] != null ? m[3].replace(/\\(.)/g, "$1") : m[4] != null ? m[4] : m[5];
      if (op === "=" && !(key in tags)) tags[key] = value;
      else filters.push([key, op, value]);
      i = TAG.lastIndex;
    }
    return { tags, filters };
  }

  function problems(state) {
    const out = [];
    try {
      parseTags(state.tags);
    } catch (err) {
      out.push([tagsInput, err.message]);
    }
    for (const [input, value, label] of [
      [minInput, state.minDuration, "Min duration"],
      [maxInput, state.maxDuration, "Max duration"],
    ]) {
      if (value && !GO_DURATION.test(value)) {
        const hint = /^\d+(\.\d+)?$/.test(value) ? ` Add a unit: ${value}ms or ${value}s.` : "";
        out.push([input, `${label} “${value}” is not a duration like 250ms, 1.5s or 2m.${hint}`]);
      }
    }
    const limit = Number(state.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      out.push([limitInput, `The limit is a whole number from 1 to ${MAX_LIMIT}.`]);
    }
    return out;
  }

  function showProblems(found) {
    for (const input of [tagsInput, minInput, maxInput, limitInput]) {
      input.toggleAttribute("aria-invalid", found.some(([i]) => i === input));
    }
    formError.hidden = !found.length;
    formError.textContent = found.map(([, message]) => message).join(" ");
  }

  function apiParams(state, nowMs) {
    const { tags, filters } = parseTags(state.tags);
    const endUs = nowMs * 1000;
    return {
      org: ORG,
      service: state.service,
      operation: state.operation,
      tags: Object.keys(tags).length ? JSON.stringify(tags) : "",
      tagFilters: filters.length ? JSON.stringify(filters) : "",
      minDuration: state.minDuration,
      maxDuration: state.maxDuration,
      start: endUs - LOOKBACKS[state.lookback] * 1e6,
      end: endUs,
      limit: state.limit,
      errorsOnly: state.errorsOnly ? "true" : "",
      sortBy: state.sortBy === "duration" ? "duration" : "",
    };
  }

  // ---- services and operations --------------------------------------------------------------

  const option = (value, label) => el("option", { value }, label == null ? value : label);

  function fillServices(wanted) {
    const names = [...services];
    if (wanted && !names.includes(wanted)) names.unshift(wanted); // a shared link's service
    serviceSel.replaceChildren(
      ...names.map((n) => option(n, services.includes(n) ? n : `${n} (no spans stored)`)),
    );
    serviceSel.value = wanted && names.includes(wanted) ? wanted : names[0];
  }

  async function loadServices() {
    let answer;
    try {
      answer = await api(`${API}services`, { org: ORG });
    } catch (err) {
      answer = { error: `Could not reach Canopy: ${err.message}` };
    }
    if (answer.error) {
      serviceSel.replaceChildren(option("", "Services are unavailable"));
      meta.textContent = "";
      return showError(answer.error, "services");
    }
    services = answer.data || [];
    T.useServices(services);
    const none = services.length === 0;
    onboarding.hidden = !none;
    searchCard.hidden = none;
    resultCard.hidden = none;
    if (none) return;
    // Without a service in the URL, the busiest one (most spans in the lookback).
    fillServices(serviceSel.dataset.wanted || (await busiest()));
    await loadOperations();
    run(false);
  }

  /** The org's service with the most spans in the chosen lookback ("" when none has any). */
  async function busiest() {
    const lookback = (lookbackRadios.find((r) => r.checked) || {}).value || DEFAULT_LOOKBACK;
    let answer;
    try {
      answer = await api(ACTIVITY_URL, { org: ORG, lookback });
    } catch {
      answer = { error: "unreachable" };
    }
    const top = (answer.data || []).find((row) => services.includes(row.service));
    serviceHint.hidden = !top;
    if (!top) return "";
    serviceHint.textContent = `Busiest in the last ${lookback}: ${plural(top.spans, "span")}`;
    serviceHint.dataset.service = top.service;
    return top.service;
  }

  async function loadOperations() {
    const service = serviceSel.value;
    const wanted = wantedOperation;
    if (!operations.has(service)) {
      opSel.disabled = true;
      let answer;
      try {
        answer = await api(`${API}services/${encodeURIComponent(service)}/operations`, { org: ORG });
      } catch {
        answer = { error: "unreachable" };
      }
      opSel.disabled = false;
      if (!answer.error) operations.set(service, answer.data || []);
      if (serviceSel.value !== service) return; // another service was picked meanwhile
    }
    const names = [...(operations.get(service) || [])];
    if (wanted && !names.includes(wanted)) names.unshift(wanted);
    opSel.replaceChildren(option("", "All operations"), ...names.map((n) => option(n)));
    opSel.value = wanted;
    wantedOperation = "";
  }

  // ---- searching ----------------------------------------------------------------------------

  function showState(...kids) {
    view = null;
    body.replaceChildren(el("div", { class: "state" }, ...kids));
  }

  function showError(message, type) {
    view = null;
    meta.textContent = "Search failed";
    body.replaceChildren(
      el(
        "div",
        { class: "error-box", role: "alert" },
        el(
          "p",
          { class: "error-title" },
          type === "services" ? "Could not load the services" : "The search failed",
          type && type !== "services" ? el("span", { class: "pill pill-err" }, type) : null,
        ),
        el("pre", { class: "error-text" }, message),
      ),
    );
  }

  async function run(push = true) {
    if (!services || !services.length) return;
    const state = readForm();
    const found = problems(state);
    showProblems(found);
    if (found.length) {
      found[0][0].focus();
      return;
    }
    writeURL(state, push);
    serviceHint.hidden = serviceHint.dataset.service !== state.service;
    if (inflight) inflight.abort();
    const controller = (inflight = new AbortController());
    const nowMs = Date.now();
    meta.textContent = "Searching…";
    body.setAttribute("aria-busy", "true");
    showState(
      el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Searching traces…"),
    );
    const began = performance.now();
    let answer;
    try {
      answer = await api(`${API}traces`, apiParams(state, nowMs), controller.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      answer = { error: `Could not reach Canopy: ${err.message}`, status: "network" };
    }
    if (controller !== inflight) return; // a newer search took over
    inflight = null;
    body.removeAttribute("aria-busy");
    const took = Math.round(performance.now() - began);
    if (answer.error) return showError(answer.error, answer.status ? `HTTP ${answer.status}` : "");
    const traces = (answer.data || []).filter((t) => t.spans && t.spans.length).map(T.parseTrace);
    show(traces, { state, nowMs, took });
  }

  function filtersOf(state) {
    const out = [];
    if (state.operation) out.push(`operation ${state.operation}`);
    if (state.tags) out.push(`tags ${state.tags}`);
    if (state.minDuration) out.push(`at least ${state.minDuration}`);
    if (state.maxDuration) out.push(`at most ${state.maxDuration}`);
    if (state.errorsOnly) out.push("errors only");
    return out;
  }

  function show(traces, ctx) {
    const { state, nowMs, took } = ctx;
    meta.textContent = `${plural(traces.length, "trace")} · last ${state.lookback} · ${took} ms`;
    if (!traces.length) return showEmpty(state);
    view = { traces, nowMs };
    const slowest = Math.max(...traces.map((t) => t.duration), 1);
    const full = traces.length >= Number(state.limit);
    const parts = [
      el("div", {
        class: "chart scatter",
      }),
      full
        ? el(
            "p",
            { class: "note" },
            `Showing the first ${plural(traces.length, "trace")}. Raise the limit or narrow the ` +
              "search to see others.",
          )
        : null,
      el(
        "ol",
        { class: "trace-list", "aria-label": "Traces found" },
        traces.map((t) => traceItem(t, slowest, nowMs)),
      ),
    ];
    body.replaceChildren(...parts.filter(Boolean));
    drawScatter();
  }

  function showEmpty(state) {
    const filters = filtersOf(state);
    const longer = Object.keys(LOOKBACKS).filter((l) => LOOKBACKS[l] > LOOKBACKS[state.lookback]);
    showState(
      el("p", { class: "state-title" }, `No traces of ${state.service} in the last ${state.lookback}`),
      el(
        "p",
        {},
        filters.length
          ? `Nothing matched ${filters.join(", ")}.`
          : `${state.service} sent no spans in this window.`,
        longer.length && filters.length ? " Widen the lookback or loosen the filters." : "",
        longer.length && !filters.length ? " Widen the lookback." : "",
        !longer.length && filters.length ? " Loosen the filters." : "",
        " Spans are searchable a few seconds after they arrive.",
      ),
      el(
        "p",
        { class: "widen" },
        longer.map((l) =>
          el("button", { type: "button", class: "small", onclick: () => setLookback(l) }, `Last ${l}`),
        ),
        filters.length
          ? el("button", { type: "button", class: "small", onclick: clearFilters }, "Clear filters")
          : null,
      ),
    );
  }

  function setLookback(lookback) {
    for (const r of lookbackRadios) r.checked = r.value === lookback;
    run();
  }

  function clearFilters() {
    opSel.value = "";
    tagsInput.value = "";
    minInput.value = "";
    maxInput.value = "";
    errorsBox.checked = false;
    run();
  }

  // ---- the list -----------------------------------------------------------------------------

  function traceItem(t, slowest, nowMs) {
    const r = t.root;
    const startMs = t.start / 1000;
    const date = new Date(startMs);
    const pct = Math.max(0.5, (100 * t.duration) / slowest);
    return el(
      "li",
      { class: `trace-item${t.errors ? " has-errors" : ""}`, "data-trace-id": t.id },
      el(
        "a",
        {
          class: "trace-row",
          href: traceHref(t.id),
          onmouseenter: () => highlight(t.id, true),
          onmouseleave: () => highlight(t.id, false),
          onfocus: () => highlight(t.id, true),
          onblur: () => highlight(t.id, false),
        },
        el(
          "span",
          { class: "trace-row-head" },
          el(
            "span",
            { class: "trace-title" },
            el("span", { class: "svc-dot", style: `--c: ${T.serviceColor(r.service)}`, "aria-hidden": "true" }),
            el("span", { class: "trace-svc" }, r.service),
            el("span", { class: "trace-sep", "aria-hidden": "true" }, ": "),
            el("span", { class: "trace-op" }, r.operation),
          ),
          el("span", { class: "trace-short-id", title: t.id }, t.id.slice(0, 8)),
          el("span", { class: "trace-duration" }, fmtDuration(t.duration)),
        ),
        el(
          "span",
          { class: "trace-bar", "aria-hidden": "true" },
          el("span", { style: `width: ${pct.toFixed(2)}%` }),
        ),
        el(
          "span",
          { class: "trace-row-foot" },
          el("span", { class: "pill pill-off" }, plural(t.spans.length, "span")),
          t.errors ? el("span", { class: "pill pill-err" }, plural(t.errors, "error")) : null,
          el(
            "span",
            { class: "trace-services" },
            [...t.services].map(([name, n]) => T.serviceChip(name, n)),
          ),
          el(
            "time",
            {
              class: "trace-when",
              datetime: date.toISOString(),
              title: fmtDateTime(date),
              "data-ms": String(startMs),
            },
            fmtAgo(startMs, nowMs),
          ),
        ),
      ),
    );
  }

  function highlight(id, on) {
    for (const node of body.querySelectorAll(`[data-trace-id="${CSS.escape(id)}"]`)) {
      node.classList.toggle("hover", on);
    }
  }

  // ---- the scatter chart --------------------------------------------------------------------

  function drawScatter() {
    const box = body.querySelector(".scatter");
    if (!view || !box) return;
    const { traces } = view;
    const width = Math.max(280, box.clientWidth);
    const height = width < 600 ? 180 : 210;

    const starts = traces.map((t) => t.start / 1000);
    let lo = Math.min(...starts);
    let hi = Math.max(...starts);
    const minSpan = 60_000;
    if (hi - lo < minSpan) {
      const mid = (hi + lo) / 2;
      [lo, hi] = [mid - minSpan / 2, mid + minSpan / 2];
    }
    const padT = (hi - lo) * 0.04;
    [lo, hi] = [lo - padT, hi + padT];

    const y = T.linearTicks(Math.max(...traces.map((t) => t.duration)), height < 200 ? 3 : 4);
    const yLabels = y.ticks.map((v) => (v === 0 ? "0" : fmtDuration(v)));
    const left = 16 + 6.6 * Math.max(...yLabels.map((l) => l.length));
    const [right, top, bottom] = [16, 12, 26];
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const xOf = (ms) => left + ((ms - lo) / (hi - lo)) * plotW;
    const yOf = (us) => top + (1 - us / y.max) * plotH;

    // One tab stop for the whole chart (the list below is the keyboard path through the
    // traces): arrow keys walk the dots by start time, Enter opens the current one.
    const chart = svg("svg", {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      tabindex: "0",
      role: "group",
      "aria-roledescription": "scatter plot",
      "aria-label":
        `${plural(traces.length, "trace")} by start time and duration. Left and right arrows ` +
        "move between them, Enter opens one; the list below has the same traces.",
      "aria-describedby": "scatter-current",
    });
    const grid = svg("g", { class: "grid" });
    const labels = svg("g", { class: "ticks" });
    y.ticks.forEach((v, i) => {
      const py = yOf(v);
      grid.append(svg("line", { x1: left, x2: width - right, y1: py, y2: py, class: v === 0 ? "baseline" : "" }));
      labels.append(
        svg("text", { x: left - 8, y: py, "text-anchor": "end", "dominant-baseline": "middle", text: yLabels[i] }),
      );
    });
    const x = T.timeTicks(lo, hi, plotW);
    for (const t of x.ticks) {
      const px = xOf(t);
      grid.append(svg("line", { x1: px, x2: px, y1: top, y2: top + plotH, class: "vertical" }));
      labels.append(svg("text", { x: px, y: height - 6, "text-anchor": "middle", text: x.label(t) }));
    }
    chart.append(grid, labels);

    const tip = el("div", { class: "chart-tip", hidden: true, "aria-hidden": "true" });
    const dots = svg("g", { class: "dots" });
    const points = [];
    // Errors last, so they are drawn on top.
    const order = [...traces].sort((a, b) => (a.errors > 0) - (b.errors > 0));
    for (const t of order) {
      const cx = xOf(t.start / 1000);
      const cy = yOf(t.duration);
      const r = Math.min(9, 3.5 + Math.sqrt(t.spans.length) * 0.9);
      const label = `${t.root.service}: ${t.root.operation}, ${fmtDuration(t.duration)}, ${plural(t.spans.length, "span")}${t.errors ? `, ${plural(t.errors, "error")}` : ""}`;
      const link = svg(
        "g",
        { class: `dot-link${t.errors ? " err" : ""}`, "data-trace-id": t.id, "aria-hidden": "true" },
        svg("title", { text: label }),
        svg("circle", { cx, cy, r, class: "dot" }),
      );
      link.addEventListener("mouseenter", () => {
        highlight(t.id, true);
        showTip(tip, t, cx, cy, box);
      });
      link.addEventListener("mouseleave", () => {
        highlight(t.id, false);
        tip.hidden = true;
      });
      link.addEventListener("click", () => {
        location.href = traceHref(t.id);
      });
      dots.append(link);
      points.push({ t, cx, cy, label, link });
    }
    points.sort((a, b) => a.t.start - b.t.start || a.t.id.localeCompare(b.t.id));
    let current = -1;
    const spoken = el("p", { class: "sr-only", id: "scatter-current", "aria-live": "polite" });
    const move = (i) => {
      if (current >= 0) {
        points[current].link.classList.remove("current");
        highlight(points[current].t.id, false);
      }
      current = Math.max(0, Math.min(points.length - 1, i));
      const p = points[current];
      p.link.classList.add("current");
      highlight(p.t.id, true);
      showTip(tip, p.t, p.cx, p.cy, box);
      spoken.textContent = `${current + 1} of ${points.length}: ${p.label}`;
    };
    chart.addEventListener("keydown", (e) => {
      const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      if (e.key in keys) move(current < 0 ? 0 : current + keys[e.key]);
      else if (e.key === "Home") move(0);
      else if (e.key === "End") move(points.length - 1);
      else if (e.key === "Enter" && current >= 0) location.href = traceHref(points[current].t.id);
      else return;
      e.preventDefault();
    });
    chart.addEventListener("blur", () => {
      if (current >= 0) highlight(points[current].t.id, false);
      tip.hidden = true;
    });
    chart.append(dots);
    box.replaceChildren(chart, tip, spoken);
  }

  function showTip(tip, t, cx, cy, box) {
    const date = new Date(t.start / 1000);
    tip.replaceChildren(
      el("div", { class: "tip-time" }, `${t.root.service}: ${t.root.operation}`),
      el(
        "div",
        { class: "tip-row tip-pair" },
        el("span", { class: "tip-name" }, "Duration"),
        el("span", { class: "tip-val" }, fmtDuration(t.duration)),
      ),
      el(
        "div",
        { class: "tip-row tip-pair" },
        el("span", { class: "tip-name" }, "Spans"),
        el("span", { class: "tip-val" }, `${t.spans.length}${t.errors ? ` · ${plural(t.errors, "error")}` : ""}`),
      ),
      el(
        "div",
        { class: "tip-row tip-pair" },
        el("span", { class: "tip-name" }, "Started"),
        el("span", { class: "tip-val" }, fmtDateTime(date)),
      ),
    );
    tip.hidden = false;
    const room = box.clientWidth;
    const w = tip.offsetWidth;
    tip.style.left = `${cx + 14 + w > room ? Math.max(0, cx - 14 - w) : cx + 14}px`;
    tip.style.top = `${Math.max(0, cy - 30)}px`;
  }

  // ---- wiring -------------------------------------------------------------------------------

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
  serviceSel.addEventListener("change", async () => {
    wantedOperation = "";
    await loadOperations();
    run();
  });
  opSel.addEventListener("change", () => run());
  errorsBox.addEventListener("change", () => run());
  for (const r of [...lookbackRadios, ...sortRadios]) r.addEventListener("change", () => run());
  for (const input of [tagsInput, minInput, maxInput, limitInput]) {
    input.addEventListener("input", () => {
      if (input.hasAttribute("aria-invalid")) showProblems(problems(readForm()).filter(([i]) => i !== input));
    });
  }
  $("recheck").addEventListener("click", loadServices);
  window.addEventListener("popstate", async () => {
    applyState(stateFromURL());
    if (!services || !services.length) return;
    await loadOperations();
    run(false);
  });
  let lastWidth = 0;
  new ResizeObserver(() => {
    const width = body.clientWidth;
    if (width !== lastWidth) {
      lastWidth = width;
      drawScatter();
    }
  }).observe(body);
  // "3 min ago" stays true while the page is open.
  setInterval(() => {
    const now = Date.now();
    for (const node of body.querySelectorAll("time[data-ms]")) {
      node.textContent = fmtAgo(Number(node.dataset.ms), now);
    }
  }, 30_000);

  applyState(stateFromURL());
  loadServices();
})();
