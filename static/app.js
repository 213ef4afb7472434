/* Stackpilot's page glue: what htmx cannot do declaratively. No inline script anywhere (CSP). */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the CSRF token in a header (forms also carry a hidden field).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // Dismissable alerts.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) {
      var alert = button.closest(".alert");
      if (alert) alert.remove();
    }
  });

  // Confirmations without inline handlers: <button data-confirm="Really?">.
  document.addEventListener("htmx:confirm", function (event) {
    var el = event.detail.elt;
    var question = el && el.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // A request that never reached the server (network down, server restarting): say so.
  document.addEventListener("htmx:sendError", function () {
    var alerts = document.getElementById("alerts");
    if (!alerts || alerts.querySelector(".alert-offline")) return;
    var div = document.createElement("div");
    div.className = "alert alert-error alert-offline";
    div.setAttribute("role", "alert");
    div.innerHTML = '<div class="alert-body"><strong>Connection lost.</strong> ' +
      "<span>Stackpilot did not answer; it will be retried.</span></div>" +
      '<button type="button" class="alert-close" data-dismiss aria-label="Dismiss">×</button>';
    alerts.prepend(div);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) {
      var offline = document.querySelector(".alert-offline");
      if (offline) offline.remove();
    }
  });
})();
