/* sessions.js: the transcript viewer's "unfold all" / "fold all" buttons (the tool calls,
 * thinking and subagents are <details>, folded by default; without this script they still
 * open one by one). */
(function () {
  "use strict";
  const bar = document.getElementById("fold-bar");
  if (!bar) return;
  bar.hidden = false;
  bar.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-fold]");
    if (!button) return;
    const open = button.dataset.fold === "open";
    document.querySelectorAll(".transcript details").forEach(function (details) {
      details.open = open;
    });
  });
})();
