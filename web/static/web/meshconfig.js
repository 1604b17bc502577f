/* The Mesh config pages: the YAML editor (validate, findings under their resource, publish,
   roll out, watch the clusters' states), live states on the clusters page, and the sampling
   figure on the telemetry form. Talks to the user API with the session (and its CSRF token).
   Text from the API reaches the page only as text nodes (CanopyDom.el). */
(() => {
  "use strict";
  const { el, getJSON } = window.CanopyDom;

  const STATE_HELP = {
    SYNCED: "The agent applied the desired revision",
    APPLYING: "A new revision is on its way to the agent",
    NACK: "The agent refused the desired revision",
    STALE: "The agent has not answered for the desired revision",
    DISCONNECTED: "The agent has not been heard from recently",
  };

  function stateBadge(state) {
    return el("span", {
      class: `mesh-state mesh-state-${state.toLowerCase()}`,
      "data-state": state,
      title: STATE_HELP[state] || "",
      text: state,
    });
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function errorText(error) {
    if (!error) return "";
    const r = error.resource;
    const where = r ? ` (${r.kind} ${r.namespace || "default"}/${r.name})` : "";
    const path = error.path ? ` at ${error.path}` : "";
    return `${error.message || JSON.stringify(error)}${where}${path}`;
  }

  // ---- the clusters page: live states ---------------------------------------------------
  function clustersPage(root) {
    const url = root.dataset.statusUrl;
    async function refresh() {
      const { res, payload } = await getJSON(url).catch(() => ({ res: null }));
      if (!res || !res.ok || !payload) return;
      const synced = document.getElementById("mesh-synced");
      if (synced) synced.textContent = `${payload.synced} / ${payload.total}`;
      for (const c of payload.clusters) {
        const row = root.querySelector(`tr[data-cluster="${CSS.escape(c.name)}"]`);
        if (!row) continue;
        const cell = row.querySelector(".cell-state");
        const kids = [stateBadge(c.state)];
        if (c.error) kids.push(el("div", { class: "mesh-error", "data-field": "error", text: errorText(c.error) }));
        cell.replaceChildren(...kids);
        row.querySelector('[data-field="desired"]').textContent = c.desired ? `r${c.desired}` : "none";
        row.querySelector('[data-field="applied"]').textContent = c.applied ? `r${c.applied}` : "none";
        row.querySelector('[data-field="last_seen"]').textContent = ago(c.last_seen);
      }
    }
    setInterval(refresh, 3000);
  }

  // ---- the editor -----------------------------------------------------------------------
  /** The YAML stream's documents: where each starts, and its kind, namespace and name as
      far as simple patterns find them (the server parses for real; this only places
      findings). */
  function documents(text) {
    const lines = text.split("\n");
    const docs = [];
    let cur = { start: 1, lines: [] };
    lines.forEach((line, i) => {
      if (/^---\s*$/.test(line)) {
        docs.push(cur);
        cur = { start: i + 2, lines: [] };
      } else {
        cur.lines.push(line);
      }
    });
    docs.push(cur);
    return docs
      .map((d) => {
        const body = d.lines.join("\n");
        if (!body.replace(/#.*$/gm, "").trim()) return null;
        const kind = (body.match(/^kind:\s*["']?([\w.-]+)/m) || [])[1] || "";
        let name = "";
        let namespace = "";
        const flow = body.match(/^metadata:\s*\{([^}]*)\}/m);
        const block = body.match(/^metadata:[ \t]*\n((?:[ \t]+.*(?:\n|$))*)/m);
        const meta = flow ? flow[1].replace(/,/g, "\n") : block ? block[1] : "";
        const directName = meta.match(/^\s{0,4}name:\s*["']?([\w.-]+)/m);
        const directNs = meta.match(/^\s{0,4}namespace:\s*["']?([\w.-]+)/m);
        if (directName) name = directName[1];
        if (directNs) namespace = directNs[1];
        const firstLine = d.lines.findIndex((l) => l.trim() && !l.trim().startsWith("#"));
        return { kind, name, namespace: namespace || "default", line: d.start + Math.max(0, firstLine) };
      })
      .filter(Boolean);
  }

  function editorPage(root) {
    const textarea = document.getElementById("mesh-yaml");
    const findingsBox = document.getElementById("mesh-findings");
    const outcome = document.getElementById("mesh-outcome");
    const validateBtn = document.getElementById("mesh-validate");
    const publishBtn = document.getElementById("mesh-publish");
    const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    const org = root.dataset.org;
    const clusters = [...document.getElementById("mesh-clusters-data").content.querySelectorAll("span")].map(
      (s) => s.dataset.name,
    );
    let watching = null;

    function withOrg(url, params = {}) {
      const q = new URLSearchParams({ org, ...params });
      return `${url}?${q}`;
    }

    async function send(method, url, body, contentType) {
      const res = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": contentType, Accept: "application/json", "X-CSRFToken": csrf },
        body,
      });
      let payload = null;
      try {
        payload = await res.json();
      } catch {
        // not JSON
      }
      return { res, payload };
    }

    function jumpTo(line) {
      const lines = textarea.value.split("\n");
      let offset = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
      textarea.focus();
      textarea.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
      const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
      textarea.scrollTop = Math.max(0, (line - 4) * lineHeight);
    }

    function findingItem(f) {
      return el(
        "li",
        { class: `finding finding-${f.severity}`, "data-code": f.code },
        el("span", { class: `pill sev-${f.severity}`, text: f.code }),
        " ",
        el("code", { class: "finding-path", text: f.path || "(resource)" }),
        el("div", { class: "finding-msg", text: f.message }),
      );
    }

    function showFindings(report, title) {
      const docs = documents(textarea.value);
      const keyOf = (k, ns, n) => `${k}\u0000${ns}\u0000${n}`;
      const byKey = new Map(docs.map((d) => [keyOf(d.kind, d.namespace, d.name), { doc: d, findings: [] }]));
      const loose = [];
      for (const f of report.findings) {
        const hit = byKey.get(keyOf(f.kind, f.namespace, f.name));
        if (hit) hit.findings.push(f);
        else loose.push(f);
      }
      const counts = { error: 0, warning: 0, info: 0 };
      report.findings.forEach((f) => (counts[f.severity] = (counts[f.severity] || 0) + 1));
      const summary = el(
        "p",
        { class: `mesh-verdict ${report.valid ? "ok" : "bad"}`, "data-testid": "verdict" },
        title || (report.valid ? "Valid" : "Blocked by errors"),
        ` — ${counts.error} error${counts.error === 1 ? "" : "s"}, ${counts.warning} warning${counts.warning === 1 ? "" : "s"}`,
        counts.info ? `, ${counts.info} info` : "",
      );
      const groups = [...byKey.values()].map(({ doc, findings }) =>
        el(
          "div",
          { class: `mesh-resource${findings.some((f) => f.severity === "error") ? " has-errors" : ""}`, "data-resource": `${doc.kind}/${doc.namespace}/${doc.name}` },
          el(
            "button",
            { type: "button", class: "link mesh-resource-name", title: `Go to line ${doc.line}`, onclick: () => jumpTo(doc.line) },
            `${doc.kind || "?"} ${doc.namespace}/${doc.name || "?"}`,
            el("span", { class: "muted", text: ` · line ${doc.line}` }),
          ),
          findings.length
            ? el("ul", { class: "mesh-findings-list" }, findings.map(findingItem))
            : el("p", { class: "muted small-print", text: "No findings." }),
        ),
      );
      if (loose.length) {
        groups.push(
          el("div", { class: "mesh-resource" }, el("strong", { text: "The bundle" }), el("ul", { class: "mesh-findings-list" }, loose.map(findingItem))),
        );
      }
      findingsBox.replaceChildren(summary, ...groups);
    }

    function showError(box, message) {
      box.replaceChildren(el("div", { class: "error-box", role: "alert" }, el("p", { class: "error-title", text: message })));
    }

    async function validate() {
      validateBtn.disabled = true;
      findingsBox.replaceChildren(el("p", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Validating…"));
      try {
        const { res, payload } = await send("POST", withOrg(root.dataset.validateUrl), textarea.value, "application/yaml");
        if (res.ok && payload) showFindings(payload);
        else showError(findingsBox, (payload && payload.detail) || `Validation failed (HTTP ${res.status}).`);
      } catch (err) {
        showError(findingsBox, `Canopy did not answer: ${err.message}`);
      } finally {
        validateBtn.disabled = false;
      }
    }

    async function publish() {
      publishBtn.disabled = true;
      const params = { message: document.getElementById("mesh-message").value, parent: root.dataset.head || "null" };
      const force = document.getElementById("mesh-force");
      if (force && force.checked) params.force = "true";
      try {
        const { res, payload } = await send("POST", withOrg(root.dataset.revisionsUrl, params), textarea.value, "application/yaml");
        outcome.hidden = false;
        if (res.status === 201) {
          root.dataset.head = String(payload.number);
          showFindings({ valid: !payload.forced, findings: payload.findings }, payload.forced ? "Published despite errors (forced)" : "Published");
          published(payload);
        } else if (res.status === 422) {
          showFindings(payload, "Not published: errors block it");
          outcome.replaceChildren(el("p", { class: "mesh-verdict bad", text: "Not published. Fix the errors listed under their resources, then publish again." }));
        } else if (res.status === 409) {
          outcome.replaceChildren(
            el(
              "div",
              { class: "error-box", role: "alert" },
              el("p", { class: "error-title", text: `Revision r${payload.head} was published after the one you started from.` }),
              el("p", {}, "Copy your changes, then ", el("a", { href: withOrg(location.pathname) , text: `open r${payload.head}` }), " and apply them there."),
            ),
          );
        } else {
          showError(outcome, (payload && payload.detail) || `Publishing failed (HTTP ${res.status}).`);
        }
      } catch (err) {
        outcome.hidden = false;
        showError(outcome, `Canopy did not answer: ${err.message}`);
      } finally {
        publishBtn.disabled = false;
      }
    }

    function published(payload) {
      const number = payload.number;
      const head = el("p", { class: "mesh-verdict ok", "data-testid": "published" }, `Published r${number}`, el("span", { class: "muted", text: ` · ${payload.digest.slice(0, 12)}` }));
      if (!clusters.length) {
        outcome.replaceChildren(head, el("p", { class: "muted" }, "No clusters to roll it out to yet: ", el("a", { href: withOrg(root.dataset.clustersUrl), text: "add a cluster" }), "."));
        return;
      }
      const boxes = clusters.map((name) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "cluster", value: name, checked: true }), ` ${name}`));
      const status = el("ul", { class: "mesh-live-status", "data-testid": "rollout-status" });
      const go = el("button", { type: "button", class: "primary small", text: `Roll out r${number}` });
      go.addEventListener("click", async () => {
        const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        if (!chosen.length) return;
        go.disabled = true;
        const { res, payload: out } = await send("POST", withOrg(root.dataset.rolloutsUrl), JSON.stringify({ revision: number, clusters: chosen }), "application/json");
        if (!res.ok) {
          go.disabled = false;
          status.replaceChildren(el("li", { class: "mesh-error", text: (out && JSON.stringify(out)) || `HTTP ${res.status}` }));
          return;
        }
        watch(out.clusters, status);
      });
      outcome.replaceChildren(head, el("div", { class: "mesh-rollout" }, el("span", { class: "muted", text: "Roll out to " }), boxes, go), status);
    }

    function watch(names, list) {
      if (watching) clearInterval(watching);
      const tick = async () => {
        const { res, payload } = await getJSON(withOrg(root.dataset.statusUrl)).catch(() => ({ res: null }));
        if (!res || !res.ok || !payload) return;
        const rows = payload.clusters.filter((c) => names.includes(c.name));
        list.replaceChildren(
          ...rows.map((c) =>
            el(
              "li",
              { "data-cluster": c.name },
              el("strong", { text: c.name }),
              " ",
              stateBadge(c.state),
              el("span", { class: "muted", text: ` desired r${c.desired ?? "–"} · applied ${c.applied ? `r${c.applied}` : "none"} · seen ${ago(c.last_seen)}` }),
              c.error ? el("div", { class: "mesh-error", text: errorText(c.error) }) : null,
            ),
          ),
        );
      };
      tick();
      watching = setInterval(tick, 1500);
    }

    validateBtn.addEventListener("click", validate);
    if (publishBtn) publishBtn.addEventListener("click", publish);
    textarea.addEventListener("keydown", (e) => {
      if (e.key === "Tab" && !e.shiftKey) {
        e.preventDefault();
        textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
      } else if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
        e.preventDefault();
        validate();
      }
    });
  }

  function telemetryPage() {
    const input = document.getElementById("sampling");
    const out = document.getElementById("sampling-out");
    if (input && out) input.addEventListener("input", () => (out.textContent = input.value));
  }

  const editor = document.getElementById("mesh-editor");
  if (editor) editorPage(editor);
  const clustersRoot = document.getElementById("mesh-clusters");
  if (clustersRoot && clustersRoot.querySelector("tr[data-cluster]")) clustersPage(clustersRoot);
  telemetryPage();
})();
