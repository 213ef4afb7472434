/* Service table glue that htmx cannot express: the filter box, keeping open menus open across
   refreshes, following the progress log, closing the progress panel. No inline script (CSP). */
(function () {
  "use strict";

  function filterRows() {
    var box = document.getElementById("svc-filter");
    var table = document.getElementById("svc-table");
    if (!box || !table) return;
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    table.querySelectorAll("tbody.svc-group").forEach(function (group) {
      var visible = 0;
      group.querySelectorAll("tr.svc-row").forEach(function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        row.hidden = !match;
        if (match) visible++;
      });
      group.hidden = visible === 0;
      shown += visible;
    });
    var none = document.getElementById("svc-nomatch");
    if (none) none.hidden = shown !== 0 || words.length === 0;
    // Keep the filter in the address so a reload or a shared link keeps it.
    var url = new URL(window.location.href);
    if (box.value) url.searchParams.set("q", box.value); else url.searchParams.delete("q");
    window.history.replaceState(null, "", url);
  }

  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "svc-filter") filterRows();
  });
  document.addEventListener("DOMContentLoaded", filterRows);

  // An out-of-band swap of the whole table (new service, new order) must not close an open menu.
  var openMenus = [];
  // Likewise an open "why unhealthy?" box in a health cell that the poll replaces, and the
  // keyboard focus on its summary (a replaced element would drop it to the page).
  var focusedBox = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (target && (target.id === "svc-table" || target.classList.contains("c-health"))) {
      openMenus = openMenus.concat(Array.prototype.map.call(target.querySelectorAll("details[open]"), function (d) { return d.id; }));
      var active = document.activeElement;
      var box = active && target.contains(active) && active.closest("details[id]");
      if (box && active.tagName === "SUMMARY") focusedBox = box.id;
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    var inTable = target && (target.id === "svc-table" || (target.closest && target.closest("#svc-table")));
    if (inTable || openMenus.length) {
      openMenus.forEach(function (id) {
        var d = document.getElementById(id);
        if (d) d.open = true;
      });
      openMenus = [];
      if (inTable) filterRows();
    }
    if (focusedBox) {
      var summary = document.querySelector("#" + CSS.escape(focusedBox) + " > summary");
      if (summary && summary !== document.activeElement) summary.focus();
      focusedBox = null;
    }
  });

  // Follow the progress log while the reader is at its end.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var t = event.detail.target;
    if (t && t.classList && t.classList.contains("run-log")) {
      t.dataset.follow = (t.scrollHeight - t.scrollTop - t.clientHeight < 24) ? "1" : "";
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var t = event.detail.target;
    if (t && t.classList && t.classList.contains("run-log") && t.dataset.follow) t.scrollTop = t.scrollHeight;
    if (t && t.id === "progress") {
      var log = t.querySelector(".run-log");
      if (log) log.scrollTop = log.scrollHeight;
      // Close the menu whose button started the action.
      document.querySelectorAll(".row-menu[open], .action-menu[open]").forEach(function (d) { d.open = false; });
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-close-run]");
    if (button) {
      var panel = button.closest(".run-panel");
      if (panel) panel.remove();
    }
  });

  // Copy a port that is not a link (a database, a loopback-only port): "host:port" to the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy-port");
    if (!button) return;
    var text = button.getAttribute("data-copy") || "";
    function said(word) {
      button.setAttribute("data-said", word);
      button.title = word === "copied" ? "Copied " + text : "Copy failed: select " + text;
      window.setTimeout(function () { button.removeAttribute("data-said"); button.title = "Copy " + text; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { said("copied"); }, function () { said("copy failed"); });
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try { said(document.execCommand("copy") ? "copied" : "copy failed"); } catch (e) { said("copy failed"); }
      area.remove();
    }
  });

  // Down with "delete volumes" ticked: ask first, naming the volumes (the form carries the words).
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    var question = form && form.getAttribute && form.getAttribute("data-confirm-volumes");
    if (!question) return;
    var box = form.querySelector("input[name=volumes]");
    if (box && box.checked && !window.confirm(question)) event.preventDefault();
  });

  // One menu open at a time; Escape closes it.
  document.addEventListener("toggle", function (event) {
    var d = event.target;
    if (d.tagName === "DETAILS" && d.open && (d.classList.contains("row-menu") || d.classList.contains("action-menu"))) {
      document.querySelectorAll(".row-menu[open], .action-menu[open]").forEach(function (o) { if (o !== d) o.open = false; });
    }
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll(".row-menu[open], .action-menu[open]").forEach(function (d) {
      d.open = false;
      var s = d.querySelector("summary");
      if (s) s.focus();
    });
  });
})();
