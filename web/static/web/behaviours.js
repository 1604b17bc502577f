// Small behaviours that used to be inline event handlers, which the Content-Security-Policy
// (script-src 'self') does not run: data-submit-on-change, data-confirm, data-select-on-click.
document.addEventListener("change", (event) => {
  const el = event.target.closest("[data-submit-on-change]");
  if (el && el.form) el.form.submit();
});
document.addEventListener("submit", (event) => {
  const message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  const el = event.target.closest("[data-select-on-click]");
  if (el) el.select();
});
