/* Goldpath session replay: plays an asciicast v2 recording in xterm.js with its own timing.
   A recording is a header line {"version": 2, "width", "height", ...} then [seconds, "o"|"r"|..., "text"] lines;
   "o" is output, "r" a resize "COLSxROWS"; other event types (input, markers) are not shown.
   Buttons carrying data-replay-url open the player (#replay); play/pause and speed x1/x2/x4. */
(function () {
  "use strict";

  function parse(text) {
    var lines = text.split("\n").filter(function (l) {
      return l.trim() !== "";
    });
    if (!lines.length) throw new Error("empty recording");
    var header = JSON.parse(lines[0]);
    if (header.version !== 2) throw new Error("not an asciicast v2 recording");
    var events = [];
    for (var i = 1; i < lines.length; i++) {
      var ev;
      try {
        ev = JSON.parse(lines[i]);
      } catch (e) {
        continue; // a cut recording may end in half a line
      }
      if (Array.isArray(ev) && ev.length >= 3 && typeof ev[0] === "number") events.push(ev);
    }
    // idle_time_limit (when the header has one) shortens long pauses, as asciinema does
    var limit = Number(header.idle_time_limit) || 0;
    if (limit > 0) {
      var shift = 0;
      var prev = 0;
      events.forEach(function (ev) {
        var gap = ev[0] - prev;
        prev = ev[0];
        if (gap > limit) shift += gap - limit;
        ev[0] -= shift;
      });
    }
    return { header: header, events: events, duration: events.length ? events[events.length - 1][0] : 0 };
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function Player(box, cast, ui) {
    this.cast = cast;
    this.ui = ui;
    this.speed = 1;
    this.playing = false;
    this.idx = 0;
    this.t = 0; // recording time reached, in seconds
    this.timer = null;
    this.term = new window.Terminal({
      cols: cast.header.width || 80,
      rows: cast.header.height || 24,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 5000,
      convertEol: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: { background: "#1e1e1e" },
    });
    this.term.open(box);
    this.render();
  }

  Player.prototype.now = function () {
    if (!this.playing) return this.t;
    return this.startT + ((performance.now() - this.startWall) / 1000) * this.speed;
  };

  Player.prototype.apply = function (ev) {
    if (ev[1] === "o") this.term.write(String(ev[2]));
    else if (ev[1] === "r") {
      var m = /^(\d+)x(\d+)$/.exec(String(ev[2]));
      if (m) this.term.resize(Number(m[1]), Number(m[2]));
    }
  };

  Player.prototype.step = function () {
    var events = this.cast.events;
    var now = this.now();
    while (this.idx < events.length && events[this.idx][0] <= now) this.apply(events[this.idx++]);
    if (this.idx >= events.length) {
      this.t = this.cast.duration;
      this.playing = false;
      this.ended = true;
      this.render();
      return;
    }
    var self = this;
    var wait = ((events[this.idx][0] - now) / this.speed) * 1000;
    this.timer = setTimeout(function () {
      self.step();
    }, Math.max(0, wait));
    this.render();
  };

  Player.prototype.play = function () {
    if (this.playing) return;
    if (this.ended) {
      this.term.reset();
      this.term.resize(this.cast.header.width || 80, this.cast.header.height || 24);
      this.idx = 0;
      this.t = 0;
      this.ended = false;
    }
    this.playing = true;
    this.startT = this.t;
    this.startWall = performance.now();
    this.step();
  };

  Player.prototype.pause = function () {
    if (!this.playing) return;
    this.t = Math.min(this.now(), this.cast.duration);
    this.playing = false;
    clearTimeout(this.timer);
    this.render();
  };

  Player.prototype.setSpeed = function (speed) {
    var was = this.playing;
    if (was) this.pause();
    this.speed = speed;
    if (was) this.play();
    this.render();
  };

  Player.prototype.render = function () {
    var ui = this.ui;
    ui.toggle.textContent = this.playing ? "Pause" : this.ended ? "Replay again" : "Play";
    ui.toggle.setAttribute("aria-pressed", this.playing ? "true" : "false");
    ui.speeds.forEach(function (b) {
      var on = Number(b.dataset.speed) === this.speed;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.classList.toggle("primary", on);
    }, this);
    ui.state.dataset.state = this.playing ? "playing" : this.ended ? "ended" : "paused";
    ui.state.textContent =
      (this.playing ? "Playing" : this.ended ? "Finished" : "Paused") +
      " · " + clock(Math.min(this.now(), this.cast.duration)) + " / " + clock(this.cast.duration) +
      " · x" + this.speed;
  };

  Player.prototype.dispose = function () {
    this.playing = false;
    clearTimeout(this.timer);
    this.term.dispose();
  };

  function start() {
    var panel = document.getElementById("replay");
    if (!panel || !window.Terminal) return;
    var box = panel.querySelector("[data-replay-screen]");
    var title = panel.querySelector("[data-replay-title]");
    var ui = {
      toggle: panel.querySelector("[data-replay-toggle]"),
      state: panel.querySelector("[data-replay-state]"),
      speeds: Array.prototype.slice.call(panel.querySelectorAll("[data-speed]")),
    };
    var player = null;
    var ticker = null;

    function close() {
      if (player) player.dispose();
      player = null;
      clearInterval(ticker);
      panel.hidden = true;
    }

    function open(button) {
      close();
      panel.hidden = false;
      title.textContent = button.dataset.replayTitle || "Recording";
      ui.state.dataset.state = "loading";
      ui.state.textContent = "Loading the recording…";
      ui.toggle.disabled = true;
      // no Accept header of our own: the API's content negotiation knows JSON, the recording action answers the cast
      fetch(button.dataset.replayUrl, { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error("the server answered " + r.status);
          return r.text();
        })
        .then(function (text) {
          var cast = parse(text);
          player = new Player(box, cast, ui);
          ui.toggle.disabled = false;
          ticker = setInterval(function () {
            if (player && player.playing) player.render();
          }, 250);
          panel.scrollIntoView({ block: "nearest" });
          player.play();
        })
        .catch(function (err) {
          ui.state.dataset.state = "error";
          ui.state.textContent = "Could not load the recording: " + err.message + ".";
        });
    }

    document.addEventListener("click", function (ev) {
      var button = ev.target.closest("[data-replay-url]");
      if (button) open(button);
    });
    ui.toggle.addEventListener("click", function () {
      if (!player) return;
      if (player.playing) player.pause();
      else player.play();
    });
    ui.speeds.forEach(function (b) {
      b.addEventListener("click", function () {
        if (player) player.setSpeed(Number(b.dataset.speed));
      });
    });
    panel.querySelector("[data-replay-close]").addEventListener("click", close);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
