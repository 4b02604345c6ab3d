"""The Queues view: the work queues (``store.queues``) and their items, read from the
files that are their truth.

- ``/queues``: every queue with its counts by state and the age of its oldest ready item
  (a queue whose items wait is what a stalled worker looks like);
- ``/queues/{queue}``: its items, oldest first (ready, delayed, taken, failed, done; or one
  ``state``'s), each with its attempts, who holds it until when, and its body as text.

Reads only: items are put, taken, acked and nacked with the CLI, the API or MCP. Item
bodies are hostile text: they reach the page only through Jinja's autoescaping.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import InvalidInput
from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.services.queues import STATES, check_queue_name

NAV: tuple[str, str] | None = ("/queues", "Queues")
LIMIT = 500  # items a queue's page shows
PREVIEW = 400  # characters of a body shown


def routes() -> list[BaseRoute]:
    return [
        Route("/queues", queue_list, methods=["GET"]),
        Route("/queues/{queue}", queue_page, methods=["GET"]),
    ]


def queue_list(request: Request) -> Response:
    summaries = context(request).store().queues.list_queues()
    return render(request, "queues.html", {"queues": summaries})


def queue_page(request: Request) -> Response:
    queue = check_queue_name(request.path_params["queue"])
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {state[:40]!r}", hint=f"one of: {', '.join(STATES)}")
    queues = context(request).store().queues
    summary = queues.summary(queue)
    items = queues.items(queue, state=state, limit=LIMIT + 1)
    return render(
        request,
        "queue.html",
        {
            "summary": summary,
            "state": state or "",
            "states": STATES,
            "items": items[:LIMIT],
            "more": len(items) > LIMIT,
            "limit": LIMIT,
            "preview": PREVIEW,
        },
    )
