/* A copy button on every code block (pre) and on inputs marked data-copy: the text is put on
   the clipboard as it is shown. No dependencies. */
(() => {
  "use strict";

  function button(getText, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small copy";
    b.textContent = "Copy";
    b.setAttribute("aria-label", label);
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(getText());
        b.textContent = "Copied";
      } catch {
        b.textContent = "Select and copy";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 1800);
    });
    return b;
  }

  for (const pre of document.querySelectorAll("main pre")) {
    const wrap = document.createElement("div");
    wrap.className = "copy-wrap";
    pre.replaceWith(wrap);
    wrap.append(pre, button(() => pre.innerText, "Copy this snippet"));
  }
  for (const input of document.querySelectorAll("input[data-copy]")) {
    input.after(button(() => input.value, "Copy the token"));
  }
})();
