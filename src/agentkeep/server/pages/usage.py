"""The Usage & retention view: where the store's bytes are (by area, kind, day and
session), pins, and the background operations of server/operations.py — the gc dry run
and its confirmed apply, backup, export download and bundle import, with progress
(static/usage.js drives them through ``/api/v1/operations``).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import NotFound
from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.server.operations import registry

NAV: tuple[str, str] | None = ("/usage", "Usage")
SESSIONS = 25  # the largest sessions listed
_SESSION_KEY = re.compile(r"session (\d+)")


def routes() -> list[BaseRoute]:
    return [Route("/usage", usage_page, methods=["GET"])]


def usage_page(request: Request) -> Response:
    from agentkeep.ops import retention

    store = context(request).store()
    overall = retention.usage(store, by="kind")
    days = retention.usage(store, by="day").groups
    sessions: list[dict[str, Any]] = []
    for group in retention.usage(store, by="session").groups[:SESSIONS]:
        matched = _SESSION_KEY.fullmatch(group.key)
        session = None
        if matched:
            try:
                session = store.get_session(int(matched.group(1)))
            except NotFound:  # deleted since the usage was read
                session = None
        sessions.append({"group": group, "session": session})
    by_day = sorted(days, key=lambda group: group.key)
    chart = {
        "x": [group.key for group in by_day],
        "series": [
            {"label": "streams", "values": [group.streams for group in by_day]},
            {"label": "artifacts", "values": [group.artifacts for group in by_day]},
        ],
        "bytes": True,
    }
    return render(
        request,
        "usage.html",
        {
            "usage": overall,
            "kinds": overall.groups,
            "max_kind": max((group.bytes for group in overall.groups), default=0),
            "max_area": max((area.bytes for area in overall.areas), default=0),
            "sessions": sessions,
            "day_chart": chart,
            "human": retention.human_bytes,
            "policies": list(retention.policies(store.config).values()),
            "operations": registry(request).list()[:10],
        },
    )
