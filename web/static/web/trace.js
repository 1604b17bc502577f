/* Canopy's trace view: one trace from /jaeger/api/traces/{id} drawn as a waterfall (a row per
   span, indented under its parent, a bar positioned and sized by start and duration), the
   critical path from /jaeger/api/traces/{id}/critical-path laid over the bars, collapsible
   subtrees, a span finder and a detail panel. Everything a sender wrote (service, operation,
   tags, logs) is inserted as text only. */
(() => {
  "use strict";

  const root = document.getElementById("trace");
  if (!root) return;

  const T = window.CanopyTraces;
  const { el, api, fmtDuration, fmtDateTime, plural } = T;
  const API = root.dataset.api;
  const ORG = root.dataset.org;
  const ORG_NAME = root.dataset.orgName || ORG;
  const TRACE_ID = root.dataset.traceId;
  const SEARCH_URL = root.dataset.searchUrl;
  const TRACE_URL = root.dataset.traceUrl;
  const LABEL_WIDTH_KEY = "canopy.trace.labelWidth";

  const $ = (id) => document.getElementById(id);
  const head = $("trace-head");
  const bodyEl = $("trace-body");

  let model = null; // the parsed trace
  let critical = new Map(); // span uid -> [[start, end], ...] (µs) on the critical path
  let criticalOk = false;
  let rows = []; // row element per span uid
  let byUid = []; // span per uid
  let detail = null; // the detail panel element
  let selected = null; // the selected span
  const collapsed = new Set(); // uids of collapsed spans
  const descendants = new Map(); // uid -> number of spans below

  // ---- loading ------------------------------------------------------------------------------

  async function load() {
    let answers;
    try {
      answers = await Promise.all([
        api(`${API}traces/${TRACE_ID}`, { org: ORG }),
        api(`${API}traces/${TRACE_ID}/critical-path`, { org: ORG }).catch(() => ({ error: "unreachable" })),
        // Only for the service colours, which follow the org's service list.
        api(`${API}services`, { org: ORG }).catch(() => ({ error: "unreachable" })),
      ]);
    } catch (err) {
      return showError(`Could not reach Canopy: ${err.message}`);
    }
    const [trace, path, names] = answers;
    if (!names.error) T.useServices(names.data || []);
    if (trace.status === 404) return showNotFound();
    if (trace.error) return showError(trace.error);
    const raw = (trace.data || [])[0];
    if (!raw || !raw.spans || !raw.spans.length) return showNotFound();
    model = T.parseTrace(raw);
    byUid = [];
    for (const span of model.spans) byUid[span.uid] = span;
    criticalOk = !path.error;
    critical = new Map();
    if (criticalOk) {
      for (const seg of path.data || []) {
        const span = model.byId.get(seg.spanID);
        if (!span) continue;
        if (!critical.has(span.uid)) critical.set(span.uid, []);
        critical.get(span.uid).push([seg.startTime, seg.endTime]);
      }
    }
    for (const span of [...model.spans].reverse()) {
      descendants.set(
        span.uid,
        span.children.reduce((n, c) => n + 1 + (descendants.get(c.uid) || 0), 0),
      );
    }
    renderHeader();
    renderWaterfall();
    const wanted = new URLSearchParams(location.search).get("span");
    const first = wanted && model.spans.find((s) => s.id === wanted);
    if (first) {
      revealSpan(first);
      select(first, { focus: false, scroll: true });
    }
  }

  function showNotFound() {
    head.hidden = true;
    document.title = "Trace not found · Canopy";
    bodyEl.replaceChildren(
      el(
        "div",
        { class: "state", "data-testid": "trace-not-found" },
        el("p", { class: "state-title" }, "Trace not found"),
        el("p", {}, "No trace with ID ", el("code", {}, TRACE_ID), ` in ${ORG_NAME}.`),
        el(
          "p",
          {},
          "It may belong to another organization, be older than the retention period, or not " +
            "have arrived yet: spans are searchable a few seconds after they are sent.",
        ),
        el(
          "p",
          { class: "widen" },
          el("a", { class: "button small", href: T.urlWith(SEARCH_URL, { org: ORG }) }, "Search traces"),
          el("button", { type: "button", class: "small", onclick: () => location.reload() }, "Try again"),
        ),
      ),
    );
  }

  function showError(message) {
    head.hidden = true;
    bodyEl.replaceChildren(
      el(
        "div",
        { class: "error-box", role: "alert" },
        el("p", { class: "error-title" }, "Could not load the trace"),
        el("pre", { class: "error-text" }, message),
      ),
    );
  }

  // ---- the header ---------------------------------------------------------------------------

  function stat(label, value, attrs) {
    return el("div", { class: "trace-stat", ...attrs }, el("dt", {}, label), el("dd", {}, value));
  }

  function renderHeader() {
    const r = model.root;
    const started = new Date(model.start / 1000);
    document.title = `${r.service}: ${r.operation} · Trace · Canopy`;
    $("trace-title").replaceChildren(
      el("span", { class: "svc-dot", style: `--c: ${T.serviceColor(r.service)}`, "aria-hidden": "true" }),
      el("span", { class: "trace-svc" }, r.service),
      el("span", { class: "trace-sep", "aria-hidden": "true" }, ": "),
      el("span", { class: "trace-op" }, r.operation),
    );
    const onPath = critical.size;
    $("trace-stats").replaceChildren(
      stat("Duration", fmtDuration(model.duration), { "data-stat": "duration" }),
      stat("Spans", String(model.spans.length), { "data-stat": "spans" }),
      stat("Services", String(model.services.size), { "data-stat": "services" }),
      stat("Depth", String(model.depth), { "data-stat": "depth" }),
      stat("Errors", String(model.errors), {
        "data-stat": "errors",
        class: `trace-stat${model.errors ? " is-err" : ""}`,
      }),
      criticalOk ? stat("Critical path", plural(onPath, "span"), { "data-stat": "critical" }) : null,
      stat(
        "Started",
        el(
          "time",
          { datetime: started.toISOString(), title: T.fmtAgo(model.start / 1000) },
          fmtDateTime(started),
        ),
        { "data-stat": "start" },
      ),
    );
    $("trace-services").replaceChildren(
      ...[...model.services].map(([name, n]) =>
        T.serviceChip(name, n, { href: T.urlWith(SEARCH_URL, { org: ORG, service: name }) }),
      ),
    );
    const back = $("back-to-search");
    back.href = T.urlWith(SEARCH_URL, { org: ORG, service: r.service });
    const copy = $("copy-id");
    if (navigator.clipboard && window.isSecureContext) {
      copy.hidden = false;
      copy.onclick = async () => {
        await navigator.clipboard.writeText(TRACE_ID);
        copy.textContent = "Copied";
        setTimeout(() => (copy.textContent = "Copy trace ID"), 1500);
      };
    }
    head.hidden = false;
  }

  // ---- the waterfall ------------------------------------------------------------------------

  const pct = (us) => (model.duration > 0 ? (100 * us) / model.duration : 0);

  function rulerTicks() {
    const { ticks } = T.linearTicks(model.duration, 5);
    return ticks.filter((t) => t <= model.duration * 1.0001);
  }

  function renderWaterfall() {
    const ticks = rulerTicks();
    const find = el("input", {
      type: "search",
      id: "span-find",
      placeholder: "Find spans: service, operation, tag, ID…",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": "Find spans",
    });
    const findCount = el("span", { class: "wf-find-count", role: "status", "aria-live": "polite" });
    const cpToggle = el("input", { type: "checkbox", id: "cp-toggle", checked: criticalOk, disabled: !criticalOk });
    const toolbar = el(
      "div",
      { class: "wf-toolbar" },
      el("div", { class: "wf-find" }, find, findCount),
      el(
        "label",
        { class: "check wf-cp-toggle", title: criticalOk ? "" : "The critical path is unavailable" },
        cpToggle,
        el("span", { class: "lg-cp", "aria-hidden": "true" }),
        "Critical path",
      ),
      el("span", { class: "wf-legend" }, el("span", { class: "lg-err", "aria-hidden": "true" }), "Error"),
      el(
        "span",
        { class: "wf-buttons" },
        el("button", { type: "button", class: "small", onclick: () => collapseAll(false) }, "Expand all"),
        el("button", { type: "button", class: "small", onclick: () => collapseAll(true) }, "Collapse all"),
      ),
    );

    const splitter = el("div", {
      class: "wf-splitter",
      role: "separator",
      "aria-orientation": "vertical",
      "aria-label": "Resize the span names column",
      tabindex: "0",
    });
    const ruler = el(
      "div",
      { class: "wf-ruler", "aria-hidden": "true" },
      ticks.map((t) => {
        const p = pct(t);
        return el(
          "span",
          { class: `wf-tick${p > 94 ? " end" : ""}`, style: `left: ${p.toFixed(3)}%` },
          t === 0 ? "0" : fmtDuration(t),
        );
      }),
    );
    const gridLines = el(
      "div",
      { class: "wf-grid", "aria-hidden": "true" },
      ticks.map((t) => el("span", { style: `left: ${pct(t).toFixed(3)}%` })),
    );
    const wfHead = el(
      "div",
      { class: "wf-head" },
      el("div", { class: "wf-head-label" }, "Service and operation", splitter),
      ruler,
    );
    rows = [];
    const fragment = document.createDocumentFragment();
    model.spans.forEach((span, i) => {
      const row = spanRow(span);
      if (i === 0) row.tabIndex = 0;
      rows[span.uid] = row;
      fragment.append(row);
    });
    const tree = el(
      "div",
      {
        class: "wf-rows",
        role: "tree",
        "aria-label": `${plural(model.spans.length, "span")}. Arrow keys move, Enter opens a span.`,
      },
      gridLines,
    );
    tree.append(fragment);
    const wf = el("div", { class: "wf", id: "waterfall" }, wfHead, tree);
    const saved = Number(T.store.get(LABEL_WIDTH_KEY));
    if (saved >= 15 && saved <= 70) wf.style.setProperty("--label-user", `${saved}%`);
    const layout = el("div", { class: "trace-layout" }, el("div", { class: "trace-main" }, toolbar, wf));
    bodyEl.replaceChildren(layout);

    tree.addEventListener("click", onTreeClick);
    tree.addEventListener("keydown", onTreeKey);
    cpToggle.addEventListener("change", () => wf.classList.toggle("cp-off", !cpToggle.checked));
    let timer = null;
    find.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => findSpans(find.value, findCount), 120);
    });
    find.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        find.value = "";
        findSpans("", findCount);
      }
    });
    splitterDrag(splitter, wf);
    // Deep trees indent less, so that the deepest names keep at least half the column.
    const deepest = Math.max(1, model.depth - 1);
    let labelPx = 0;
    new ResizeObserver(() => {
      const px = wf.querySelector(".wf-head-label").clientWidth;
      if (px === labelPx) return;
      labelPx = px;
      wf.style.setProperty("--indent", `${Math.max(3, Math.min(14, Math.floor((px * 0.45) / deepest)))}px`);
    }).observe(wf.querySelector(".wf-head-label"));
  }

  function spanRow(span) {
    const hasKids = span.children.length > 0;
    const left = pct(span.start - model.start);
    const width = pct(span.duration);
    const segments = critical.get(span.uid) || [];
    const row = el(
      "div",
      {
        class: `wf-row${span.error ? " is-err" : ""}${segments.length ? " on-cp" : ""}`,
        role: "treeitem",
        "aria-level": String(span.depth + 1),
        "aria-expanded": hasKids ? "true" : null,
        "aria-selected": "false",
        "aria-label": `${span.service}: ${span.operation}, ${fmtDuration(span.duration)}${span.error ? ", error" : ""}${segments.length ? ", on the critical path" : ""}`,
        tabindex: "-1",
        "data-span-id": span.id,
        "data-uid": String(span.uid),
        style: `--c: ${T.serviceColor(span.service)}; --depth: ${span.depth}`,
      },
      el(
        "div",
        { class: "wf-label" },
        el("span", { class: "wf-indent", "aria-hidden": "true" }),
        hasKids
          ? el("button", {
              type: "button",
              class: "wf-toggle",
              tabindex: "-1",
              "aria-hidden": "true",
              title: "Collapse or expand (← →)",
            })
          : el("span", { class: "wf-toggle-spacer", "aria-hidden": "true" }),
        el("span", { class: "wf-swatch", "aria-hidden": "true" }),
        el(
          "span",
          { class: "wf-name", title: `${span.service} ${span.operation}` },
          el("span", { class: "wf-svc" }, span.service),
          " ",
          el("span", { class: "wf-op" }, span.operation),
        ),
        span.error ? el("span", { class: "wf-err-mark", title: "Error" }, "!") : null,
        el("span", { class: "wf-more", hidden: true }),
      ),
      el(
        "div",
        { class: "wf-track" },
        el("div", { class: "wf-bar", style: `left: ${left.toFixed(4)}%; width: ${width.toFixed(4)}%` }),
        segments.map(([a, b]) =>
          el("div", {
            class: "wf-cp",
            style: `left: ${pct(a - model.start).toFixed(4)}%; width: ${pct(b - a).toFixed(4)}%`,
          }),
        ),
        el(
          "span",
          // After the bar: the track keeps a margin on its right for the last ones.
          { class: "wf-dur", style: `left: calc(${(left + width).toFixed(4)}% + 6px)` },
          fmtDuration(span.duration),
        ),
      ),
    );
    return row;
  }

  // ---- collapsing ---------------------------------------------------------------------------

  function applyVisibility() {
    let hideBelow = Infinity;
    for (const span of model.spans) {
      if (span.depth <= hideBelow) hideBelow = Infinity;
      const row = rows[span.uid];
      const hidden = span.depth > hideBelow;
      row.hidden = hidden;
      const isCollapsed = collapsed.has(span.uid);
      if (span.children.length) {
        row.setAttribute("aria-expanded", String(!isCollapsed));
        const more = row.querySelector(".wf-more");
        more.hidden = !isCollapsed;
        more.textContent = isCollapsed ? `+${descendants.get(span.uid)}` : "";
      }
      if (!hidden && isCollapsed) hideBelow = span.depth;
    }
  }

  function setCollapsed(span, value) {
    if (!span.children.length) return;
    if (value) collapsed.add(span.uid);
    else collapsed.delete(span.uid);
    applyVisibility();
  }

  function collapseAll(value) {
    collapsed.clear();
    // "Collapse all" keeps the root's children in view, as Jaeger UI does.
    if (value) for (const span of model.spans) if (span.children.length && span.depth > 0) collapsed.add(span.uid);
    applyVisibility();
  }

  function revealSpan(span) {
    let changed = false;
    for (let p = span.parent; p; p = p.parent) if (collapsed.delete(p.uid)) changed = true;
    if (changed) applyVisibility();
  }

  // ---- finding spans ------------------------------------------------------------------------

  function haystack(span) {
    if (!span._text) {
      const parts = [span.service, span.operation, span.id, span.kind, span.status];
      for (const t of span.tags) parts.push(t.key, T.tagValue(t));
      for (const t of span.process.tags || []) parts.push(t.key, T.tagValue(t));
      for (const log of span.logs) for (const f of log.fields || []) parts.push(f.key, T.tagValue(f));
      span._text = parts.join("\n").toLowerCase();
    }
    return span._text;
  }

  function findSpans(query, counter) {
    const q = query.trim().toLowerCase();
    const wf = $("waterfall");
    wf.classList.toggle("finding", Boolean(q));
    let n = 0;
    let revealed = false;
    for (const span of model.spans) {
      const hit = Boolean(q) && haystack(span).includes(q);
      rows[span.uid].classList.toggle("match", hit);
      if (hit) {
        n++;
        for (let p = span.parent; p; p = p.parent) if (collapsed.delete(p.uid)) revealed = true;
      }
    }
    if (revealed) applyVisibility();
    counter.textContent = q ? `${n} of ${plural(model.spans.length, "span")}` : "";
  }

  // ---- selection and keys -------------------------------------------------------------------

  const spanOf = (row) => byUid[Number(row.dataset.uid)];

  function onTreeClick(e) {
    const row = e.target.closest(".wf-row");
    if (!row) return;
    const span = spanOf(row);
    if (e.target.closest(".wf-toggle")) {
      setCollapsed(span, !collapsed.has(span.uid));
      focusRow(row);
      return;
    }
    select(span, { focus: true });
  }

  function focusRow(row) {
    for (const r of rows) if (r.tabIndex === 0 && r !== row) r.tabIndex = -1;
    row.tabIndex = 0;
    row.focus({ preventScroll: false });
  }

  function visibleRows() {
    return model.spans.map((s) => rows[s.uid]).filter((r) => !r.hidden);
  }

  function onTreeKey(e) {
    const row = e.target.closest(".wf-row");
    if (!row) return;
    const span = spanOf(row);
    const visible = visibleRows();
    const i = visible.indexOf(row);
    const go = (r) => {
      if (r) {
        e.preventDefault();
        focusRow(r);
      }
    };
    switch (e.key) {
      case "ArrowDown":
        return go(visible[i + 1]);
      case "ArrowUp":
        return go(visible[i - 1]);
      case "Home":
        return go(visible[0]);
      case "End":
        return go(visible[visible.length - 1]);
      case "ArrowRight":
        e.preventDefault();
        if (collapsed.has(span.uid)) setCollapsed(span, false);
        else if (span.children.length) focusRow(rows[span.children[0].uid]);
        return;
      case "ArrowLeft":
        e.preventDefault();
        if (span.children.length && !collapsed.has(span.uid)) setCollapsed(span, true);
        else if (span.parent) focusRow(rows[span.parent.uid]);
        return;
      case "Enter":
      case " ":
        e.preventDefault();
        select(span, { focus: true });
        return;
      case "Escape":
        closeDetail();
        return;
      default:
    }
  }

  function select(span, { focus = false, scroll = false } = {}) {
    if (selected) rows[selected.uid].setAttribute("aria-selected", "false");
    selected = span;
    const row = rows[span.uid];
    row.setAttribute("aria-selected", "true");
    if (focus) focusRow(row);
    if (scroll) row.scrollIntoView({ block: "center" });
    const params = new URLSearchParams(location.search);
    params.set("span", span.id);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    showDetail(span);
  }

  function closeDetail() {
    if (!detail) return;
    const layout = bodyEl.querySelector(".trace-layout");
    layout.classList.remove("with-detail");
    detail.remove();
    detail = null;
    if (selected) {
      rows[selected.uid].setAttribute("aria-selected", "false");
      focusRow(rows[selected.uid]);
      selected = null;
    }
    const params = new URLSearchParams(location.search);
    params.delete("span");
    const query = params.toString();
    history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}`);
  }

  // ---- the detail panel ---------------------------------------------------------------------

  function kv(rowsData, caption) {
    if (!rowsData.length) return el("p", { class: "muted kv-empty" }, `No ${caption.toLowerCase()}.`);
    return el(
      "table",
      { class: "kv" },
      el("caption", { class: "sr-only" }, caption),
      el(
        "tbody",
        {},
        rowsData.map(([k, v, type]) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, T.breakable(k)),
            el("td", { class: type && type !== "string" ? `v-${type}` : null }, v),
          ),
        ),
      ),
    );
  }

  const tagRows = (tags) =>
    [...tags].sort((a, b) => a.key.localeCompare(b.key)).map((t) => [t.key, T.tagValue(t), t.type]);

  function section(title, count, ...kids) {
    return el(
      "section",
      { class: "sd-section" },
      el("h3", {}, title, count != null ? el("span", { class: "sd-count" }, String(count)) : null),
      ...kids,
    );
  }

  function showDetail(span) {
    const layout = bodyEl.querySelector(".trace-layout");
    const offset = span.start - model.start;
    const self = T.selfTime(span);
    const segments = critical.get(span.uid) || [];
    const onPath = segments.reduce((n, [a, b]) => n + (b - a), 0);
    const statusPill = el(
      "span",
      { class: `pill ${span.status === "ERROR" ? "pill-err" : span.status === "OK" ? "" : "pill-off"}` },
      span.status,
    );
    const summary = [
      ["Service", T.serviceChip(span.service)],
      ["Kind", span.kind || "unspecified"],
      ["Status", [statusPill, span.statusMessage ? el("span", { class: "sd-status-msg" }, span.statusMessage) : null]],
      ["Duration", `${fmtDuration(span.duration)} (${pct(span.duration).toFixed(1)}% of the trace)`],
      ["Self time", fmtDuration(self)],
      [
        "Start",
        [`+${fmtDuration(offset)}`, el("span", { class: "muted" }, ` · ${fmtDateTime(new Date(span.start / 1000))}`)],
      ],
      [
        "Critical path",
        criticalOk
          ? onPath
            ? `${fmtDuration(onPath)} of this span (${((100 * onPath) / Math.max(span.duration, 1)).toFixed(0)}%)`
            : "Not on the critical path"
          : "Unavailable",
      ],
      ["Span ID", el("code", {}, span.id)],
      [
        "Parent",
        span.parent
          ? el(
              "button",
              { type: "button", class: "linkish", onclick: () => jumpTo(span.parent) },
              `${span.parent.service}: ${span.parent.operation}`,
            )
          : "None (a root span)",
      ],
    ];
    const links = span.references.filter((r) => r.refType === "FOLLOWS_FROM");
    const processTags = [["service.name", span.service, "string"], ...tagRows(span.process.tags || [])];
    const panel = el(
      "aside",
      { class: "span-detail", id: "span-detail", "aria-label": "Span details", tabindex: "-1" },
      el(
        "div",
        { class: "sd-head", style: `--c: ${T.serviceColor(span.service)}` },
        el("div", { class: "sd-title" }, el("span", { class: "sd-kicker" }, span.service), el("h2", {}, span.operation)),
        el("button", { type: "button", class: "sd-close", "aria-label": "Close span details", onclick: closeDetail }, "×"),
      ),
      el(
        "dl",
        { class: "sd-summary" },
        summary.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
      ),
      section("Attributes", span.tags.length, kv(tagRows(span.tags), "Attributes")),
      section("Resource", processTags.length, kv(processTags, "Resource attributes")),
      section(
        "Events",
        span.logs.length,
        span.logs.length
          ? el(
              "ol",
              { class: "sd-events" },
              span.logs.map((log) => {
                const fields = log.fields || [];
                const name = fields.find((f) => f.key === "event");
                return el(
                  "li",
                  {},
                  el(
                    "div",
                    { class: "sd-event-head" },
                    el("span", { class: "sd-event-time" }, `+${fmtDuration(log.timestamp - model.start)}`),
                    el("strong", {}, name ? T.tagValue(name) : "event"),
                  ),
                  kv(tagRows(fields.filter((f) => f !== name)), "Event attributes"),
                );
              }),
            )
          : el("p", { class: "muted kv-empty" }, "No events."),
      ),
      links.length
        ? section(
            "Links",
            links.length,
            el(
              "ul",
              { class: "sd-links" },
              links.map((ref) => {
                const here = ref.traceID === model.id && model.byId.get(ref.spanID);
                return el(
                  "li",
                  {},
                  here
                    ? el("button", { type: "button", class: "linkish", onclick: () => jumpTo(here) }, `${here.service}: ${here.operation}`)
                    : el(
                        "a",
                        { href: T.urlWith(`${TRACE_URL}${ref.traceID}`, { org: ORG, span: ref.spanID }) },
                        `Trace ${ref.traceID.slice(0, 12)}…, span ${ref.spanID}`,
                      ),
                );
              }),
            ),
          )
        : null,
      span.warnings.length
        ? section("Warnings", span.warnings.length, el("ul", { class: "sd-warnings" }, span.warnings.map((w) => el("li", {}, w))))
        : null,
    );
    if (detail) detail.replaceWith(panel);
    else layout.append(panel);
    detail = panel;
    layout.classList.add("with-detail");
    panel.scrollTop = 0;
    if (window.matchMedia("(max-width: 1100px)").matches) panel.scrollIntoView({ block: "nearest" });
  }

  function jumpTo(span) {
    revealSpan(span);
    select(span, { focus: true, scroll: true });
  }

  // ---- resizing the names column ------------------------------------------------------------

  function splitterDrag(splitter, wf) {
    const set = (p) => {
      const clamped = Math.max(15, Math.min(70, p));
      wf.style.setProperty("--label-user", `${clamped.toFixed(1)}%`);
      T.store.set(LABEL_WIDTH_KEY, clamped.toFixed(1));
    };
    const current = () => {
      const box = wf.getBoundingClientRect();
      return (100 * wf.querySelector(".wf-head-label").getBoundingClientRect().width) / box.width;
    };
    splitter.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      splitter.setPointerCapture(e.pointerId);
      const box = wf.getBoundingClientRect();
      const move = (ev) => set((100 * (ev.clientX - box.left)) / box.width);
      const up = () => {
        splitter.removeEventListener("pointermove", move);
        splitter.removeEventListener("pointerup", up);
        wf.classList.remove("resizing");
      };
      wf.classList.add("resizing");
      splitter.addEventListener("pointermove", move);
      splitter.addEventListener("pointerup", up);
    });
    splitter.addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault();
        set(current() + (e.key === "ArrowLeft" ? -2 : 2));
      }
    });
  }

  load();
})();
