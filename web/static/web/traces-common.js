/* What Canopy's three Traces pages share (besides dom.js): the Jaeger API client, duration
   and time formatting, service colours, and the trace model built from Jaeger's JSON.
   Service, operation, tag and log text comes from senders and is untrusted:
   it reaches the page only as text nodes and attribute values, never as HTML. */
(() => {
  "use strict";

  const { el, svg, getJSON } = window.CanopyDom;

  // ---- colours ------------------------------------------------------------------------------

  // Red is kept for errors. Neighbours in this list differ most: services get them in the
  // order of the org's sorted service list, so up to a dozen never share a colour and a
  // service keeps its colour on every page. Names outside the list fall back to a hash.
  const PALETTE = [
    "#0d9488", "#d97706", "#2563eb", "#65a30d", "#7c3aed", "#c026d3",
    "#a16207", "#0891b2", "#15803d", "#4f46e5", "#0ea5e9", "#64748b",
  ];
  let known = new Map();

  function hash(text) {
    let h = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  }

  function useServices(names) {
    known = new Map([...names].sort().map((name, i) => [name, PALETTE[i % PALETTE.length]]));
  }

  const serviceColor = (name) => known.get(name) || PALETTE[hash(String(name)) % PALETTE.length];

  // ---- formatting ---------------------------------------------------------------------------

  function trim(n, digits) {
    const text = n.toPrecision(digits);
    if (text.includes("e")) return String(Math.round(n)); // 1234 at 3 digits: "1.23e+3"
    return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
  }

  /** A duration in µs, as people read them: 850µs, 12.3ms, 1.25s, 2m 5s. */
  function fmtDuration(us, digits = 3) {
    if (!Number.isFinite(us)) return "–";
    const a = Math.abs(us);
    if (a < 1) return us === 0 ? "0µs" : "<1µs";
    if (Number(trim(a, digits)) < 1000) return `${trim(us, digits)}µs`;
    if (Number(trim(a / 1e3, digits)) < 1000) return `${trim(us / 1e3, digits)}ms`;
    if (Number(trim(a / 1e6, digits)) < 60) return `${trim(us / 1e6, digits)}s`;
    const s = Math.round(a / 1e6);
    if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ""}`;
    const m = Math.round(s / 60);
    return `${Math.floor(m / 60)}h${m % 60 ? ` ${m % 60}m` : ""}`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, "0");

  function fmtClock(d, ms) {
    const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return ms ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
  }

  function fmtDate(d) {
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  /** Absolute date and time, to the millisecond: "Mar 3 14:05:06.123". */
  const fmtDateTime = (d, ms = true) => `${fmtDate(d)} ${fmtClock(d, ms)}`;

  /** "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago". */
  function fmtAgo(ms, now = Date.now()) {
    const s = Math.round((now - ms) / 1000);
    if (s < 0) return "in the future";
    if (s < 5) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    const d = Math.floor(s / 86400);
    return `${d} day${d === 1 ? "" : "s"} ago`;
  }

  const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

  function fmtCount(n) {
    if (n < 1000) return String(n);
    if (n < 999_500) return `${trim(n / 1e3, n < 1e4 ? 2 : 3)}k`;
    return `${trim(n / 1e6, 3)}M`;
  }

  // ---- scales -------------------------------------------------------------------------------

  function niceNumber(x) {
    if (!(x > 0)) return 1;
    const mag = 10 ** Math.floor(Math.log10(x));
    const f = x / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  /** Ticks from 0 to at least `max`, about `count` of them. */
  function linearTicks(max, count) {
    const step = niceNumber((max > 0 ? max : 1) / count);
    const ticks = [];
    for (let v = 0; v < max + step * 0.999; v += step) ticks.push(v);
    if (ticks.length < 2) ticks.push(step);
    return { step, ticks, max: ticks[ticks.length - 1] };
  }

  const TIME_STEPS = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  ];

  /** Clock-aligned ticks between two times (ms) for an axis `width` pixels wide. */
  function timeTicks(startMs, endMs, width) {
    const want = Math.max(2, Math.floor(width / 100));
    const spanS = (endMs - startMs) / 1000;
    const every = (TIME_STEPS.find((s) => spanS / s <= want) || 86400) * 1000;
    const offset = new Date(startMs).getTimezoneOffset() * 60000;
    const ticks = [];
    for (let t = Math.ceil((startMs - offset) / every) * every + offset; t <= endMs; t += every) {
      ticks.push(t);
    }
    const label = (t) => {
      const d = new Date(t);
      if (every >= 86400000) return fmtDate(d);
      const text = every < 60000 ? fmtClock(d) : fmtClock(d).slice(0, 5);
      return spanS > 86400 && d.getHours() === 0 && d.getMinutes() === 0 ? fmtDate(d) : text;
    };
    return { ticks, label };
  }

  // ---- the API ------------------------------------------------------------------------------

  /** GET a Jaeger-style endpoint with the session: {data} or {error, status}. */
  async function api(url, params, signal) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v != null && v !== "") query.set(k, v);
    }
    const { res, payload } = await getJSON(`${url}?${query}`, signal);
    if (res.ok && payload && "data" in payload) return { data: payload.data, payload };
    let error = `The server answered HTTP ${res.status} ${res.statusText}`.trim();
    if (payload && Array.isArray(payload.errors) && payload.errors.length) {
      error = payload.errors.map((e) => e.msg).join("; ");
    } else if (payload && payload.detail) {
      error = String(payload.detail);
    } else if (payload && typeof payload === "object") {
      const first = Object.entries(payload)[0];
      if (first) error = `${first[0]}: ${[].concat(first[1]).join(" ")}`;
    }
    return { error, status: res.status };
  }

  // ---- the trace model ----------------------------------------------------------------------

  const tagValue = (tag) => {
    const v = tag.value;
    if (v == null) return "";
    return typeof v === "string" ? v : JSON.stringify(v);
  };

  /**
   * Jaeger's trace JSON → {id, spans (tree order), roots, byId, start, end, duration,
   * services: Map(name → span count), errors, depth, root}. Times stay in µs.
   */
  function parseTrace(raw) {
    const processes = raw.processes || {};
    const spans = (raw.spans || []).map((s, index) => {
      const process = processes[s.processID] || { serviceName: "unknown", tags: [] };
      const tags = s.tags || [];
      const tag = (key) => {
        const found = tags.find((t) => t.key === key);
        return found ? found.value : undefined;
      };
      const statusCode = tag("otel.status_code");
      const error = tag("error") === true || tag("error") === "true" || statusCode === "ERROR";
      return {
        uid: index,
        id: s.spanID,
        traceID: s.traceID,
        service: process.serviceName || "unknown",
        process,
        operation: s.operationName || "",
        start: s.startTime,
        duration: s.duration,
        end: s.startTime + s.duration,
        tags,
        kind: tag("span.kind") || "",
        error,
        status: statusCode || (error ? "ERROR" : "UNSET"),
        statusMessage: tag("otel.status_description") || "",
        logs: s.logs || [],
        references: s.references || [],
        warnings: s.warnings || [],
        parent: null,
        children: [],
        depth: 0,
      };
    });

    // Zipkin's shared spans: a client and a server span with one id. The server span hangs
    // under the client one, and the id's children under the server span (Jaeger's dedupe).
    const groups = new Map();
    for (const span of spans) {
      if (!groups.has(span.id)) groups.set(span.id, []);
      groups.get(span.id).push(span);
    }
    const byId = new Map();
    const sharedParent = new Map();
    for (const [id, group] of groups) {
      const server = group.find((s) => s.kind === "server" || s.kind === "consumer");
      const client = group.find((s) => s.kind === "client" || s.kind === "producer");
      byId.set(id, group.length > 1 && server ? server : group[0]);
      if (group.length > 1 && server && client) sharedParent.set(server, client);
    }

    for (const span of spans) {
      let parent = sharedParent.get(span) || null;
      if (!parent) {
        const refs = span.references.filter((r) => r.traceID === span.traceID);
        const ref =
          refs.find((r) => r.refType === "CHILD_OF" && byId.has(r.spanID)) ||
          refs.find((r) => r.refType === "FOLLOWS_FROM" && byId.has(r.spanID));
        if (ref) parent = byId.get(ref.spanID);
        if (parent === span) parent = null;
      }
      span.parent = parent;
    }
    const byStart = (a, b) => a.start - b.start || b.duration - a.duration || a.uid - b.uid;
    for (const span of spans) if (span.parent) span.parent.children.push(span);
    for (const span of spans) span.children.sort(byStart);

    // Depth-first order; spans caught in a reference cycle become roots of their own.
    const order = [];
    const visited = new Set();
    const walk = (top) => {
      const stack = [[top, 0]];
      while (stack.length) {
        const [span, depth] = stack.pop();
        if (visited.has(span)) continue;
        visited.add(span);
        span.depth = depth;
        order.push(span);
        for (let i = span.children.length - 1; i >= 0; i--) stack.push([span.children[i], depth + 1]);
      }
    };
    const roots = spans.filter((s) => !s.parent).sort(byStart);
    for (const root of roots) walk(root);
    for (const span of [...spans].sort(byStart)) {
      if (!visited.has(span)) {
        if (span.parent) span.parent.children = span.parent.children.filter((c) => c !== span);
        span.parent = null;
        roots.push(span);
        walk(span);
      }
    }

    let start = Infinity;
    let end = -Infinity;
    let deepest = -1;
    for (const span of spans) {
      start = Math.min(start, span.start);
      end = Math.max(end, span.end);
      deepest = Math.max(deepest, span.depth);
    }
    const services = new Map();
    for (const span of order) services.set(span.service, (services.get(span.service) || 0) + 1);
    const root = roots[0];
    return {
      id: raw.traceID,
      spans: order,
      roots,
      byId,
      root,
      start,
      end,
      duration: end - start,
      services,
      errors: spans.filter((s) => s.error).length,
      depth: deepest + 1,
    };
  }

  /** A span's own time: its duration minus the time covered by its children (clipped). */
  function selfTime(span) {
    const parts = span.children
      .map((c) => [Math.max(c.start, span.start), Math.min(c.end, span.end)])
      .filter(([a, b]) => b > a)
      .sort((x, y) => x[0] - y[0]);
    let covered = 0;
    let cursor = span.start;
    for (const [a, b] of parts) {
      if (b <= cursor) continue;
      covered += b - Math.max(a, cursor);
      cursor = b;
    }
    return Math.max(0, span.duration - covered);
  }

  /** Text that may wrap after its dots, slashes and dashes (attribute keys), as nodes. */
  function breakable(text) {
    const out = [];
    for (const part of String(text).split(/(?<=[./_-])/)) {
      if (out.length) out.push(document.createElement("wbr"));
      out.push(part);
    }
    return out;
  }

  /** A coloured chip naming a service, with an optional count. */
  function serviceChip(name, count, attrs) {
    return el(
      attrs && attrs.href ? "a" : "span",
      { class: "svc-chip", style: `--c: ${serviceColor(name)}`, title: name, ...attrs },
      el("span", { class: "svc-dot", "aria-hidden": "true" }),
      el("span", { class: "svc-name" }, name),
      count != null ? el("span", { class: "svc-count" }, String(count)) : null,
    );
  }

  /** localStorage, which throws where the browser blocks storage: then nothing is kept. */
  const store = {
    get(key) {
      try {
        return localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        localStorage.setItem(key, value);
      } catch {
        // not kept
      }
    },
  };

  function urlWith(path, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== "") query.set(k, v);
    return `${path}?${query}`;
  }

  window.CanopyTraces = {
    el,
    svg,
    api,
    serviceColor,
    serviceChip,
    useServices,
    breakable,
    store,
    fmtDuration,
    fmtClock,
    fmtDate,
    fmtDateTime,
    fmtAgo,
    fmtCount,
    plural,
    niceNumber,
    linearTicks,
    timeTicks,
    parseTrace,
    selfTime,
    tagValue,
    urlWith,
  };
})();
