// WCAG 2.x contrast of every visible text on the page: each non-blank text node, and the
// value or placeholder of each form field, against the colour actually behind it. Returns
// the offenders: [{text, where, fg, bg, ratio, need}]. Evaluated by tests/e2e/test_contrast.py.
(() => {
  const parse = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    // top (r,g,b,a) composited over an opaque colour
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat(1);
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");

  /** The opaque colour behind ``el``: its and its ancestors' background colours composited
      from the first opaque one up, each layer weighted by its element's own opacity. */
  function background(el) {
    const layers = [];
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const st = getComputedStyle(n);
      const c = parse(st.backgroundColor);
      const op = Number(st.opacity);
      if (c && c[3] > 0) {
        layers.push([c[0], c[1], c[2], c[3] * op]);
        if (c[3] * op >= 1) break;
      }
    }
    let base = [255, 255, 255, 1]; // the canvas
    for (const layer of layers.reverse()) base = over(layer, base);
    return base;
  }

  /** Opacity the element inherits from itself and its ancestors (multiplied). */
  function opacity(el) {
    let o = 1;
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) o *= Number(getComputedStyle(n).opacity);
    return o;
  }

  function visible(el) {
    if (!el.getClientRects().length) return false;
    const st = getComputedStyle(el);
    if (st.visibility !== "visible") return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) return false; // .sr-only and the like
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const s = getComputedStyle(n);
      if (s.clip === "rect(0px, 0px, 0px, 0px)" || s.clipPath === "inset(50%)") return false;
    }
    return true;
  }

  function where(el) {
    const parts = [];
    for (let n = el; n && n.nodeType === 1 && parts.length < 4; n = n.parentElement) {
      let s = n.tagName.toLowerCase();
      if (n.id) { parts.unshift(`${s}#${n.id}`); break; }
      if (n.classList.length) s += "." + [...n.classList].slice(0, 2).join(".");
      parts.unshift(s);
    }
    return parts.join(" > ");
  }

  function large(st) {
    const px = parseFloat(st.fontSize);
    const bold = Number(st.fontWeight) >= 700 || st.fontWeight === "bold";
    return px >= 24 || (bold && px >= 18.66);
  }

  function disabled(el) {
    return Boolean(el.closest(":disabled, [aria-disabled=true]"));
  }

  const offenders = [];
  const seen = new Set();
  function check(el, text, colour) {
    if (!text.trim() || disabled(el) || !visible(el)) return;
    const st = getComputedStyle(el);
    const fgRaw = parse(colour || st.color);
    if (!fgRaw) return;
    const bg = background(el);
    const fg = over([fgRaw[0], fgRaw[1], fgRaw[2], fgRaw[3] * opacity(el)], bg);
    const r = ratio(fg, bg);
    const need = large(st) ? 3 : 4.5;
    if (r + 1e-6 < need) {
      const key = `${where(el)}|${hex(fg)}|${hex(bg)}`;
      if (seen.has(key)) return;
      seen.add(key);
      offenders.push({ text: text.trim().slice(0, 40), where: where(el), fg: hex(fg), bg: hex(bg), ratio: Math.round(r * 100) / 100, need });
    }
  }

  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!el || el.closest("script, style, noscript, template, svg title")) continue;
    check(el, t.nodeValue, el instanceof SVGElement ? getComputedStyle(el).fill : null);
  }
  for (const f of document.querySelectorAll("input:not([type=hidden]):not([type=checkbox]):not([type=radio]):not([type=submit]), select, textarea")) {
    if (f.value) check(f, f.tagName === "SELECT" ? (f.selectedOptions[0] || {}).text || "" : f.value);
    else if (f.placeholder) check(f, f.placeholder, getComputedStyle(f, "::placeholder").color);
  }
  return offenders;
})()
