/* The log viewer: one WebSocket, lines rendered from server-escaped HTML, a bounded DOM.
 * The server escapes every byte of log text and sends only its own <span>/<mark> markup, so
 * message HTML is set as is; names, notes and statuses go in with textContent.
 * Lines come in "L" frames (app/logstream/wire.py): "L" + JSON groups [service, is_stderr, count]
 * + "\n" + rows "<stamp> <html>" joined by "\n"; everything else is a JSON message. */
(function () {
  "use strict";

  var MAX_LINES = 5000;          // lines kept in the page
  var MAX_PENDING = 5000;        // lines held while paused
  var root = document.getElementById("logs");
  if (!root) return;

  var out = document.getElementById("logs-out");
  var form = document.getElementById("logs-controls");
  var stateEl = document.getElementById("logs-state");
  var banner = document.getElementById("logs-banner");
  var bannerText = document.getElementById("logs-banner-text");
  var reconnectBtn = document.getElementById("logs-reconnect");
  var pauseBtn = document.getElementById("logs-pause");
  var pendingEl = document.getElementById("logs-pending");
  var countEl = document.getElementById("logs-count");
  var jumpBtn = document.getElementById("logs-jump");
  var qInput = document.getElementById("logs-q");
  var qError = document.getElementById("logs-q-error");
  var sinceSel = document.getElementById("logs-since");
  var sinceAt = document.getElementById("logs-since-at");

  var colours = {};
  document.querySelectorAll("#logs-legend [data-service]").forEach(function (li) {
    colours[li.getAttribute("data-service")] = li.getAttribute("data-colour");
  });

  var ws = null;
  var names = [];
  var lastStamp = "";        // engine stamp of the newest line shown: the resume point
  var lineCount = 0;
  var paused = false;
  var pending = [];
  var pendingDropped = 0;
  var retry = 0;
  var retryTimer = null;
  var finished = false;      // the server said: ended / full / bad options: do not auto-reconnect
  var generation = 0;

  root.classList.add("js");

  function params(forDownload) {
    var p = new URLSearchParams();
    var fd = new FormData(form);
    fd.getAll("s").forEach(function (s) { p.append("s", s); });
    p.set("tail", fd.get("tail") || "100");
    var since = fd.get("since") || "";
    if (since === "at") {
      var v = sinceAt.value;
      since = v ? new Date(v).toISOString() : "";
    }
    if (since) p.set("since", since);
    p.set("follow", document.getElementById("logs-follow").checked ? "1" : "0");
    p.set("timestamps", document.getElementById("logs-ts").checked ? "1" : "0");
    var q = (fd.get("q") || "").trim();
    if (q) p.set("q", q);
    if (forDownload) p.delete("follow");
    return p;
  }

  function setState(state, text) {
    stateEl.setAttribute("data-state", state);
    stateEl.textContent = text;
  }

  function showBanner(text, canReconnect) {
    bannerText.textContent = text;
    reconnectBtn.hidden = !canReconnect;
    banner.hidden = false;
  }

  function hideBanner() { banner.hidden = true; }

  function connect(resume) {
    clearTimeout(retryTimer);
    if (ws) { ws.onclose = null; ws.close(); }
    finished = false;
    var p = params(false);
    if (resume && lastStamp) p.set("resume", lastStamp);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      root.getAttribute("data-ws") + "?" + p.toString();
    var gen = ++generation;
    setState("connecting", resume ? "Reconnecting…" : "Connecting…");
    ws = new WebSocket(url);
    ws.onopen = function () { retry = 0; };
    ws.onmessage = function (ev) {
      if (gen !== generation) return;
      if (ev.data.charAt(0) === "L") { deliver(linesOf(ev.data)); } else { receive(JSON.parse(ev.data)); }
    };
    ws.onclose = function () { if (gen === generation) closed(); };
  }

  function closed() {
    ws = null;
    if (finished) return;
    var wait = Math.min(10, Math.pow(2, retry));
    retry += 1;
    setState("down", "Disconnected");
    showBanner("The log connection was lost. Reconnecting in " + wait + " s…", true);
    retryTimer = setTimeout(function () { connect(true); }, wait * 1000);
  }

  function receive(msg) {
    if (msg.t === "hello") {
      names = msg.services || [];
      hideBanner();
      setState("live", "Connected");
      qError.textContent = "";
      qInput.removeAttribute("aria-invalid");
    } else if (msg.t === "batch") {
      msg.items.forEach(control);
    } else if (msg.t === "error") {
      finished = true;
      if (msg.field === "q") {
        qError.textContent = msg.text;
        qInput.setAttribute("aria-invalid", "true");
        setState("error", "Check the filter");
      } else {
        setState("error", msg.text);
      }
    } else if (msg.t === "full") {
      finished = true;
      setState("error", "Too many open log views");
      showBanner(msg.text, true);
    }
  }

  function control(item) {
    if (item.t === "status") {
      if (item.state === "live") {
        hideBanner();
        setState("live", document.getElementById("logs-follow").checked ? "Live" : "Connected");
      } else if (item.state === "engine-down") {
        setState("down", "Engine unreachable");
        showBanner(item.text, true);
      } else if (item.state === "ended") {
        finished = true;
        setState("ended", item.text || "End of logs");
      }
      return;
    }
    var div = document.createElement("div");
    div.className = "note note-" + (item.t === "skip" ? "skip" : item.kind);
    div.textContent = item.t === "skip"
      ? "… " + item.n + (item.n === 1 ? " line" : " lines") + " skipped (the browser fell behind)"
      : item.text;
    if (paused) { hold(div); } else { append([div]); }
  }

  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = "0" + n; return n; }

  function fillTime(el, stamp) {
    // Local date (hidden on narrow screens) and time to the millisecond; the engine's stamp stays in datetime.
    var d = new Date(stamp.slice(0, 23) + "Z");
    if (isNaN(d)) { el.textContent = stamp; return; }
    var day = document.createElement("span");
    day.className = "day";
    day.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " ";
    el.appendChild(day);
    el.appendChild(document.createTextNode(pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" +
      pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3)));
  }

  function linesOf(data) {
    // An L frame to items [stamp, service_index, is_stderr, html].
    var nl = data.indexOf("\n");
    var groups = JSON.parse(data.slice(1, nl));
    var rows = data.slice(nl + 1).split("\n");
    var items = [];
    var r = 0;
    groups.forEach(function (g) {
      for (var n = 0; n < g[2] && r < rows.length; n++, r++) {
        var row = rows[r];
        var sp = row.indexOf(" ");
        items.push([row.slice(0, sp), g[0], g[1], row.slice(sp + 1)]);
      }
    });
    return items;
  }

  function lineEl(item) {
    // item: [stamp, service_index, is_stderr, html]
    var div = document.createElement("div");
    div.className = item[2] ? "ln err" : "ln";
    if (item[0]) div.dataset.k = sortable(item[0]);
    var t = document.createElement("time");
    t.className = "ts";
    t.dateTime = item[0];
    fillTime(t, item[0]);
    div.appendChild(t);
    var name = names[item[1]] || "";
    var svc = document.createElement("span");
    svc.className = "svc svc-c" + (colours[name] || "0");
    svc.textContent = name;
    div.appendChild(svc);
    if (item[2]) {
      var e = document.createElement("span");
      e.className = "stream";
      e.textContent = "err";
      e.title = "written to stderr";
      div.appendChild(e);
    }
    var m = document.createElement("span");
    m.className = "msg";
    m.innerHTML = item[3];  // escaped and styled on the server
    div.appendChild(m);
    return div;
  }

  function deliver(items) {
    var els = items.map(lineEl);
    if (items.length && items[items.length - 1][0]) lastStamp = newest(lastStamp, items[items.length - 1][0]);
    if (paused) { els.forEach(hold); return; }
    append(els);
  }

  function sortable(stamp) {
    var s = stamp.replace(/Z$/, "");
    if (s.indexOf(".") < 0) s += ".";
    return s.padEnd(29, "0");
  }

  function newest(a, b) { return !a || sortable(b) > sortable(a) ? b : a; }

  function hold(el) {
    pending.push(el);
    if (pending.length > MAX_PENDING) { pending.shift(); pendingDropped += 1; }
    showPending();
  }

  function showPending() {
    var n = pending.length + pendingDropped;
    pendingEl.textContent = paused && n ? n + " waiting" : "";
  }

  function atBottom() { return out.scrollHeight - out.scrollTop - out.clientHeight < 40; }

  function append(els) {
    var stick = atBottom();
    var frag = document.createDocumentFragment();
    els.forEach(function (el) {
      var k = el.dataset ? el.dataset.k : "";
      var last = out.lastElementChild;
      // A line older than the last one shown (another service's reader was a frame late):
      // slide it back into time order, looking back a little only.
      if (k && last && last.dataset.k && last.dataset.k > k && !frag.childNodes.length) {
        var ref = last, steps = 0;
        while (ref.previousElementSibling && ref.previousElementSibling.dataset.k &&
               ref.previousElementSibling.dataset.k > k && steps < 200) {
          ref = ref.previousElementSibling; steps += 1;
        }
        out.insertBefore(el, ref);
      } else {
        frag.appendChild(el);
      }
      if (el.classList.contains("ln")) lineCount += 1;
    });
    out.appendChild(frag);
    while (out.childElementCount > MAX_LINES) {
      if (out.firstElementChild.classList.contains("ln")) lineCount -= 1;
      out.removeChild(out.firstElementChild);
    }
    countEl.textContent = lineCount + (lineCount === 1 ? " line" : " lines") +
      (lineCount >= MAX_LINES ? " (older lines leave the page)" : "");
    if (stick) out.scrollTop = out.scrollHeight;
    jumpBtn.hidden = atBottom();
  }

  function clearOut() {
    out.textContent = "";
    lineCount = 0;
    pending = [];
    pendingDropped = 0;
    showPending();
    countEl.textContent = "0 lines";
  }

  function restart() {
    clearOut();
    lastStamp = "";
    connect(false);
  }

  pauseBtn.addEventListener("click", function () {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
    root.classList.toggle("paused", paused);
    if (stateEl.getAttribute("data-state") === "live" || stateEl.getAttribute("data-state") === "paused") {
      setState(paused ? "paused" : "live", paused ? "Paused" : "Live");
    }
    if (!paused) {
      if (pendingDropped) {
        var note = document.createElement("div");
        note.className = "note note-skip";
        note.textContent = "… " + pendingDropped + " lines skipped while paused";
        pending.unshift(note);
      }
      var held = pending;
      pending = [];
      pendingDropped = 0;
      append(held);
    }
    showPending();
  });

  document.getElementById("logs-clear").addEventListener("click", clearOut);
  reconnectBtn.addEventListener("click", function () { retry = 0; connect(true); });
  jumpBtn.addEventListener("click", function () { out.scrollTop = out.scrollHeight; jumpBtn.hidden = true; });
  out.addEventListener("scroll", function () { jumpBtn.hidden = atBottom(); });

  document.getElementById("logs-ts").addEventListener("change", function (e) {
    root.classList.toggle("no-ts", !e.target.checked);
  });
  document.getElementById("logs-wrap").addEventListener("change", function (e) {
    root.classList.toggle("no-wrap", !e.target.checked);
  });

  var qTimer = null;
  qInput.addEventListener("input", function () {
    clearTimeout(qTimer);
    qTimer = setTimeout(restart, 350);
  });
  sinceSel.addEventListener("change", function () {
    sinceAt.hidden = sinceSel.value !== "at";
    if (sinceSel.value === "at") { sinceAt.focus(); if (!sinceAt.value) return; }
    restart();
  });
  form.addEventListener("change", function (e) {
    var id = e.target.id;
    if (id === "logs-ts" || id === "logs-wrap" || id === "logs-q" || id === "logs-since") return;
    if (e.target.name === "s") {
      var count = document.getElementById("svc-count");
      if (count) count.textContent = form.querySelectorAll('input[name="s"]:checked').length + "/" +
        form.querySelectorAll('input[name="s"]').length;
    }
    restart();
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (e.submitter && e.submitter.id === "logs-download") {
      window.location.href = root.getAttribute("data-download") + "?" + params(true).toString();
    } else {
      restart();
    }
  });
  window.addEventListener("pagehide", function () {
    finished = true;
    if (ws) ws.close();
  });

  connect(false);
})();
