// Qingyuan HIE workbench: the little behaviour the pages need (no inline scripts: CSP script-src 'self').
document.addEventListener("click", function (event) {
  var target = event.target;
  if (!(target instanceof Element)) return;
  if (target.matches("[data-print]")) { event.preventDefault(); window.print(); }
  var confirmText = target.getAttribute("data-confirm");
  if (confirmText && !window.confirm(confirmText)) { event.preventDefault(); }
});
