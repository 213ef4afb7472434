/* The service table's push channel: an EventSource on the poller's data-live URL whose "cells"
   events carry the same out-of-band markup the poll returns; htmx swaps them. While the channel
   is open the poller's timed requests are skipped (its other triggers still run); when it cannot
   open (no room on the server: 204, or an error) the page keeps polling and retries later. */
(function () {
  "use strict";
  var RETRY_MS = 5000;
  var RETRY_REFUSED_MS = 60000;
  var source = null;
  var live = false;
  var opened = false;

  function poller() { return document.getElementById("svc-poller"); }

  function url(base) {
    var q = new URLSearchParams();
    document.querySelectorAll("input[name='v']").forEach(function (i) { q.append("v", i.value); });
    return base + (base.indexOf("?") < 0 ? "?" : "&") + q.toString();
  }

  function setLive(on) {
    live = on;
    var p = poller();
    if (p) p.setAttribute("data-live-state", on ? "live" : "polling");
  }

  function connect() {
    var p = poller();
    if (!p || !window.EventSource || !p.getAttribute("data-live")) return;
    opened = false;
    source = new EventSource(url(p.getAttribute("data-live")));
    source.onopen = function () { opened = true; setLive(true); };
    source.addEventListener("cells", function (event) {
      var target = poller();
      if (target && window.htmx) window.htmx.swap(target, event.data, { swapStyle: "none" });
    });
    source.addEventListener("end", function () { stop(RETRY_REFUSED_MS); });
    source.onerror = function () {
      // Closed for good (204, wrong type) or dropped: poll, and try again with fresh versions.
      stop(opened ? RETRY_MS : RETRY_REFUSED_MS);
    };
  }

  function stop(retryMs) {
    if (source) { source.close(); source = null; }
    setLive(false);
    if (retryMs && !document.hidden) window.setTimeout(connect, retryMs);
  }

  // Skip the poller's timed requests while pushed updates arrive (a triggering event means a
  // real trigger, e.g. services-changed after an action: that one still runs).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var p = poller();
    if (live && p && event.detail.elt === p && !event.detail.requestConfig.triggeringEvent) {
      event.preventDefault();
    }
  });

  // A hidden tab holds no stream (and no server thread); it reconnects when shown again.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) stop(0);
    else if (!source) connect();
  });
  window.addEventListener("pagehide", function () { stop(0); });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
