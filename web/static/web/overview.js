/* The Overview's figures, refreshed in place from /overview/figures (the same session and
   org as the page) every few seconds: no reload, no flicker. A Pause button stops it; a hidden
   tab does not ask. Figures are only ever inserted as text. */
(() => {
  "use strict";

  const root = document.getElementById("overview");
  if (!root) return;
  const { el, getJSON } = window.CanopyDom;
  const $ = (id) => document.getElementById(id);
  const URL_ = `${root.dataset.figuresUrl}?${new URLSearchParams({ org: root.dataset.org })}`;
  const EVERY_MS = Number(root.dataset.refreshSeconds || 15) * 1000;
  const pauseBtn = $("overview-pause");
  const status = $("overview-status");
  const updated = $("overview-updated");
  const errorBox = $("overview-error");
  const number = new Intl.NumberFormat("en-US");

  let paused = false;
  let timer = null;
  let inflight = null;
  let lastMs = Number(root.dataset.generatedMs) || null;

  function ago(ms, now) {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d`;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function showUpdated() {
    const now = Date.now();
    if (lastMs) {
      updated.dateTime = new Date(lastMs).toISOString();
      updated.textContent = `${clock(lastMs)} (${ago(lastMs, now)} ago)`;
    }
    const newest = root.querySelector('[data-figure="newest"]');
    if (newest && newest.dataset.ms) newest.textContent = ago(Number(newest.dataset.ms), now);
    status.lastChild.textContent = paused
      ? " · paused"
      : ` · refreshes every ${Math.round(EVERY_MS / 1000)} s`;
  }

  function apply(data) {
    for (const f of data.figures) {
      const node = root.querySelector(`[data-figure="${CSS.escape(f.key)}"]`);
      if (node) node.textContent = number.format(f.value);
      const win = root.querySelector(`[data-window="${CSS.escape(f.key)}"]`);
      if (win) win.textContent = f.window;
    }
    const newest = root.querySelector('[data-figure="newest"]');
    if (newest) {
      newest.dataset.ms = data.last_sample_ms ? String(data.last_sample_ms) : "";
      if (!data.last_sample_ms) newest.textContent = "—";
      root.querySelector("[data-newest-label]").textContent = data.last_sample_ms
        ? "since the newest sample"
        : "no samples yet";
    }
    for (const [key, value] of Object.entries(data.counts || {})) {
      const node = root.querySelector(`[data-count="${CSS.escape(key)}"]`);
      if (node) node.textContent = number.format(value);
    }
    const refused = $("refused");
    refused.hidden = !data.rejections.length;
    $("refused-bars").replaceChildren(
      ...data.rejections.map((r) => {
        const fill = el("span");
        fill.style.width = `${r.pct}%`;
        return el(
          "li",
          {},
          el("span", { class: "bar-label" }, el("span", { class: "pill" }, r.signal), ` ${r.reason}`),
          el("span", { class: "bar" }, fill),
          el("span", { class: "bar-value" }, number.format(r.count)),
        );
      }),
    );
    const byKey = Object.fromEntries(data.figures.map((f) => [f.key, f.value]));
    $("overview-empty").hidden = Boolean(byKey.series || byKey.services);
    for (const node of root.querySelectorAll(".stat-value.stale")) node.classList.remove("stale");
    lastMs = data.generated_ms;
  }

  async function refresh() {
    if (paused || document.hidden || inflight) return;
    inflight = new AbortController();
    let res, payload;
    try {
      ({ res, payload } = await getJSON(URL_, inflight.signal));
    } catch (err) {
      res = null;
      payload = { detail: `Could not reach Canopy: ${err.message}` };
    } finally {
      inflight = null;
    }
    if (res && res.ok && payload) {
      errorBox.hidden = true;
      apply(payload);
    } else {
      // Keep the last figures, marked stale, and say why.
      for (const node of root.querySelectorAll(".stat-value")) node.classList.add("stale");
      errorBox.hidden = false;
      errorBox.textContent =
        res && res.status === 401
          ? "Your session ended: log in again to see fresh figures."
          : `The figures could not be refreshed: ${(payload && payload.detail) || `HTTP ${res && res.status}`}.`;
    }
    showUpdated();
  }

  function schedule() {
    clearInterval(timer);
    timer = paused ? null : setInterval(refresh, EVERY_MS);
  }

  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.setAttribute("aria-pressed", String(paused));
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    schedule();
    if (!paused) refresh();
    showUpdated();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !paused) refresh();
  });
  // "12 s ago" stays true between refreshes.
  setInterval(showUpdated, 1000);
  showUpdated();
  schedule();
})();
