// activity.js — the Activity view: choosing a day in the date picker shows that day;
// the arrow keys (outside form fields) go to the previous / next day.
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
