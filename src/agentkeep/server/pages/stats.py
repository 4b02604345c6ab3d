"""The Stats view: sessions, tool calls, failures and tokens by day, agent and model.

``/stats?since=`` (``7d``, ``2h`` or an ISO date, as ``agentkeep stats --since``;
everything by default). Days are a uPlot chart
(static/charts.js reads the series from a JSON data block: no inline script); agents and
models are tables with bars.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.timeutil import parse_since

NAV: tuple[str, str] | None = ("/stats", "Stats")
TOP = 25  # agents and models shown


def routes() -> list[BaseRoute]:
    return [Route("/stats", stats_page, methods=["GET"])]


def stats_page(request: Request) -> Response:
    # As /sessions and `agentkeep stats --since`: 7d, 2h or an ISO time; junk is a 400.
    since = parse_since(request.query_params.get("since", "").strip() or None)
    store = context(request).store()
    days = store.stats(by="day", since=since)
    agents = store.stats(by="agent", since=since)[:TOP]
    models = store.stats(by="model", since=since)[:TOP]
    series: dict[str, Any] = {
        "x": [row.key for row in days],
        "series": [
            {"label": "sessions", "values": [row.sessions for row in days]},
            {"label": "tool calls", "values": [row.tool_calls for row in days]},
            {"label": "failures", "values": [row.failures for row in days]},
        ],
    }
    tokens: dict[str, Any] = {
        "x": [row.key for row in days],
        "series": [
            {"label": "input tokens", "values": [row.input_tokens for row in days]},
            {"label": "output tokens", "values": [row.output_tokens for row in days]},
            {"label": "cache read", "values": [row.cache_read_tokens for row in days]},
        ],
    }
    totals = {
        "sessions": sum(row.sessions for row in days),
        "tool_calls": sum(row.tool_calls for row in days),
        "failures": sum(row.failures for row in days),
        "tokens": sum(row.input_tokens + row.output_tokens for row in days),
    }
    return render(
        request,
        "stats.html",
        {
            "since": since or "",  # ISO: the form's date input shows 7d's day
            "days": days,
            "agents": agents,
            "models": models,
            "counts_chart": series,
            "tokens_chart": tokens,
            "totals": totals,
            "max_agent": max((row.sessions for row in agents), default=0),
            "max_model": max((row.input_tokens + row.output_tokens for row in models), default=0),
        },
    )
