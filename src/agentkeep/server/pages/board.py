"""The Board view at ``/``: the tasks as a kanban board.

Columns are task statuses, named and ordered by the ``dashboard.columns`` setting (a status
not listed is not shown). A card shows a task's priority, labels, assignee, dependencies,
the assignee's worktree and branch, the sessions linked to the task and its latest handoff.
static/board.js moves cards (``PATCH /api/v1/tasks/{id}`` with the status, or ``POST
…/claim``) and keeps the board live: on each task event of ``/api/v1/events/stream`` it
fetches the card again from ``/board/cards/{id}`` (this module) and puts it in its column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import NotFound
from agentkeep.server.context import context
from agentkeep.server.dashboard import render

NAV: tuple[str, str] | None = ("/", "Board")
# Cards per column on one page; the rest is counted ("+N more"), not rendered.
COLUMN_LIMIT = 300
# Linked sessions shown on a card (newest first).
CARD_SESSIONS = 3


@dataclass(frozen=True)
class Column:
    status: str
    name: str
    cards: list[Card] = field(default_factory=list)
    more: int = 0


@dataclass(frozen=True)
class Card:
    """A task and what its card shows beside it."""

    task: Any
    worktree: Any = None
    sessions: list[Any] = field(default_factory=list)
    more_sessions: int = 0
    handoff: Any = None
    # The tasks it depends on: (id, status), status None if the task is gone.
    depends_on: list[tuple[int, str | None]] = field(default_factory=list)


def routes() -> list[BaseRoute]:
    return [
        Route("/", board, methods=["GET"]),
        Route("/board/cards/{task_id:int}", card, methods=["GET"]),
    ]


def columns(setting: str) -> list[tuple[str, str]]:
    """``[(status, name), ...]`` from the ``dashboard.columns`` setting's value."""
    found = []
    for part in setting.split(","):
        status, _, name = part.partition("=")
        found.append((status.strip(), name.strip()))
    return found


class _Lookup:
    """The agents' worktrees, read once per page."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.worktrees = {w.id: w for w in store.list_worktrees(status=None)}
        self.agent_worktree = {
            a.name: a.worktree_id for a in store.list_agents() if a.worktree_id is not None
        }
        self.leased = {w.lease_owner: w for w in self.worktrees.values() if w.lease_owner}
        self.statuses: dict[int, str | None] = {}  # task id -> status, as read

    def status_of(self, task_id: int) -> str | None:
        if task_id not in self.statuses:
            try:
                self.statuses[task_id] = self.store.get_task(task_id).status
            except NotFound:
                self.statuses[task_id] = None
        return self.statuses[task_id]

    def card(self, task: Any) -> Card:
        store = self.store
        worktree = None
        if task.assignee:
            worktree = self.worktrees.get(self.agent_worktree.get(task.assignee, -1))
            worktree = worktree or self.leased.get(task.assignee)
        sessions = store.list_sessions(task_id=task.id, limit=CARD_SESSIONS + 1)
        return Card(
            task=task,
            worktree=worktree,
            sessions=sessions[:CARD_SESSIONS],
            more_sessions=max(0, len(sessions) - CARD_SESSIONS),
            handoff=store.latest_note("handoff", task_id=task.id),
            depends_on=[(dep, self.status_of(dep)) for dep in task.depends_on],
        )


def board(request: Request) -> Response:
    store = context(request).store()
    last_seq = store.last_seq()
    lookup = _Lookup(store)
    shown = []
    for status, name in columns(store.config["dashboard.columns"]):
        tasks = store.list_tasks(status=status, limit=COLUMN_LIMIT + 1)
        lookup.statuses.update((task.id, task.status) for task in tasks)
        # Most urgent first (priority 0 is the highest), then the oldest.
        tasks.sort(key=lambda t: (t.priority, t.id))
        cards = [lookup.card(task) for task in tasks[:COLUMN_LIMIT]]
        more = len(tasks) - len(cards)
        shown.append(Column(status, name, cards, more))
    # The stream starts after the last event this page shows, so that nothing written
    # between rendering and connecting is missed.
    return render(request, "board.html", {"columns": shown, "last_seq": last_seq})


def card(request: Request) -> Response:
    """One card's HTML (``board_card.html``), as the board shows it; board.js swaps it in."""
    store = context(request).store()
    task = store.get_task(request.path_params["task_id"])  # NotFound -> 404
    names = dict(columns(store.config["dashboard.columns"]))
    response = render(
        request,
        "board_card.html",
        {"card": _Lookup(store).card(task), "shown": task.status in names},
    )
    response.headers["Cache-Control"] = "no-store"
    return response
