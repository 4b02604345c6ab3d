"""The Activity view: the event ledger of one day (UTC) as a timeline, grouped by hour.

``/activity?day=YYYY-MM-DD`` (today by default); previous/next day links and a date
picker. Each event links to its entity (:func:`entity_url`). A day shows at most
``DAY_LIMIT`` events (the page says when there were more). Today's page is live:
static/activity.js follows ``/api/v1/events/stream?unnamed=1`` (every kind) from the last
event the page shows and adds each new one of the day to its hour as it is committed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import InvalidInput
from agentkeep.server.context import context
from agentkeep.server.dashboard import render

NAV: tuple[str, str] | None = ("/activity", "Activity")
DAY_LIMIT = 2000

# Where a person looks at each kind of entity: a dashboard page when there is one, else
# the record's JSON (served as JSON, never as HTML).
_PAGES = {
    "session": "/sessions/{id}",
    "task": "/api/v1/tasks/{id}",
    "note": "/api/v1/notes/{id}",
    "artifact": "/api/v1/artifacts/{id}",
    "agent": "/fleet#agent-{id}",
    "worktree": "/fleet#worktree-{id}",
    "stream": "/api/v1/streams/{id}/log",
}


def entity_url(entity: str | None, entity_id: int | None) -> str | None:
    """The page of an entity, or None when it has none (a custom event's entity)."""
    if entity is None or entity_id is None or entity not in _PAGES:
        return None
    return _PAGES[entity].format(id=int(entity_id))


def routes() -> list[BaseRoute]:
    return [Route("/activity", activity_page, methods=["GET"])]


def _day(text: str | None) -> date:
    if not text:
        return datetime.now(UTC).date()
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a day", hint="use YYYY-MM-DD") from exc
    if not date.min < day < date.max:  # the day before or after must exist too
        raise InvalidInput(f"{text!r} is out of range", hint="use a day between 0001 and 9999")
    return day


def activity_page(request: Request) -> Response:
    day = _day(request.query_params.get("day"))
    start, end = f"{day.isoformat()}T00:00:00", f"{(day + timedelta(days=1)).isoformat()}T00:00:00"
    store = context(request).store()
    # The page shows the ledger up to here; the live stream (today) goes on from it.
    last_seq = store.last_seq()
    # Events come in sequence order from the first one at or after the day's start; the
    # ones of later days end the day (their times only grow with the sequence, near enough).
    found = store.events(since=start, limit=DAY_LIMIT + 1)
    events = [event for event in found if event.at < end and event.seq <= last_seq]
    more = len(events) > DAY_LIMIT
    events = events[:DAY_LIMIT]
    hours: list[dict[str, Any]] = []
    for hour, group in groupby(events, key=lambda event: event.at[11:13]):
        rows = [
            {"event": event, "url": entity_url(event.entity, event.entity_id)} for event in group
        ]
        hours.append({"hour": hour, "rows": rows})
    today = datetime.now(UTC).date()
    return render(
        request,
        "activity.html",
        {
            "day": day.isoformat(),
            "previous": (day - timedelta(days=1)).isoformat(),
            "next": (day + timedelta(days=1)).isoformat() if day < today else None,
            "today": today.isoformat(),
            "hours": hours,
            "count": len(events),
            "more": more,
            # Today's page follows new events (a full day's page would grow past its limit).
            "stream": (
                f"/api/v1/events/stream?unnamed=1&after={last_seq}"
                if day == today and not more
                else None
            ),
            "pages": json.dumps(_PAGES),
        },
    )
