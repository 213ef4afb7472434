/* The shell page: xterm.js (vendored) on a WebSocket to a Docker exec with a TTY.
 * Keystrokes go out as binary frames, output comes back as binary frames; JSON text frames carry
 * control messages (hello, exit, closed, error, full). The CSP allows inline <style> only with this
 * page's nonce: xterm.js writes its measured sizes into <style> elements, so they are stamped here. */
(function () {
  "use strict";

  var root = document.getElementById("shell");
  var holder = document.getElementById("shell-term");
  if (!root || !holder || !window.Terminal) return;

  var nonce = root.getAttribute("data-style-nonce") || "";
  var createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (name) {
    var el = createElement.apply(this, arguments);
    if (nonce && String(name).toLowerCase() === "style") el.setAttribute("nonce", nonce);
    return el;
  };

  var form = document.getElementById("shell-controls");
  var stateEl = document.getElementById("shell-state");
  var banner = document.getElementById("shell-banner");
  var connectBtn = document.getElementById("shell-connect");
  var disconnectBtn = document.getElementById("shell-disconnect");
  var workdirEl = document.getElementById("shell-workdir");
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;

  var term = new window.Terminal({
    cursorBlink: true, convertEol: false, scrollback: 5000, fontSize: 14,
    fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
    theme: { background: "#0c0f13", foreground: dark ? "#e6e9ee" : "#e8eaed" }
  });
  var fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(holder);
  fit.fit();

  var ws = null;
  var encoder = new TextEncoder();

  function setState(state, text) {
    if (!stateEl) return;
    stateEl.setAttribute("data-state", state);
    stateEl.textContent = text;
  }

  function say(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  function connected(on) {
    connectBtn.hidden = on;
    disconnectBtn.hidden = !on;
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(obj instanceof Uint8Array ? obj : JSON.stringify(obj));
  }

  function connect() {
    if (ws) ws.close();
    say("");
    term.reset();
    var params = new URLSearchParams();
    params.set("s", root.getAttribute("data-service"));
    params.set("shell", form.elements.shell.value);
    params.set("user", form.elements.user.value.trim());
    params.set("cols", String(term.cols));
    params.set("rows", String(term.rows));
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var sock = new WebSocket(scheme + location.host + root.getAttribute("data-ws") + "?" + params.toString());
    sock.binaryType = "arraybuffer";
    ws = sock;
    var ended = false;
    setState("connecting", "Connecting…");
    sock.onmessage = function (event) {
      if (typeof event.data !== "string") {
        term.write(new Uint8Array(event.data));
        return;
      }
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.t === "hello") {
        setState("live", "Connected: " + msg.shell + " as " + msg.user);
        if (workdirEl) workdirEl.textContent = msg.workdir;
        connected(true);
        term.focus();
      } else if (msg.t === "exit") {
        ended = true;
        setState("closed", "Shell ended (exit code " + (msg.code === null ? "?" : msg.code) + ")");
      } else if (msg.t === "closed" || msg.t === "error" || msg.t === "full") {
        ended = true;
        setState(msg.t === "closed" ? "closed" : "error", msg.t === "closed" ? "Closed" : "Not connected");
        say(msg.text);
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      connected(false);
      connectBtn.textContent = "Reconnect";
      if (!ended) {
        setState("closed", "Disconnected");
        if (!banner.textContent) say("The connection closed. Reconnect to open a new shell.");
      }
    };
  }

  term.onData(function (data) { send(encoder.encode(data)); });
  term.onResize(function (size) { send({ t: "resize", cols: size.cols, rows: size.rows }); });
  window.addEventListener("resize", function () { fit.fit(); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    connect();
  });
  disconnectBtn.addEventListener("click", function () {
    if (ws) ws.close(1000, "disconnect");
  });
  connect();
})();
