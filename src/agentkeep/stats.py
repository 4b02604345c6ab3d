"""Stats: sessions, tool calls, failures, tokens and durations, grouped.

Read from the ``sessions`` table alone (its counters and token totals are kept by hooks
and importers, see capture.py), so the cost is one pass over the sessions, not over their
messages. Groupings:

- ``day``: the UTC day the session started (oldest first);
- ``agent``: the session's agent (by name);
- ``model``: ``sessions.model``, else the model most of the session's messages name;
- ``task``: the task the session worked on (sessions without one form one group).

A session's duration is ``duration_ms`` when recorded, else ``ended_at - started_at``, else
(a session that never reported its end) ``last_seen_at - started_at``; sessions with
none of these count in ``sessions`` but not in the durations.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentkeep._core import StoreBase
from agentkeep.errors import InvalidInput
from agentkeep.models import Record

GROUPINGS = ("day", "agent", "model", "task")
COUNTERS = (
    "prompts",
    "tool_calls",
    "failures",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)

_KEY = {
    "day": "substr(s.started_at, 1, 10), NULL, NULL",
    "agent": "a.name, s.agent_id, NULL",
    "model": (
        "coalesce(s.model, (SELECT m.model FROM messages m WHERE m.session_id = s.id"
        " AND m.model IS NOT NULL GROUP BY m.model ORDER BY count(*) DESC, m.model"
        " LIMIT 1)), NULL, NULL"
    ),
    "task": "CAST(s.task_id AS TEXT), s.task_id, t.title",
}


@dataclass(frozen=True)
class StatsRow(Record):
    """One group. ``key``: the day (YYYY-MM-DD), agent name, model, or task id (as text);
    None for sessions without one. ``id``: the agent's or task's id. ``title``: the
    task's title. Durations are in milliseconds (``median_duration_ms`` is None when no
    session of the group has a duration)."""

    by: str
    key: str | None
    id: int | None
    title: str | None
    sessions: int
    prompts: int
    tool_calls: int
    failures: int
    turns: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    duration_ms: int
    median_duration_ms: int | None


class StatsOps(StoreBase):
    def stats(self, by: str = "day", since: str | None = None) -> list[StatsRow]:
        """Sessions grouped ``by`` day, agent, model or task; ``since`` (ISO time) keeps
        sessions started at or after it. Days come oldest first; other groups by number
        of sessions, most first."""
        if by not in GROUPINGS:
            raise InvalidInput(
                f"unknown grouping {by!r}", hint=f"use one of: {', '.join(GROUPINGS)}"
            )
        sql = (
            f"SELECT {_KEY[by]}, s.started_at, s.ended_at, s.last_seen_at, s.duration_ms,"
            f" {', '.join(f's.{name}' for name in COUNTERS)}"
            " FROM sessions s LEFT JOIN agents a ON a.id = s.agent_id"
            " LEFT JOIN tasks t ON t.id = s.task_id"
        )
        params: list[Any] = []
        if since is not None:
            sql += " WHERE s.started_at >= ?"
            params.append(since)
        groups: dict[str | None, dict[str, Any]] = {}
        for row in self._rows(sql, params):
            key, ident, title, started, ended, seen, duration = row[:7]
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    "id": ident,
                    "title": title,
                    "sessions": 0,
                    "durations": [],
                    **dict.fromkeys(COUNTERS, 0),
                }
            group["sessions"] += 1
            for name, value in zip(COUNTERS, row[7:], strict=True):
                group[name] += value or 0
            ms = _duration_ms(started, ended or seen, duration)
            if ms is not None:
                group["durations"].append(ms)
        rows = [
            StatsRow(
                by=by,
                key=key,
                id=group["id"],
                title=group["title"],
                sessions=group["sessions"],
                **{name: group[name] for name in COUNTERS},
                duration_ms=sum(group["durations"]),
                median_duration_ms=(
                    int(statistics.median(group["durations"])) if group["durations"] else None
                ),
            )
            for key, group in groups.items()
        ]
        if by == "day":
            rows.sort(key=lambda r: r.key or "")
        else:
            rows.sort(key=lambda r: (-r.sessions, r.key is None, r.key or ""))
        return rows


def _duration_ms(started: str | None, ended: str | None, recorded: int | None) -> int | None:
    if recorded is not None:
        return int(recorded)
    if not started or not ended:
        return None
    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, round((end - start).total_seconds() * 1000))
