/* The dependency graph: fitted to its frame by default (the SVG's viewBox scales it); "Actual
   size" shows it unscaled to pan around (scroll). The choice survives the 5 s refresh (the
   class sits on the frame, which htmx does not replace) and reloads (localStorage). */
(function () {
  "use strict";
  var KEY = "stackpilot.graph.actual";

  function apply(actual) {
    var frame = document.getElementById("graph-frame");
    var button = document.getElementById("graph-zoom");
    if (!frame || !button) return;
    frame.classList.toggle("fit", !actual);
    button.setAttribute("aria-pressed", actual ? "true" : "false");
    button.textContent = actual ? "Fit to frame" : "Actual size";
  }

  function stored() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }

  document.addEventListener("DOMContentLoaded", function () { apply(stored()); });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#graph-zoom");
    if (!button) return;
    var actual = button.getAttribute("aria-pressed") !== "true";
    try { window.localStorage.setItem(KEY, actual ? "1" : "0"); } catch (e) { /* private mode: this page only */ }
    apply(actual);
  });
})();
