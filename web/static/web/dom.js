/* What every dashboard script shares: DOM and SVG builders and a JSON fetch with the session.
   No dependencies. Text from senders reaches the page only as text nodes and attribute
   values, never as HTML. */
(() => {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Attributes: "on…" functions become listeners, null/false are left out, true is "",
      "text" sets the text content. Children: nodes or strings, nested arrays flattened. */
  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    node.append(...kids.flat(Infinity).filter((kid) => kid != null && kid !== false));
    return node;
  }

  function svg(tag, attrs, ...kids) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    node.append(...kids.flat(Infinity).filter((kid) => kid != null && kid !== false));
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "class") node.setAttribute("class", v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
  }

  /** GET ``url`` with the session: {res, payload} (payload null when the body is not JSON,
      a proxy's error page, say). Each API's envelope is read by its page. */
  async function getJSON(url, signal) {
    const res = await fetch(url, {
      signal,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    let payload = null;
    try {
      payload = await res.json();
    } catch {
      // not JSON
    }
    return { res, payload };
  }

  window.CanopyDom = { el, svg, getJSON };
})();
