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
 * Last-Event-ID, so the server resumes with no gap and no duplicate. The current state is
 * also written to <html data-live="…"> (tests and styles can wait on it).
 */
(function () {
  "use strict";

  function listen(url, options) {
    const opts = options || {};
    const kinds = opts.kinds && opts.kinds.length ? opts.kinds : ["message"];
    const source = new EventSource(url);
    let closed = false;

    function state(value) {
      document.documentElement.dataset.live = value;
      if (opts.onState) opts.onState(value);
    }

    function deliver(frame) {
      let data = null;
      try {
        data = JSON.parse(frame.data);
      } catch (error) {
        return; // not JSON: not ours
      }
      if (opts.onEvent) opts.onEvent(data, frame);
    }

    state("connecting");
    source.addEventListener("open", function () { state("open"); });
    source.addEventListener("error", function () {
      if (!closed) state(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
    });
    source.addEventListener("reset", function () {
      source.close();
      state("reset");
      if (opts.onReset) opts.onReset();
      else window.location.reload();
    });
    kinds.forEach(function (kind) { source.addEventListener(kind, deliver); });

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
