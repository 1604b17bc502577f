/* Canopy's service map: the org's dependency edges (per-minute rollups of parent service →
   child service calls) laid out left to right by call depth and drawn as SVG. The layout is a
   small layered ("Sugiyama") one: break cycles, put each service one column right of its
   furthest caller, order each column to reduce crossings, then place nodes near their
   neighbours. Service names are untrusted: they are inserted as text and attributes only. */
(() => {
  "use strict";

  const root = document.getElementById("service-map");
  if (!root) return;

  const T = window.CanopyTraces;
  const { el, svg, api, fmtCount, plural } = T;
  const API = root.dataset.api;
  const ORG = root.dataset.org;
  const GRAPH_URL = root.dataset.graphUrl;
  const SEARCH_URL = root.dataset.searchUrl;

  const $ = (id) => document.getElementById(id);
  const form = $("map-form");
  const radios = [...form.querySelectorAll("input[name=lookback]")];
  const LOOKBACKS = Object.fromEntries(radios.map((r) => [r.value, Number(r.dataset.seconds)]));
  const DEFAULT_LOOKBACK = "1h";
  const onboarding = $("onboarding");
  const mapCard = $("map-card");
  const meta = $("map-meta");
  const body = $("map-body");
  const edgesCard = $("edges-card");
  const edgesBody = $("edges-body");

  const NODE_W = 176;
  const NODE_H = 52;
  const GAP_X = 128;
  const GAP_Y = 30;
  const DUMMY_H = 14;
  const MARGIN = 24;

  let inflight = null;
  let drawn = null; // {box, graph} of the map on screen, redrawn when the page's width changes

  const lookback = () => (radios.find((r) => r.checked) || {}).value || DEFAULT_LOOKBACK;
  const searchHref = (service) => T.urlWith(SEARCH_URL, { org: ORG, service, lookback: lookback() });
  const rate = (errors, calls) => (calls ? (100 * errors) / calls : 0);
  const fmtRate = (r) => (r === 0 ? "0%" : r < 0.1 ? "<0.1%" : r < 10 ? `${r.toFixed(1)}%` : `${Math.round(r)}%`);

  // ---- loading ------------------------------------------------------------------------------

  async function load(push = false) {
    drawn = null;
    const chosen = lookback();
    const url = T.urlWith(location.pathname, { org: ORG, lookback: chosen === DEFAULT_LOOKBACK ? "" : chosen });
    if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
    if (inflight) inflight.abort();
    const controller = (inflight = new AbortController());
    meta.textContent = "Loading…";
    body.setAttribute("aria-busy", "true");
    const nowMs = Date.now();
    let answers;
    try {
      answers = await Promise.all([
        api(`${API}services`, { org: ORG }, controller.signal),
        api(GRAPH_URL, { org: ORG, endTs: nowMs, lookback: LOOKBACKS[chosen] * 1000 }, controller.signal),
      ]);
    } catch (err) {
      if (err.name === "AbortError") return;
      answers = [{ error: `Could not reach Canopy: ${err.message}` }, {}];
    }
    if (controller !== inflight) return;
    inflight = null;
    body.removeAttribute("aria-busy");
    const [services, graph] = answers;
    const failed = services.error || graph.error;
    if (failed) return showError(failed);
    const names = services.data || [];
    const edges = (graph.data || []).filter((e) => e.parent !== e.child && e.callCount > 0);
    const none = !names.length && !edges.length;
    onboarding.hidden = !none;
    mapCard.hidden = none;
    edgesCard.hidden = none || !edges.length;
    if (none) return;
    show(names, edges, chosen);
  }

  function showError(message) {
    meta.textContent = "";
    edgesCard.hidden = true;
    body.replaceChildren(
      el(
        "div",
        { class: "error-box", role: "alert" },
        el("p", { class: "error-title" }, "Could not load the service map"),
        el("pre", { class: "error-text" }, message),
      ),
    );
  }

  function show(names, edges, chosen) {
    const instrumented = new Set(names);
    T.useServices(names);
    const graph = buildGraph(edges, instrumented);
    const quiet = names.filter((n) => !graph.byName.has(n));
    const calls = edges.reduce((n, e) => n + e.callCount, 0);
    meta.textContent = edges.length
      ? `${plural(graph.nodes.length, "service")} · ${plural(edges.length, "connection")} · ${plural(calls, "call")} · last ${chosen}`
      : `last ${chosen}`;
    const quietList = quiet.length
      ? el(
          "div",
          { class: "map-quiet" },
          el(
            "span",
            { class: "map-quiet-label" },
            edges.length ? "No calls to or from other services:" : "Services with spans:",
          ),
          quiet.map((n) => T.serviceChip(n, null, { href: searchHref(n) })),
        )
      : null;
    if (!edges.length) {
      const longer = Object.keys(LOOKBACKS).filter((l) => LOOKBACKS[l] > LOOKBACKS[chosen]);
      body.replaceChildren(
        el(
          "div",
          { class: "state" },
          el("p", { class: "state-title" }, `No calls between services in the last ${chosen}`),
          el(
            "p",
            {},
            "A call is counted when a span's parent belongs to another service, or when a client " +
              "span names an uninstrumented peer in peer.service. Minutes are counted once they " +
              "are two minutes old.",
          ),
          longer.length
            ? el(
                "p",
                { class: "widen" },
                "Look further back:",
                longer.map((l) => el("button", { type: "button", class: "small", onclick: () => setLookback(l) }, `Last ${l}`)),
              )
            : null,
        ),
        quietList,
      );
      return;
    }
    const box = el("div", { class: "map-scroll" });
    body.replaceChildren(
      box,
      el(
        "div",
        { class: "map-legend" },
        el("span", {}, el("span", { class: "lg-line" }), "calls"),
        el("span", {}, el("span", { class: "lg-line err" }), "calls with errors"),
        el("span", {}, el("span", { class: "lg-node peer" }), "not instrumented (peer.service)"),
        el("span", { class: "muted" }, "Click a service to search its traces."),
      ),
      quietList,
    );
    draw(box, graph);
    drawn = { box, graph };
    edgesTable(graph);
  }

  function setLookback(value) {
    for (const r of radios) r.checked = r.value === value;
    load(true);
  }

  // ---- the graph and its layout -------------------------------------------------------------

  function buildGraph(edges, instrumented) {
    const byName = new Map();
    const node = (name) => {
      if (!byName.has(name)) {
        byName.set(name, {
          name,
          dummy: false,
          peer: !instrumented.has(name),
          callsIn: 0,
          errorsIn: 0,
          callsOut: 0,
          errorsOut: 0,
          outs: [],
          ins: [],
        });
      }
      return byName.get(name);
    };
    const list = edges.map((e) => {
      const from = node(e.parent);
      const to = node(e.child);
      const edge = { from, to, calls: e.callCount, errors: e.errorCount || 0, reversed: false };
      from.callsOut += edge.calls;
      from.errorsOut += edge.errors;
      to.callsIn += edge.calls;
      to.errorsIn += edge.errors;
      from.outs.push(edge);
      to.ins.push(edge);
      return edge;
    });
    const nodes = [...byName.values()];
    layout(nodes, list);
    return { nodes, edges: list, byName };
  }

  function layout(nodes, edges) {
    // 1. Cycles: a depth-first walk from the entry points reverses the edges that close one.
    const state = new Map();
    const starts = [...nodes].sort(
      (a, b) => (a.ins.length > 0) - (b.ins.length > 0) || b.callsOut - a.callsOut || a.name.localeCompare(b.name),
    );
    const visit = (n) => {
      state.set(n, 1);
      for (const e of [...n.outs].sort((a, b) => b.calls - a.calls)) {
        const s = state.get(e.to);
        if (s === 1) e.reversed = true;
        else if (!s) visit(e.to);
      }
      state.set(n, 2);
    };
    for (const n of starts) if (!state.get(n)) visit(n);
    const src = (e) => (e.reversed ? e.to : e.from);
    const dst = (e) => (e.reversed ? e.from : e.to);

    // 2. Columns: one right of the furthest caller (longest path, in topological order).
    const indegree = new Map(nodes.map((n) => [n, 0]));
    for (const e of edges) indegree.set(dst(e), indegree.get(dst(e)) + 1);
    const queue = starts.filter((n) => indegree.get(n) === 0);
    for (const n of nodes) n.layer = 0;
    while (queue.length) {
      const n = queue.shift();
      for (const e of edges) {
        if (src(e) !== n) continue;
        const m = dst(e);
        m.layer = Math.max(m.layer, n.layer + 1);
        indegree.set(m, indegree.get(m) - 1);
        if (indegree.get(m) === 0) queue.push(m);
      }
    }
    const layerCount = Math.max(...nodes.map((n) => n.layer)) + 1;
    const layers = Array.from({ length: layerCount }, () => []);
    for (const n of starts) layers[n.layer].push(n);

    // 3. Edges spanning several columns pass through placeholder nodes, one per column.
    const up = new Map();
    const down = new Map();
    const link = (a, b) => {
      if (!down.has(a)) down.set(a, []);
      if (!up.has(b)) up.set(b, []);
      down.get(a).push(b);
      up.get(b).push(a);
    };
    for (const e of edges) {
      const a = src(e);
      const b = dst(e);
      e.chain = [a];
      for (let l = a.layer + 1; l < b.layer; l++) {
        const d = { dummy: true, layer: l, name: "" };
        layers[l].push(d);
        e.chain.push(d);
      }
      e.chain.push(b);
      for (let i = 1; i < e.chain.length; i++) link(e.chain[i - 1], e.chain[i]);
    }

    // 4. Order each column by the mean position of its neighbours, sweeping both ways, and keep
    //    the order with the fewest crossings.
    const pos = new Map();
    const index = () => layers.forEach((layer) => layer.forEach((n, i) => pos.set(n, i)));
    const crossings = () => {
      let total = 0;
      for (let l = 0; l + 1 < layers.length; l++) {
        const segs = [];
        for (const a of layers[l]) for (const b of down.get(a) || []) segs.push([pos.get(a), pos.get(b)]);
        for (let i = 0; i < segs.length; i++) {
          for (let j = i + 1; j < segs.length; j++) {
            const [a1, b1] = segs[i];
            const [a2, b2] = segs[j];
            if ((a1 - a2) * (b1 - b2) < 0) total++;
          }
        }
      }
      return total;
    };
    index();
    let best = layers.map((layer) => [...layer]);
    let bestCrossings = crossings();
    for (let iter = 0; iter < 16 && bestCrossings > 0; iter++) {
      const downward = iter % 2 === 0;
      const range = downward
        ? Array.from({ length: layers.length - 1 }, (_, i) => i + 1)
        : Array.from({ length: layers.length - 1 }, (_, i) => layers.length - 2 - i);
      for (const l of range) {
        const neighbours = downward ? up : down;
        const bary = new Map(
          layers[l].map((n) => {
            const ns = neighbours.get(n) || [];
            return [n, ns.length ? ns.reduce((s, m) => s + pos.get(m), 0) / ns.length : pos.get(n)];
          }),
        );
        layers[l].sort((a, b) => bary.get(a) - bary.get(b));
        layers[l].forEach((n, i) => pos.set(n, i));
      }
      const c = crossings();
      if (c < bestCrossings) {
        bestCrossings = c;
        best = layers.map((layer) => [...layer]);
      }
    }
    best.forEach((layer, l) => (layers[l] = layer));
    index();

    // 5. Coordinates: columns left to right; in each column nodes keep their order and move
    //    towards their neighbours' heights without overlapping.
    const size = (n) => (n.dummy ? DUMMY_H : NODE_H);
    for (const layer of layers) {
      let y = 0;
      for (const n of layer) {
        n.y = y + size(n) / 2;
        y += size(n) + GAP_Y;
      }
    }
    const tallest = Math.max(...layers.map((layer) => layer.reduce((s, n) => s + size(n) + GAP_Y, -GAP_Y)));
    for (const layer of layers) {
      const h = layer.reduce((s, n) => s + size(n) + GAP_Y, -GAP_Y);
      for (const n of layer) n.y += (tallest - h) / 2;
    }
    const pack = (layer, want) => {
      // Forward pass keeps the minimum gaps; then the column shifts so it sits, on average,
      // where its nodes want to be.
      let prev = null;
      for (const n of layer) {
        n.y = prev ? Math.max(want.get(n), prev.y + (size(prev) + size(n)) / 2 + GAP_Y) : want.get(n);
        prev = n;
      }
      const shift = layer.reduce((s, n) => s + (want.get(n) - n.y), 0) / (layer.length || 1);
      for (const n of layer) n.y += shift;
    };
    for (let iter = 0; iter < 6; iter++) {
      for (const layer of iter % 2 ? [...layers].reverse() : layers) {
        const want = new Map(
          layer.map((n) => {
            const ns = [...(up.get(n) || []), ...(down.get(n) || [])];
            return [n, ns.length ? ns.reduce((s, m) => s + m.y, 0) / ns.length : n.y];
          }),
        );
        pack(layer, want);
      }
    }
    const top = Math.min(...layers.flat().map((n) => n.y - size(n) / 2));
    for (const n of layers.flat()) {
      n.y += MARGIN - top;
      n.x = MARGIN + n.layer * (NODE_W + GAP_X);
    }
    return layers;
  }

  // ---- drawing ------------------------------------------------------------------------------

  function edgeLabel(e) {
    return e.errors ? `${fmtCount(e.calls)} · ${fmtCount(e.errors)} err` : fmtCount(e.calls);
  }

  function draw(box, graph) {
    const { nodes, edges } = graph;
    const all = [...nodes, ...edges.flatMap((e) => e.chain.filter((n) => n.dummy))];
    const width = Math.max(...all.map((n) => n.x + NODE_W)) + MARGIN;
    const height = Math.max(...all.map((n) => n.y + (n.dummy ? DUMMY_H : NODE_H) / 2)) + MARGIN;
    const room = box.clientWidth;
    const shiftX = width < room ? Math.floor((room - width) / 2) : 0;

    // Ports: a node's edges leave (and arrive) spread along its side, in the order of where
    // they go, so they fan out instead of starting at one point.
    const outPorts = new Map();
    const inPorts = new Map();
    const ports = (n, list, next, store) => {
      list.sort((a, b) => next(a).y - next(b).y);
      const spread = Math.min(NODE_H - 18, 8 * (list.length - 1));
      list.forEach((e, i) => store.set(e, n.y + (list.length > 1 ? -spread / 2 + (spread * i) / (list.length - 1) : 0)));
    };
    for (const n of nodes) {
      const leaving = edges.filter((e) => e.chain[0] === n);
      const arriving = edges.filter((e) => e.chain[e.chain.length - 1] === n);
      ports(n, leaving, (e) => e.chain[1], outPorts);
      ports(n, arriving, (e) => e.chain[e.chain.length - 2], inPorts);
    }

    const map = svg("svg", {
      class: "map",
      width: width + shiftX,
      height,
      viewBox: `${-shiftX} 0 ${width + shiftX} ${height}`,
      role: "group",
      "aria-label": `Service map: ${plural(nodes.length, "service")}, ${plural(edges.length, "connection")}`,
    });
    const defs = svg(
      "defs",
      {},
      ["ok", "err"].map((kind) =>
        svg(
          "marker",
          {
            id: `arrow-${kind}`,
            viewBox: "0 0 10 10",
            refX: "9",
            refY: "5",
            markerWidth: "7",
            markerHeight: "7",
            orient: "auto-start-reverse",
            markerUnits: "userSpaceOnUse",
          },
          svg("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow-${kind}` }),
        ),
      ),
    );
    const edgeLayer = svg("g", { class: "map-edges" });
    const labelLayer = svg("g", { class: "map-labels" });
    const nodeLayer = svg("g", { class: "map-nodes" });
    const maxCalls = Math.max(...edges.map((e) => e.calls));

    for (const e of edges) {
      const chain = e.chain;
      const first = chain[0];
      const last = chain[chain.length - 1];
      const points = [[first.x + NODE_W, outPorts.get(e)]];
      for (const d of chain.slice(1, -1)) points.push([d.x, d.y], [d.x + NODE_W, d.y]);
      points.push([last.x - 2, inPorts.get(e)]);
      let d = `M${points[0][0]},${points[0][1]}`;
      for (let i = 1; i < points.length; i++) {
        const [x0, y0] = points[i - 1];
        const [x1, y1] = points[i];
        if (i % 2 === 0) d += ` L${x1},${y1}`; // straight through a placeholder's column
        else {
          const c = (x1 - x0) / 2;
          d += ` C${x0 + c},${y0} ${x1 - c},${y1} ${x1},${y1}`;
        }
      }
      const errRate = rate(e.errors, e.calls);
      const widthPx = 1.4 + 3.6 * (Math.log1p(e.calls) / Math.log1p(maxCalls || 1));
      const kind = e.errors ? "err" : "ok";
      const title = `${e.from.name} → ${e.to.name}: ${plural(e.calls, "call")}${e.errors ? `, ${plural(e.errors, "error")} (${fmtRate(errRate)})` : ""}`;
      const attrs = {
        d,
        class: `map-edge${e.errors ? " err" : ""}${errRate >= 5 ? " err-high" : ""}`,
        "stroke-width": widthPx.toFixed(2),
        "data-from": e.from.name,
        "data-to": e.to.name,
        "data-calls": String(e.calls),
        "data-errors": String(e.errors),
      };
      // A reversed edge (it closes a cycle) is drawn left to right; its arrow sits at the start.
      attrs[e.reversed ? "marker-start" : "marker-end"] = `url(#arrow-${kind})`;
      const path = svg("path", attrs, svg("title", { text: title }));
      edgeLayer.append(path);
      e.path = path;

      // The label sits halfway along the first curve.
      const [[x0, y0], [x1, y1]] = [points[0], points[1]];
      const text = edgeLabel(e);
      const w = 10 + text.length * 6.3;
      const lx = (x0 + x1) / 2;
      const ly = (y0 + y1) / 2;
      const label = svg(
        "g",
        {
          class: `map-label${e.errors ? " err" : ""}`,
          transform: `translate(${lx.toFixed(1)},${ly.toFixed(1)})`,
          "data-from": e.from.name,
          "data-to": e.to.name,
        },
        svg("rect", { x: (-w / 2).toFixed(1), y: "-9", width: w.toFixed(1), height: "18", rx: "9" }),
        svg("text", { "text-anchor": "middle", "dominant-baseline": "central", text }),
        svg("title", { text: title }),
      );
      labelLayer.append(label);
      e.label = label;
    }

    for (const n of nodes) {
      const color = T.serviceColor(n.name);
      const errRate = rate(n.errorsIn, n.callsIn);
      const calls = (count) => `${fmtCount(count)} call${count === 1 ? "" : "s"}`;
      const sub = n.callsIn
        ? `${calls(n.callsIn)} in${n.errorsIn ? ` · ${fmtRate(errRate)} errors` : ""}`
        : `${calls(n.callsOut)} out`;
      const title = [
        n.name,
        n.peer ? "not instrumented: named by its callers' peer.service" : null,
        n.callsIn ? `${plural(n.callsIn, "call")} in${n.errorsIn ? `, ${plural(n.errorsIn, "error")}` : ""}` : null,
        n.callsOut ? `${plural(n.callsOut, "call")} out${n.errorsOut ? `, ${plural(n.errorsOut, "error")}` : ""}` : null,
        n.peer ? null : "Click to search its traces",
      ]
        .filter(Boolean)
        .join("\n");
      const group = svg(
        n.peer ? "g" : "a",
        {
          class: `map-node${n.peer ? " peer" : ""}${n.errorsIn ? " has-err" : ""}`,
          href: n.peer ? null : searchHref(n.name),
          transform: `translate(${n.x},${n.y - NODE_H / 2})`,
          "data-service": n.name,
          "aria-label": n.peer ? null : `${n.name}: ${sub}. Search its traces.`,
          style: `--c: ${color}`,
        },
        svg("title", { text: title }),
        svg("rect", { class: "node-box", width: NODE_W, height: NODE_H, rx: "10" }),
        svg("rect", { class: "node-stripe", x: "0", y: "0", width: "5", height: NODE_H, rx: "2" }),
        svg("text", { class: "node-name", x: "16", y: "21", text: n.name }),
        svg("text", { class: `node-sub${n.errorsIn ? " err" : ""}`, x: "16", y: "39", text: sub }),
      );
      group.addEventListener("mouseenter", () => focusNode(map, n, graph));
      group.addEventListener("mouseleave", () => focusNode(map, null, graph));
      group.addEventListener("focus", () => focusNode(map, n, graph));
      group.addEventListener("blur", () => focusNode(map, null, graph));
      nodeLayer.append(group);
      n.el = group;
    }
    map.append(defs, edgeLayer, nodeLayer, labelLayer);
    box.replaceChildren(map);
    // Names longer than the box are cut with an ellipsis (the full name is in the tooltip).
    for (const text of map.querySelectorAll(".node-name")) {
      const full = text.textContent;
      const max = NODE_W - 26;
      if (text.getComputedTextLength() <= max) continue;
      let lo = 0;
      let hi = full.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        text.textContent = `${full.slice(0, mid)}…`;
        if (text.getComputedTextLength() <= max) lo = mid;
        else hi = mid - 1;
      }
      text.textContent = `${full.slice(0, lo)}…`;
    }
  }

  function focusNode(map, n, graph) {
    map.classList.toggle("focus", Boolean(n));
    for (const m of graph.nodes) m.el.classList.remove("hot");
    for (const e of graph.edges) {
      const hot = Boolean(n) && (e.from === n || e.to === n);
      e.path.classList.toggle("hot", hot);
      e.label.classList.toggle("hot", hot);
      if (hot) {
        e.from.el.classList.add("hot");
        e.to.el.classList.add("hot");
      }
    }
    if (n) n.el.classList.add("hot");
  }

  // ---- the table ----------------------------------------------------------------------------

  function edgesTable(graph) {
    const chip = (n) =>
      T.serviceChip(
        n.name,
        null,
        n.peer
          ? { class: "svc-chip peer", style: "--c: #98a2b3", title: `${n.name}: not instrumented (peer.service)` }
          : { href: searchHref(n.name) },
      );
    const sorted = [...graph.edges].sort((a, b) => b.calls - a.calls || a.from.name.localeCompare(b.from.name));
    edgesBody.replaceChildren(
      el(
        "div",
        { class: "table-scroll" },
        el(
          "table",
          { class: "data-table", id: "edges-table" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col" }, "Caller"),
              el("th", { scope: "col" }, "Callee"),
              el("th", { scope: "col", class: "num" }, "Calls"),
              el("th", { scope: "col", class: "num" }, "Errors"),
              el("th", { scope: "col", class: "num" }, "Error rate"),
            ),
          ),
          el(
            "tbody",
            {},
            sorted.map((e) => {
              const r = rate(e.errors, e.calls);
              return el(
                "tr",
                { class: e.errors ? "is-err" : null },
                el("td", {}, chip(e.from)),
                el("td", {}, chip(e.to)),
                el("td", { class: "num" }, e.calls.toLocaleString()),
                el("td", { class: "num" }, e.errors.toLocaleString()),
                el("td", { class: "num" }, el("span", { class: e.errors ? "rate err" : "rate" }, fmtRate(r))),
              );
            }),
          ),
        ),
      ),
    );
  }

  // ---- wiring -------------------------------------------------------------------------------

  function applyURL() {
    const wanted = new URLSearchParams(location.search).get("lookback");
    const value = LOOKBACKS[wanted] ? wanted : DEFAULT_LOOKBACK;
    for (const r of radios) r.checked = r.value === value;
  }

  for (const r of radios) r.addEventListener("change", () => load(true));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(true);
  });
  $("recheck").addEventListener("click", () => load(false));
  window.addEventListener("popstate", () => {
    applyURL();
    load(false);
  });

  let lastWidth = 0;
  new ResizeObserver(() => {
    const width = body.clientWidth;
    if (width === lastWidth) return;
    lastWidth = width;
    if (drawn && drawn.box.isConnected) draw(drawn.box, drawn.graph);
  }).observe(body);

  applyURL();
  load(false);
})();
