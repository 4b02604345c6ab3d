"""The Live view: the sessions running now, each with its output following as it is
written.

The page renders each session's last lines; static/live-tail.js then follows the
session's SSE log tail (``/api/v1/sessions/{id}/follow``, server/live.py), skipping the
lines already shown (by stream and line number), and marks the session ended on the
tail's ``end`` event.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.server.context import context
from agentkeep.server.dashboard import render

NAV: tuple[str, str] | None = ("/live", "Live")
SESSIONS = 20  # running sessions shown (newest first)
LINES = 40  # lines of each shown when the page renders


def routes() -> list[BaseRoute]:
    return [Route("/live", live_page, methods=["GET"])]


def live_page(request: Request) -> Response:
    store = context(request).store()
    # Read first: a session started after it is in the event stream the page resumes from.
    after = store.last_seq()
    running = store.list_sessions(status="running", limit=SESSIONS + 1)
    shown: list[dict[str, Any]] = []
    for session in running[:SESSIONS]:
        lines = store.session_lines(session.id, last=LINES)
        shown.append({"session": session, "lines": lines})
    return render(
        request,
        "live.html",
        {"sessions": shown, "more": len(running) > SESSIONS, "lines": LINES, "after": after},
    )
