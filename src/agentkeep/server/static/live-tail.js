// live-tail.js — the Live view: each <section class="live-session" data-follow="URL">
// follows its session's output through the SSE log tail (server/live.py): `data:` is
// {"stream", "line", "text"}; `event: end` says the session's streams are sealed.
// Lines already on the page (data-stream/data-line) are skipped, so the tail's history
// and the server-rendered lines never show twice. Text goes in with textContent only.
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
    var source = new EventSource(section.dataset.follow);
    source.onmessage = function (message) {
      var item = JSON.parse(message.data);
      if (item.line <= (seen[item.stream] || 0)) { return; }
      seen[item.stream] = item.line;
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var span = document.createElement("span");
      span.className = "line";
      span.dataset.stream = item.stream;
      span.dataset.line = String(item.line);
      if (item.stream === "stderr") { span.classList.add("stderr"); }
      span.textContent = item.text + "\n";
      log.appendChild(span);
      while (log.childElementCount > MAX_LINES) { log.firstElementChild.remove(); }
      if (atBottom) { log.scrollTop = log.scrollHeight; }
      section.dataset.lines = String(log.childElementCount);
    };
    source.addEventListener("end", function () {
      source.close();
      state.textContent = "ended";
      state.dataset.state = "ended";
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        state.textContent = "disconnected";
        state.dataset.state = "closed";
      }
    };
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
