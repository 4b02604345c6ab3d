"""The one rule for when a session starts and ends and when its agent is active or done.

Both session writers follow it — the library (:class:`~agentkeep.services.sessions.SessionService`,
over a :class:`agentkeep._core.Tx`) and the capture writer (:class:`agentkeep.capture.Writer`, for
hooks and importers) — so a ``session.started`` or ``session.ended`` event has one payload
shape whoever wrote it, and an agent is set done by either.

The rule (docs/design.md, "Session lifecycle"):

- A session starts ``running``; its ``session.started`` event carries the session's row.
  Starting a session makes its agent ``active``.
- A session ends once (``ended``, ``failed`` or ``interrupted``): by its recorder (``run``),
  by the library, by an end marker the agent left (a ``SessionEnd`` hook, an OpenCode
  archive), or by the idle rule. Its running subagent sessions end with it.
- An agent whose sessions have all ended is ``done``.
- A session agentkeep only *observes* (created by a hook or an importer, no recorder pid)
  has no way to say it stopped when the agent was closed without a hook or crashed, and
  Claude Code and Codex write no end marker into their transcripts. Such a session with no
  activity for longer than ``sessions.idle_minutes`` is ended (reason ``idle``) at its
  last activity, and readers call it idle rather than running until a writer ends it.
- Activity in an ended observed session after its end (``claude --resume``, a new line in
  its transcript) resumes it: ``running`` again, ``session.resumed``, agent ``active``.

Standard library only: the hook's fast path imports this module.
"""

from __future__ import annotations

import json
import time

from agentkeep.timeutil import stamp

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable
    from typing import Any

    Emit = Callable[[str, int, str, dict[str, Any]], None]

DEFAULT_IDLE_MINUTES = 60  # config sessions.idle_minutes
# A writer that applies the idle rule while it holds the writer lock for something else
# (the hook, when it sees a new session) ends at most this many idle sessions at a time, so
# a store with thousands of stale sessions never holds the lock for long; import runs and
# Store.end_idle_sessions end all of them.
SWEEP_LIMIT = 20
ENDED = ("ended", "failed", "interrupted")

# A session agentkeep only observes: the capture writer made it (capture is its policy) and
# no recorder process vouches for it (run sessions carry the recorder's pid).
OBSERVED_SQL = "capture IS NOT NULL AND pid IS NULL"
# An observed running session with no activity since the cutoff (bound as a parameter).
IDLE_SQL = f"(status = 'running' AND {OBSERVED_SQL} AND coalesce(last_seen_at, started_at) < ?)"


def _seen_at(conn: Any) -> str:
    """``last_seen_at`` moved forward to the parameter (never back; its first value when
    unset): takes the parameter twice."""
    return conn.dialect.greatest("coalesce(last_seen_at, ?)", "?")  # type: ignore[no-any-return]


def idle_cutoff(idle_minutes: int, *, now: float | None = None) -> str:
    """The time before which an observed session's last activity makes it idle. With
    ``idle_minutes`` 0 (never idle) a time no session can be older than."""
    if idle_minutes <= 0:
        return ""
    return stamp((time.time() if now is None else now) - idle_minutes * 60)


def row_payload(conn: Any, table: str, row_id: int) -> dict[str, Any]:
    """The row ``row_id`` of ``table`` as an event payload (JSON columns decoded)."""
    cursor = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
    row = cursor.fetchone()
    names = [column[0] for column in cursor.description]
    payload = dict(zip(names, tuple(row), strict=True))
    if isinstance(payload.get("command"), str):
        payload["command"] = json.loads(payload["command"])
    return payload


def session_started(conn: Any, emit: Emit, session_id: int, *, now: str) -> None:
    """After a session's row was inserted: its ``session.started`` event (the row) and its
    agent active."""
    payload = row_payload(conn, "sessions", session_id)
    emit("session", session_id, "session.started", payload)
    if payload.get("agent_id") is not None:
        agent_active(conn, emit, int(payload["agent_id"]), now=now)


