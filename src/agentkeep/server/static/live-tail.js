// live-tail.js — the Live view: each <section class="live-session" data-follow="URL">
// follows its session's output through the SSE log tail (server/live.py): `data:` is
// {"stream", "line", "text"}; `event: end` says the session's streams are sealed.
// Lines already on the page (data-stream/data-line) are skipped, so the tail's history
// and the server-rendered lines never show twice. Text goes in with textContent only.
// The tail goes through live.js (AgentkeepLive.listen), which reconnects after a drop or
// a refused reconnect; its state shows on the section's .live-state.
// A session that starts while the page is open reloads it (the live event stream,
// /api/v1/events/stream?entity=session&after=<the ledger's position when the page was
// rendered>, says session.started), so it shows up too.
"use strict";
(function () {
  if (typeof EventSource === "undefined") { return; }
  var MAX_LINES = 2000; // lines kept per session on the page

  function follow(section) {
    var log = section.querySelector("pre.log");
    var state = section.querySelector(".live-state");
    var seen = {};
    log.querySelectorAll("span.line").forEach(function (line) {
      var stream = line.dataset.stream;
      seen[stream] = Math.max(seen[stream] || 0, Number(line.dataset.line));
    });
    var ended = false;
    // live.js reconnects (also after the server refused a reconnect) and parses each
    // frame's JSON (a frame that is not JSON is skipped); a reconnected tail replays the
    // history, which `seen` skips.
    var tail = window.AgentkeepLive.listen(section.dataset.follow, {
      kinds: ["message", "end"],
      onEvent: function (item, frame) {
        if (frame.type === "end") {
          ended = true;
          tail.close();
          show("ended", "ended");
          return;
        }
        add(item);
      },
      onState: function (value) {
        if (ended) { return; }
        if (value === "open") { show("running", "following"); }
        else if (value === "connecting") { show("reconnecting…", "connecting"); }
      },
      onReset: function () { window.location.reload(); },
    });

    function show(text, value) {
      state.textContent = text;
      state.dataset.state = value;
    }

    function add(item) {
      if (!item || typeof item.stream !== "string" || typeof item.line !== "number") { return; }
      if (item.line <= (seen[item.stream] || 0)) { return; }
      seen[item.stream] = item.line;
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var span = document.createElement("span");
      span.className = "line";
      span.dataset.stream = item.stream;
      span.dataset.line = String(item.line);
      if (item.stream === "stderr") { span.classList.add("stderr"); }
      span.textContent = String(item.text) + "\n";
      log.appendChild(span);
      while (log.childElementCount > MAX_LINES) { log.firstElementChild.remove(); }
      if (atBottom) { log.scrollTop = log.scrollHeight; }
      section.dataset.lines = String(log.childElementCount);
    }
  }

  document.querySelectorAll("section.live-session[data-follow]").forEach(follow);

  // From the ledger's position when the page was rendered: nothing started in between
  // is missed. live.js (the dashboard's stream helper) reconnects and resumes it.
  var after = document.getElementById("live").dataset.after;
  var sessions = window.AgentkeepLive.listen(
    "/api/v1/events/stream?entity=session&after=" + encodeURIComponent(after),
    {
      kinds: ["session.started"],
      onEvent: function () {
        sessions.close();
        window.location.reload();
      },
    }
  );
})();
