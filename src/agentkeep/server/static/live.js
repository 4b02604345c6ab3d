/* live.js: the dashboard's one helper for live streams (Server-Sent Events).
 *
 *   const live = AgentkeepLive.listen("/api/v1/events/stream?entity=task", {
 *     kinds: ["task.created", "task.updated"], // SSE event names to deliver; leave out for
 *                                              // unnamed frames (`data:` only, e.g. a log tail)
 *     onEvent(data, frame) {},  // data: the frame's JSON parsed (the Event's to_dict() for
 *                               // the event stream); frame: the MessageEvent (frame.lastEventId)
 *     onState(state) {},        // "connecting" | "open" | "reset" | "closed"
 *     onReset() {},             // the server dropped this client as too slow (`event: reset`);
 *                               // default: reload the page, which re-reads the state
 *   });
 *   live.close();
 *
 * The browser reconnects by itself after a disconnect and sends the last `id:` it saw as
 * Last-Event-ID, so the server resumes with no gap and no duplicate; when it gives up (the
 * server answered with an error, e.g. 503 while starting) this helper opens a new stream
 * with `?after=<last id>` after 1 s, 2 s, … up to 15 s. The current state is also written
 * to <html data-live="…"> (tests and styles can wait on it).
 */
(function () {
  "use strict";

  function listen(url, options) {
    const opts = options || {};
    const kinds = opts.kinds && opts.kinds.length ? opts.kinds : ["message"];
    let source = null;
    let closed = false;
    let lastId = null;
    let delay = 1000;

    function state(value) {
      document.documentElement.dataset.live = value;
      if (opts.onState) opts.onState(value);
    }

    function deliver(frame) {
      if (frame.lastEventId) lastId = frame.lastEventId;
      let data = null;
      try {
        data = JSON.parse(frame.data);
      } catch (error) {
        return; // not JSON: not ours
      }
      if (opts.onEvent) opts.onEvent(data, frame);
    }

    function resumeUrl() {
      // A new EventSource sends no Last-Event-ID: say where to resume in the URL.
      if (lastId === null) return url;
      const next = new URL(url, window.location.href);
      next.searchParams.set("after", lastId);
      return next.pathname + next.search;
    }

    function connect() {
      source = new EventSource(resumeUrl());
      state("connecting");
      source.addEventListener("open", function () {
        delay = 1000;
        state("open");
      });
      source.addEventListener("error", function () {
        if (closed) return;
        if (source.readyState !== EventSource.CLOSED) {
          state("connecting"); // the browser retries by itself, with Last-Event-ID
          return;
        }
        // Refused (a 503 while the server starts, …): the browser gives up; we do not.
        state("connecting");
        window.setTimeout(function () { if (!closed) connect(); }, delay);
        delay = Math.min(delay * 2, 15000);
      });
      source.addEventListener("reset", function () {
        source.close();
        closed = true;
        state("reset");
        if (opts.onReset) opts.onReset();
        else window.location.reload();
      });
      kinds.forEach(function (kind) { source.addEventListener(kind, deliver); });
    }

    connect();
    return {
      close: function () {
        closed = true;
        source.close();
        state("closed");
      },
    };
  }

  window.AgentkeepLive = { listen: listen };
})();
