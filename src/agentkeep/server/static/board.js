/* board.js: the kanban board at /. Drag a card to another column: PATCH its status (a
 * compare-and-set on the status it had); the Claim form: POST …/claim. A refused move (409
 * conflict, a transition the store forbids) puts the card back and says why on it. Task
 * events from the live stream (live.js) re-fetch the changed card's HTML from
 * /board/cards/{id} (server-rendered, escaped) and put it in its column; a note written
 * for a task on the board (a handoff) re-fetches that card only.
 */
(function () {
  "use strict";
  const board = document.getElementById("board");
  if (!board) return;
  const TASK_KINDS = [
    "task.created", "task.updated", "task.claimed",
    "task.dependency_added", "task.dependency_removed",
    "note.created",
  ];
  const JSON_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "X-Agentkeep-CSRF": "1",
  };

  async function api(method, path, body) {
    const response = await fetch(path, {
      method: method,
      headers: JSON_HEADERS,
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error : response.status + " " + response.statusText;
      const failure = new Error(data && data.hint ? message + " (" + data.hint + ")" : message);
      failure.status = response.status;
      throw failure;
    }
    return data;
  }

  function column(status) {
    return board.querySelector('.cards[data-status="' + CSS.escape(status) + '"]');
  }

  function counts() {
    board.querySelectorAll(".column").forEach(function (section) {
      section.querySelector(".count").textContent = section.querySelectorAll(".cards > .card").length;
    });
  }

  function showError(card, message) {
    const line = card.querySelector(".card-error");
    if (line) {
      line.textContent = message;
      line.hidden = false;
    }
    card.classList.add("has-error");
  }

  function place(card, list) {
    // Keep a column's order: priority, then id (as the server renders it).
    const key = [Number(card.dataset.priority), Number(card.dataset.taskId)];
    const after = Array.from(list.children).find(function (other) {
      const theirs = [Number(other.dataset.priority), Number(other.dataset.taskId)];
      return theirs[0] > key[0] || (theirs[0] === key[0] && theirs[1] > key[1]);
    });
    list.insertBefore(card, after || null);
  }

  // Refreshes of one card may overlap and their answers arrive in any order: only the
  // latest one asked for is applied, so an older state never overwrites a newer one.
  const asked = new Map();

  async function refresh(taskId) {
    const key = String(taskId);
    const mine = (asked.get(key) || 0) + 1;
    asked.set(key, mine);
    const response = await fetch("/board/cards/" + encodeURIComponent(taskId), {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
    });
    const html = response.ok ? await response.text() : "";
    if (asked.get(key) !== mine) return; // a later refresh of this card was asked for
    const old = document.getElementById("task-" + taskId);
    if (response.status === 404) {
      if (old) old.remove();
      counts();
      return;
    }
    if (!response.ok) return;
    // A <template>'s content is inert (no script runs, no image loads) and the fragment
    // is autoescaped by the server: stored text stays text.
    const template = document.createElement("template");
    template.innerHTML = html;
    const fresh = template.content.querySelector("article.card");
    if (!fresh) return;
    const target = fresh.dataset.shown === "1" ? column(fresh.dataset.status) : null;
    const focused = old !== null && old === document.activeElement;
    if (!target) {
      if (old) old.remove();
    } else if (old && old.parentElement === target) {
      old.replaceWith(fresh);
    } else {
      if (old) old.remove();
      place(fresh, target);
    }
    if (focused && fresh.isConnected) fresh.focus(); // a keyboard user keeps their place
    counts();
  }

  function moveBack(event) {
    const from = event.from;
    from.insertBefore(event.item, from.children[event.oldIndex] || null);
    counts();
  }

  board.querySelectorAll(".cards").forEach(function (list) {
    window.Sortable.create(list, {
      group: "board",
      animation: 120,
      forceFallback: true, // mouse events, not HTML5 drag and drop: the same in every browser
      filter: "input, button, a, summary",
      preventOnFilter: false,
      onEnd: function (event) {
        if (event.from === event.to) return;
        const card = event.item;
        const id = card.dataset.taskId;
        card.classList.add("pending");
        api("PATCH", "/api/v1/tasks/" + encodeURIComponent(id), {
          status: event.to.dataset.status,
          expect_status: event.from.dataset.status,
        }).then(function () {
          return refresh(id);
        }).catch(function (error) {
          moveBack(event);
          card.classList.remove("pending");
          showError(card, error.message);
          // A conflict: this board was stale. Show the task as it is now, still saying why.
          if (error.status === 409) {
            refresh(id).then(function () {
              const now = document.getElementById("task-" + id);
              if (now) showError(now, error.message);
            }).catch(function () {});
          }
        });
        counts();
      },
    });
  });

  // The keyboard: a card is focusable (Tab); the arrow keys left and right move the focused
  // card to the column beside it, with the same PATCH as a drag.
  function announce(message) {
    const line = document.getElementById("board-announce");
    if (line) line.textContent = message;
  }

  board.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const card = event.target;
    if (!card.matches || !card.matches("article.card") || card.classList.contains("pending")) return;
    const lists = Array.from(board.querySelectorAll(".cards"));
    const from = card.parentElement;
    const to = lists[lists.indexOf(from) + (event.key === "ArrowLeft" ? -1 : 1)];
    event.preventDefault();
    if (!to) return;
    const id = card.dataset.taskId;
    const name = function (list) { return list.closest(".column").getAttribute("aria-label"); };
    place(card, to);
    card.focus();
    card.classList.add("pending");
    counts();
    api("PATCH", "/api/v1/tasks/" + encodeURIComponent(id), {
      status: to.dataset.status,
      expect_status: from.dataset.status,
    }).then(function () {
      announce("#" + id + " moved to " + name(to));
      return refresh(id);
    }).catch(function (error) {
      place(card, from);
      card.focus();
      card.classList.remove("pending");
      counts();
      showError(card, error.message);
      announce("#" + id + " not moved: " + error.message);
      if (error.status === 409) {
        refresh(id).then(function () {
          const now = document.getElementById("task-" + id);
          if (now) showError(now, error.message);
        }).catch(function () {});
      }
    });
  });

  board.addEventListener("submit", function (event) {
    const form = event.target.closest("form.claim");
    if (!form) return;
    event.preventDefault();
    const card = form.closest(".card");
    const assignee = form.elements.assignee.value.trim();
    if (!assignee) return;
    api("POST", "/api/v1/tasks/" + encodeURIComponent(card.dataset.taskId) + "/claim", {
      assignee: assignee,
    }).then(function () {
      return refresh(card.dataset.taskId);
    }).catch(function (error) {
      showError(card, error.message);
      if (error.status === 409) {
        refresh(card.dataset.taskId).then(function () {
          const now = document.getElementById("task-" + card.dataset.taskId);
          if (now) showError(now, error.message);
        }).catch(function () {});
      }
    });
  });

  const state = document.getElementById("live-state");
  window.AgentkeepLive.listen(board.dataset.stream, {
    kinds: TASK_KINDS,
    onEvent: function (event) {
      if (event.entity === "note") {
        // A note for a task whose card is here (its latest handoff may have changed);
        // notes of other tasks, sessions or nothing cost no fetch.
        const taskId = event.data ? event.data.task_id : null;
        if (taskId != null && document.getElementById("task-" + Number(taskId))) {
          refresh(Number(taskId));
        }
        return;
      }
      if (event.entity !== "task" || event.entity_id == null) return;
      refresh(event.entity_id);
      // The cards that wait for it show its status too.
      board.querySelectorAll('a.dep[href="#task-' + Number(event.entity_id) + '"]').forEach(function (link) {
        const waiting = link.closest(".card");
        if (waiting) refresh(waiting.dataset.taskId);
      });
    },
    onState: function (value) {
      if (state) state.textContent = value === "open" ? "live" : value;
    },
  });
})();
