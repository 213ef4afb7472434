/* Setup wizard glue: what htmx cannot do declaratively. No inline script anywhere (CSP). */
(function () {
  "use strict";

  // The ready link carries the setup token in the URL fragment (never sent to any server, never
  // in access logs): move it into the form field and drop it from the address bar and history.
  function takeTokenFromFragment() {
    var match = /(?:^|[#&])token=([A-Za-z0-9_-]+)/.exec(window.location.hash || "");
    if (!match) return;
    var field = document.getElementById("token");
    if (field) field.value = match[1];
    history.replaceState(null, "", window.location.pathname + window.location.search);
    var next = document.getElementById("password");
    if (field && next) next.focus();
  }

  // "Generate" buttons copy a fresh value chosen by the server into their field.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reveal]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-reveal"));
    if (!field) return;
    field.type = field.type === "password" ? "text" : "password";
    button.setAttribute("aria-pressed", field.type === "text" ? "true" : "false");
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", takeTokenFromFragment);
  } else {
    takeTokenFromFragment();
  }
  // A setup link pasted into a tab already on /setup/ changes only the fragment: no reload.
  window.addEventListener("hashchange", takeTokenFromFragment);
})();
