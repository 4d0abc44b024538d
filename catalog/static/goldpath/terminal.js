/* Goldpath terminal page: xterm.js speaking the terminal protocol over a WebSocket.
   Client -> server: text frames {"data": "<keystrokes>"} and {"resize": {"cols": n, "rows": n}}.
   Server -> client: binary frames of terminal output (raw bytes, UTF-8 decoded by xterm.js).
   Close codes: 4400 bad message, 4403 not allowed, 4409 not running, 4503 agent not connected yet, 4410 stopped, 1000 ended.
   Abnormal closes reconnect with backoff; 4403/4409/1000 do not (nothing would change by retrying). */
(function () {
  "use strict";

  var REASONS = {
    1000: "Session ended: the shell exited.",
    4400: "The portal did not understand a message from this page.",
    4403: "Not allowed: only the workspace's owner may open its terminal.",
    4409: "The workspace is not running: start it, then reconnect.",
    4410: "The workspace stopped (or its agent went away).",
    4503: "The workspace agent is not connected yet.",
  };
  var FINAL = { 1000: true, 4400: true, 4403: true, 4409: true };
  var BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  var MAX_ATTEMPTS = 10;

  function start() {
    var box = document.getElementById("terminal");
    if (!box || !window.Terminal || !window.FitAddon) return;
    var statusEl = document.getElementById("term-status");
    var reconnectBtn = document.getElementById("term-reconnect");
    var copyBtn = document.getElementById("term-copy");
    var pasteBtn = document.getElementById("term-paste");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + box.dataset.wsPath;

    var term = new window.Terminal({
      cursorBlink: true,
      convertEol: false,
      scrollback: 5000,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      theme: { background: "#1e1e1e" },
    });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);

    var ws = null;
    var attempt = 0;
    var retryTimer = null;
    var selection = "";

    function status(state, text) {
      statusEl.dataset.state = state;
      statusEl.textContent = text;
      reconnectBtn.hidden = state === "connected" || state === "connecting";
    }

    function send(obj) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
    }

    function sendSize() {
      send({ resize: { cols: term.cols, rows: term.rows } });
    }

    function refit() {
      try {
        fit.fit();
      } catch (e) {
        /* the box is hidden or has no size yet */
      }
    }

    function reasonOf(ev) {
      if (REASONS[ev.code]) return REASONS[ev.code];
      if (ev.reason) return ev.reason;
      return "Connection lost (code " + ev.code + ").";
    }

    function connect() {
      clearTimeout(retryTimer);
      if (ws) {
        ws.onclose = null;
        ws.close();
      }
      status("connecting", attempt ? "Reconnecting (attempt " + (attempt + 1) + ")…" : "Connecting…");
      var sock = new WebSocket(url);
      sock.binaryType = "arraybuffer";
      ws = sock;
      sock.onopen = function () {
        refit();
        sendSize();
        status("connected", "Connected.");
        term.focus();
      };
      sock.onmessage = function (ev) {
        if (typeof ev.data === "string") term.write(ev.data);
        else term.write(new Uint8Array(ev.data));
        attempt = 0; // output flowed: the next drop starts the backoff again
      };
      sock.onclose = function (ev) {
        if (ws !== sock) return;
        ws = null;
        var why = reasonOf(ev);
        term.write("\r\n\x1b[2m[" + why + "]\x1b[0m\r\n");
        if (FINAL[ev.code] || attempt + 1 >= MAX_ATTEMPTS) {
          status("closed", why + (FINAL[ev.code] ? "" : " Gave up reconnecting."));
          return;
        }
        var wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
        attempt += 1;
        status("closed", why + " Reconnecting in " + Math.round(wait / 1000) + " s…");
        retryTimer = setTimeout(connect, wait);
      };
    }

    // keystrokes (and xterm's binary mouse reports) go to the shell as they are typed
    term.onData(function (data) {
      send({ data: data });
    });
    term.onBinary(function (data) {
      send({ data: data });
    });
    term.onResize(function () {
      sendSize();
    });

    // --- copy and paste ---------------------------------------------------------------------------
    function copyText(text) {
      if (!text) return;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).catch(function () {
          legacyCopy(text);
        });
      } else {
        legacyCopy(text);
      }
    }

    function legacyCopy(text) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try {
        document.execCommand("copy");
      } catch (e) {
        /* nothing more to try: the selection stays on screen */
      }
      document.body.removeChild(area);
      term.focus();
    }

    function pasteFromClipboard() {
      if (navigator.clipboard && navigator.clipboard.readText && window.isSecureContext) {
        navigator.clipboard.readText().then(
          function (text) {
            if (text) term.paste(text);
            term.focus();
          },
          function () {
            status(statusEl.dataset.state, statusEl.textContent.replace(/ Paste with .*$/, "") +
              " Paste with Ctrl+Shift+V or right-click, Paste.");
            term.focus();
          }
        );
      } else {
        term.focus(); // the browser's own paste (Ctrl+Shift+V, context menu) reaches xterm's paste handler
      }
    }

    term.onSelectionChange(function () {
      selection = term.getSelection();
      copyBtn.disabled = !selection;
    });
    term.attachCustomKeyEventHandler(function (ev) {
      if (ev.type !== "keydown" || !ev.ctrlKey || !ev.shiftKey) return true;
      if (ev.code === "KeyC") {
        ev.preventDefault(); // Chrome's Ctrl+Shift+C opens the inspector
        copyText(term.getSelection());
        return false;
      }
      if (ev.code === "KeyV") {
        return false; // not a keystroke: the browser's paste event lands in xterm's textarea and is pasted
      }
      return true;
    });
    copyBtn.addEventListener("click", function () {
      copyText(selection);
    });
    pasteBtn.addEventListener("click", pasteFromClipboard);

    reconnectBtn.addEventListener("click", function () {
      attempt = 0;
      connect();
    });
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(refit, 100);
    });

    refit();
    connect();
    window.goldpathTerminal = { term: term, reconnect: connect };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
