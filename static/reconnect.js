// The way back in: when requests stop reaching Stackpilot (its proxy is being restarted or
// recreated), probe /api/health every 1.5 s and, once it answers, say so and let the page's
// regions refresh themselves (hx-trigger="stackpilot:reconnected from:body"). No inline script.
(function () {
  "use strict";
  var probing = null;
  var started = 0;

  function alertText(text) {
    var el = document.querySelector(".alert-offline .alert-body span");
    if (el) el.textContent = text;
  }

  function back() {
    clearInterval(probing);
    probing = null;
    var offline = document.querySelector(".alert-offline");
    if (offline) offline.remove();
    document.body.dispatchEvent(new CustomEvent("stackpilot:reconnected", { bubbles: true }));
  }

  function probe() {
    var gone = Math.round((Date.now() - started) / 1000);
    alertText("Reconnecting… (" + gone + " s; a proxy restart takes about 10 s)");
    fetch(document.documentElement.getAttribute("data-health") || "/api/health",
          { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (r.ok) back(); })
      .catch(function () { /* still gone */ });
  }

  document.addEventListener("htmx:sendError", function () {
    if (probing) return;
    started = Date.now();
    probing = setInterval(probe, 1500);
  });
})();