def session_ended(
    conn: Any,
    emit: Emit,
    session_id: int,
    *,
    status: str = "ended",
    at: str,
    now: str,
    reason: str | None = None,
    exit_code: int | None = None,
    signal: int | None = None,
    duration_ms: int | None = None,
    unsettled: dict[int, None] | None = None,
) -> bool:
    """End a running session at ``at``; False if it was not running (an ended session keeps
    its first end). Ends its running subagent sessions and settles their agents — or, with
    ``unsettled``, adds the agents to it (in order) for the caller to settle once each."""
    if status not in ENDED:
        raise ValueError(f"a session ends as ended, failed or interrupted, not {status!r}")
    cursor = conn.execute(
        "UPDATE sessions SET status = ?, ended_at = ?, exit_code = ?,"
        " signal = coalesce(?, signal), duration_ms = coalesce(?, duration_ms),"
        f" last_seen_at = {_seen_at(conn)} WHERE id = ? AND status = 'running'",
        (status, at, exit_code, signal, duration_ms, at, at, session_id),
    )
    if not cursor.rowcount:
        return False
    emit(
        "session",
        session_id,
        f"session.{status}",
        {
            "status": status,
            "ended_at": at,
            "exit_code": exit_code,
            "signal": signal,
            "duration_ms": duration_ms,
            "reason": reason,
        },
    )
    agents = {} if unsettled is None else unsettled
    children = conn.execute(
        "SELECT id FROM sessions WHERE parent_id = ? AND status = 'running'", (session_id,)
    ).fetchall()
    for (child,) in children:
        session_ended(
            conn,
            emit,
            int(child),
            at=at,
            now=now,
            reason=f"its parent session {session_id} ended",
            unsettled=agents,
        )
    agent = conn.execute("SELECT agent_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if agent is not None and agent[0] is not None:
        agents[int(agent[0])] = None
    if unsettled is None:
        for agent_id in agents:
            agent_settled(conn, emit, agent_id, now=now)
    return True


def session_resumed(conn: Any, emit: Emit, session_id: int, *, at: str, now: str) -> bool:
    """Activity at ``at`` in an observed session that ended before ``at``: running again.
    False (nothing changed) for a running session, a recorded run, or older activity."""
    row = conn.execute(
        "SELECT status, ended_at, agent_id, exit_code, signal FROM sessions"
        f" WHERE id = ? AND {OBSERVED_SQL}",
        (session_id,),
    ).fetchone()
    if row is None or row[0] == "running" or (row[1] is not None and row[1] >= at):
        return False
    # What the resume clears, kept in its event so history (and undo) can restore it: the
    # end's columns, and the reason its end event gave.
    ending = conn.execute(
        "SELECT data FROM events WHERE entity = 'session' AND entity_id = ?"
        " AND kind IN ('session.ended', 'session.failed', 'session.interrupted')"
        " ORDER BY seq DESC LIMIT 1",
        (session_id,),
    ).fetchone()
    try:
        reason = json.loads(ending[0]).get("reason") if ending is not None else None
    except (TypeError, ValueError, AttributeError):
        reason = None
    previous = {
        "status": row[0],
        "ended_at": row[1],
        "exit_code": row[3],
        "signal": row[4],
        "reason": reason,
    }
    conn.execute(
        "UPDATE sessions SET status = 'running', ended_at = NULL, exit_code = NULL,"
        f" signal = NULL, last_seen_at = {_seen_at(conn)} WHERE id = ?",
        (at, at, session_id),
    )
    emit(
        "session",
        session_id,
        "session.resumed",
        {"status": "running", "at": at, "previous": previous},
    )
    if row[2] is not None:
        agent_active(conn, emit, int(row[2]), now=now)
    return True


def end_idle_sessions(
    conn: Any,
    emit: Emit,
    *,
    idle_minutes: int,
    now: str,
    epoch: float | None = None,
    limit: int | None = None,
) -> list[int]:
    """End the observed sessions idle for longer than ``idle_minutes`` (0: never), at their
    last activity, oldest first and at most ``limit`` of them (None: all); their ids. Each
    agent is settled once, after its sessions ended (an index lookup each: sessions_agent)."""
    if idle_minutes <= 0 or (limit is not None and limit <= 0):
        return []
    rows = conn.execute(
        f"SELECT id, coalesce(last_seen_at, started_at) FROM sessions WHERE {IDLE_SQL}"
        " ORDER BY id" + ("" if limit is None else " LIMIT ?"),
        (idle_cutoff(idle_minutes, now=epoch), *([] if limit is None else [limit])),
    ).fetchall()
    ended = []
    agents: dict[int, None] = {}
    for session_id, last in rows:
        if session_ended(
            conn,
            emit,
            int(session_id),
            at=last,
            now=now,
            reason=f"idle: no activity for more than {idle_minutes} minutes",
            unsettled=agents,
        ):
            ended.append(int(session_id))
    for agent_id in agents:
        agent_settled(conn, emit, agent_id, now=now)
    return ended


# An agent none of whose sessions runs is done (now, agent id, agent id). "Does it still
# have a running session?" is an index lookup (sessions_agent), asked once per agent.
AGENT_DONE_SQL = (
    "UPDATE agents SET status = 'done', updated_at = ? WHERE id = ?"
    " AND status IN ('active', 'idle') AND NOT EXISTS"
    " (SELECT 1 FROM sessions WHERE agent_id = ? AND status = 'running')"
)


def agent_active(conn: Any, emit: Emit, agent_id: int, *, now: str) -> None:
    """A session of the agent started or resumed: the agent is active."""
    cursor = conn.execute(
        "UPDATE agents SET status = 'active', updated_at = ?, heartbeat_at = ?"
        " WHERE id = ? AND status != 'active'",
        (now, now, agent_id),
    )
    if cursor.rowcount:
        emit("agent", agent_id, "agent.updated", {"status": "active"})


def agent_settled(conn: Any, emit: Emit, agent_id: int, *, now: str) -> None:
    """A session of the agent ended: the agent is done once none of its sessions runs."""
    cursor = conn.execute(AGENT_DONE_SQL, (now, agent_id, agent_id))
    if cursor.rowcount:
        emit("agent", agent_id, "agent.updated", {"status": "done"})


# A task is ready when it is open and every task it depends on is done (`tasks ready`,
# `status`, `prime`); over the tasks table aliased ``t``.
TASK_READY_SQL = (
    "t.status = 'open' AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks b "
    "ON b.id = d.depends_on WHERE d.task_id = t.id AND b.status != 'done')"
)
READY_COUNT_SQL = f"SELECT count(*) FROM tasks t WHERE {TASK_READY_SQL}"

# What `status` counts (readers never call an idle session running). Each takes the cutoff.
RUNNING_SESSIONS_SQL = f"SELECT count(*) FROM sessions WHERE status = 'running' AND NOT {IDLE_SQL}"
IDLE_SESSIONS_SQL = f"SELECT count(*) FROM sessions WHERE {IDLE_SQL}"
# An agent's status as readers show it (one bound parameter: the cutoff): the stored one,
# except for an agent stored active none of whose sessions runs by the idle rule — shown
# idle while some of them are idle, done once all ended after it was last marked active
# (a store written before agents were settled). Writers make it done when they end those
# sessions; an agent marked active again after its sessions ended (`agents register`)
# stays active, and so does one without sessions.
AGENT_STATUS_SQL = (
    "(CASE WHEN agents.status != 'active' THEN agents.status ELSE (SELECT CASE max(CASE"
    f" WHEN status != 'running' THEN 0 WHEN {IDLE_SQL} THEN 1 ELSE 2 END)"
    " WHEN 1 THEN 'idle' WHEN 0 THEN"
    " (CASE WHEN max(ended_at) > agents.updated_at THEN 'done' ELSE 'active' END)"
    " ELSE 'active' END FROM sessions WHERE agent_id = agents.id) END)"
)
ACTIVE_AGENTS_SQL = (
    f"SELECT count(*) FROM agents WHERE status = 'active' AND {AGENT_STATUS_SQL} = 'active'"
)
