"""Stats: sessions, subagents, tool calls, failures, tokens and durations, grouped.

Read from the ``sessions`` table (its counters and token totals are kept by hooks and
importers, see capture.py), plus, for ``model``, the token usage of each message. Groupings:

- ``day``: the UTC day the session started (oldest first);
- ``agent``: the session's agent (by name);
- ``model``: the model of each response (tokens), and for the other figures
  ``sessions.model``, else the model most of the session's messages name;
- ``task``: the task the session worked on (sessions without one form one group).

Subagents. A subagent's session (one with a ``parent_id``) is not a session of its own
here: ``sessions`` counts top-level sessions, ``subagents`` the subagent sessions they
spawned. A subagent is grouped with its top-level session (its day, agent, task), except
by ``model``, where it goes by its own model. Its tool calls, failures and tokens count
(they are work done and paid for); its prompts and turns do not (its prompt was written by
the model, not the user), nor its duration (it ran inside its parent's).

Tokens by model. A session may switch models (``/model``): each response's usage is
filed under the model that response names; usage no message accounts for (reported by a
hook, say) goes to the session's model.

A session's duration is ``duration_ms`` when recorded, else ``ended_at - started_at``, else
(a session that never reported its end) ``last_seen_at - started_at``; sessions with
none of these count in ``sessions`` but not in the durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentkeep.errors import InvalidInput
from agentkeep.models import Record
from agentkeep.services.base import Service

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

TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
# Counted for top-level sessions only (what the user did, not what a subagent was told).
USER_COUNTERS = frozenset({"prompts", "turns"})

# The group of a session: r is its top-level session, c the session itself.
_KEY = {
    "day": "substr(r.started_at, 1, 10), NULL, NULL",
    "agent": "a.name, r.agent_id, NULL",
    "model": (
        "coalesce(c.model, (SELECT m.model FROM messages m WHERE m.session_id = c.id"
        " AND m.model IS NOT NULL GROUP BY m.model ORDER BY count(*) DESC, m.model"
        " LIMIT 1)), NULL, NULL"
    ),
    "task": "CAST(r.task_id AS TEXT), r.task_id, t.title",
}
# Each session with its top-level session (a subagent's parent's parent...).
_ROOTS = "SELECT id, id FROM sessions WHERE parent_id IS NULL"
_TREE = (
    f"WITH RECURSIVE tree (id, root) AS ({_ROOTS}"
    " UNION ALL SELECT s.id, tree.root FROM sessions s JOIN tree ON s.parent_id = tree.id) "
)


@dataclass(frozen=True)
class StatsRow(Record):
    """One group. ``key``: the day (YYYY-MM-DD), agent name, model, or task id (as text);
    None for sessions without one. ``id``: the agent's or task's id. ``title``: the
    task's title. ``sessions`` counts top-level sessions, ``subagents`` the subagent
    sessions grouped with them (module docstring). Durations are in milliseconds
    (``median_duration_ms`` is None when no session of the group has a duration)."""

    by: str
    key: str | None
    id: int | None
    title: str | None
    sessions: int
    subagents: int
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


class StatsService(Service):
    def stats(self, by: str = "day", since: str | None = None) -> list[StatsRow]:
        """Sessions grouped ``by`` day, agent, model or task; ``since`` (ISO time) keeps
        sessions started at or after it. Days come oldest first; other groups by number
        of sessions, most first."""
        if by not in GROUPINGS:
            raise InvalidInput(
                f"unknown grouping {by!r}", hint=f"use one of: {', '.join(GROUPINGS)}"
            )
        # With `since`, the walk starts from the top-level sessions started since (an index
        # seek), not from every session ever recorded; the WHERE below is then implied.
        tree = _TREE if since is None else _TREE.replace(_ROOTS, _ROOTS + " AND started_at >= ?")
        sql = (
            f"{tree}SELECT {_KEY[by]}, c.id, c.id = r.id, c.started_at, c.ended_at,"
            f" c.last_seen_at, c.duration_ms, {', '.join(f'c.{name}' for name in COUNTERS)}"
            " FROM tree JOIN sessions c ON c.id = tree.id JOIN sessions r ON r.id = tree.root"
            " LEFT JOIN agents a ON a.id = r.agent_id LEFT JOIN tasks t ON t.id = r.task_id"
        )
        params: list[Any] = []
        if since is not None:
            sql += " WHERE r.started_at >= ?"
            params += [since, since]
        by_message = self._tokens_by_model(since) if by == "model" else {}
        groups: dict[str | None, dict[str, Any]] = {}

        def group_of(key: str | None, ident: Any = None, title: Any = None) -> dict[str, Any]:
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    "id": ident,
                    "title": title,
                    "sessions": 0,
                    "subagents": 0,
                    "durations": [],
                    **dict.fromkeys(COUNTERS, 0),
                }
            return group

        for row in self._rows(sql, params):
            key, ident, title, session_id, top, started, ended, seen, duration = row[:9]
            values = dict(zip(COUNTERS, (v or 0 for v in row[9:]), strict=True))
            group = group_of(key, ident, title)
            group["sessions" if top else "subagents"] += 1
            for model, tokens in by_message.get(session_id, {}).items():
                other = group_of(model)
                for name, value in zip(TOKENS, tokens, strict=True):
                    other[name] += value
                    values[name] = max(0, values[name] - value)
            for name, value in values.items():
                if top or name not in USER_COUNTERS:
                    group[name] += value
            ms = _duration_ms(started, ended or seen, duration) if top else None
            if ms is not None:
                group["durations"].append(ms)
        rows = [
            StatsRow(
                by=by,
                key=key,
                id=group["id"],
                title=group["title"],
                sessions=group["sessions"],
                subagents=group["subagents"],
                **{name: group[name] for name in COUNTERS},
                duration_ms=sum(group["durations"]),
                median_duration_ms=(_median(group["durations"]) if group["durations"] else None),
            )
            for key, group in groups.items()
        ]
        if by == "day":
            rows.sort(key=lambda r: r.key or "")
        else:
            rows.sort(key=lambda r: (-r.sessions, -r.subagents, r.key is None, r.key or ""))
        return rows

    def _tokens_by_model(self, since: str | None) -> dict[int, dict[str, tuple[int, ...]]]:
        """session id -> model -> the usage of that session's responses from that model."""
        sql = (
            "SELECT m.session_id, m.model, sum(m.input_tokens), sum(m.output_tokens),"
            " sum(m.cache_read_tokens), sum(m.cache_write_tokens) FROM messages m"
            " WHERE m.model IS NOT NULL AND (m.input_tokens + m.output_tokens"
            " + m.cache_read_tokens + m.cache_write_tokens) > 0"
        )
        params: list[Any] = []
        if since is not None:
            sql += " AND m.session_id IN (SELECT id FROM sessions WHERE started_at >= ?)"
            params.append(since)
        found: dict[int, dict[str, tuple[int, ...]]] = {}
        for row in self._rows(sql + " GROUP BY m.session_id, m.model", params):
            found.setdefault(int(row[0]), {})[str(row[1])] = tuple(int(v or 0) for v in row[2:])
        return found


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


def _median(values: list[int]) -> int:
    # statistics (with fractions and decimal) costs ~10 ms to import: not on every command
    import statistics

    return int(statistics.median(values))
