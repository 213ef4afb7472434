/* The .env editor's page glue: reveal/copy secrets, search, close a diff. No inline script (CSP). */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var reveal = event.target.closest("[data-reveal]");
    if (reveal) {
      var input = document.getElementById(reveal.getAttribute("data-reveal"));
      if (!input) return;
      var show;
      if (input.tagName === "TEXTAREA") {  // multi-line secrets: masked by CSS, not by type
        show = input.classList.contains("masked");
        input.classList.toggle("masked", !show);
      } else {
        show = input.type === "password";
        input.type = show ? "text" : "password";
      }
      reveal.setAttribute("aria-pressed", show ? "true" : "false");
      reveal.textContent = show ? "Hide" : "Show";
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (!source) return;
      var done = function () {
        copy.textContent = "Copied";
        window.setTimeout(function () { copy.textContent = "Copy"; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(done, function () { fallbackCopy(source, done); });
      } else {
        fallbackCopy(source, done);
      }
      return;
    }
    var clear = event.target.closest("[data-clear-closest]");
    if (clear) {
      var box = clear.closest(clear.getAttribute("data-clear-closest"));
      if (box) box.textContent = "";
    }
  });

  // Plain-HTTP LAN installs have no async clipboard: copy through a selected temporary field.
  function fallbackCopy(source, done) {
    var tmp = document.createElement("textarea");
    tmp.value = source.value;
    tmp.setAttribute("readonly", "");
    tmp.className = "visually-hidden";
    document.body.appendChild(tmp);
    tmp.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* nothing more we can do */ }
    tmp.remove();
  }

  function applySearch() {
    var box = document.querySelector("[data-config-search]");
    if (!box) return;
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var any = false;
    document.querySelectorAll("[data-config-section]").forEach(function (section) {
      var visible = 0;
      section.querySelectorAll("[data-config-field]").forEach(function (field) {
        var text = field.getAttribute("data-search") || "";
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        field.hidden = !match;
        if (match) visible += 1;
      });
      section.hidden = visible === 0;
      if (visible) any = true;
    });
    var none = document.querySelector("[data-config-nomatch]");
    if (none) none.hidden = any;
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches("[data-config-search]")) applySearch();
  });
  // A re-rendered form keeps the search box (hx-preserve) but needs the filter applied again.
  document.addEventListener("htmx:afterSettle", applySearch);
})();
