// activity.js — the Activity view: choosing a day in the date picker shows that day;
// the arrow keys (outside form fields) go to the previous / next day. Today's timeline is
// live (live.js): each event committed after the page was rendered is added to its hour,
// built with textContent (stored text stays text).
"use strict";
(function () {
  var form = document.querySelector("form.day-picker");
  if (!form) { return; }
  var picker = form.querySelector("input[type=date]");
  picker.addEventListener("change", function () { if (picker.value) { form.submit(); } });
  document.addEventListener("keydown", function (event) {
    if (event.target.closest && event.target.closest("input, select, textarea")) { return; }
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var link = null;
    if (event.key === "ArrowLeft") { link = form.querySelector("a[rel=prev]"); }
    if (event.key === "ArrowRight") { link = form.querySelector("a[rel=next]"); }
    if (link) { window.location.assign(link.href); }
  });
})();

(function () {
  var timeline = document.querySelector("ol.timeline[data-stream]");
  if (!timeline || !window.AgentkeepLive) { return; }
  var day = timeline.dataset.day;
  var pages = JSON.parse(timeline.dataset.pages);
  var counter = document.getElementById("event-count");
  var state = document.getElementById("live-state");

  function text(tag, className, value) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    node.textContent = value;
    return node;
  }

  function hourList(hour) {
    var found = null;
    timeline.querySelectorAll("li.hour").forEach(function (item) {
      if (item.dataset.hour === hour) {
        found = item;
      }
    });
    if (!found) {
      found = document.createElement("li");
      found.className = "hour";
      found.dataset.hour = hour;
      found.appendChild(text("h2", "", hour + ":00"));
      found.appendChild(document.createElement("ul"));
      timeline.appendChild(found); // events come in sequence order: a new hour is the last
    }
    return found.querySelector("ul");
  }

  function row(event) {
    var item = document.createElement("li");
    item.className = "event new";
    item.dataset.seq = String(event.seq);
    var time = text("time", "", String(event.at).slice(11, 19));
    time.setAttribute("datetime", event.at);
    item.appendChild(time);
    item.appendChild(text("span", "kind", event.kind));
    var label = event.entity + (event.entity_id === null ? "" : " " + event.entity_id);
    var page = Object.prototype.hasOwnProperty.call(pages, event.entity) ? pages[event.entity] : null;
    if (page && event.entity_id !== null) {
      var link = text("a", "", label);
      link.href = page.replace("{id}", String(Math.trunc(Number(event.entity_id))));
      item.appendChild(link);
    } else {
      item.appendChild(text("span", "", label));
    }
    item.appendChild(text("span", "muted", "by " + event.actor));
    return item;
  }

  window.AgentkeepLive.listen(timeline.dataset.stream, {
    onEvent: function (event) {
      if (!event || typeof event.at !== "string" || event.at.slice(0, 10) !== day) { return; }
      if (timeline.querySelector('li.event[data-seq="' + Number(event.seq) + '"]')) { return; }
      hourList(event.at.slice(11, 13)).appendChild(row(event));
      var empty = document.querySelector("p.empty");
      if (empty) { empty.remove(); }
      var count = timeline.querySelectorAll("li.event").length;
      if (counter) { counter.textContent = count + (count === 1 ? " event" : " events"); }
    },
    onState: function (value) {
      if (state) { state.textContent = value === "open" ? "live" : value; }
    },
  });
})();
