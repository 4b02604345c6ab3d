"""Sessions: one agent conversation or recorded run, with its status and token totals."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from agentkeep import lifecycle
from agentkeep._core import Json, Tx, check_identifier, limit_clause
from agentkeep.errors import Conflict, InvalidInput
from agentkeep.models import Session, Written
from agentkeep.paths import relative_to_root
from agentkeep.services.base import Service

if TYPE_CHECKING:
    from agentkeep.resume import ResumePlan

STATUSES = ("running", "ended", "failed", "interrupted")
# What `sessions list --status` accepts: the stored statuses, and idle (running sessions
# the idle rule calls idle; `--status running` leaves them out).
LIST_STATUSES = (*STATUSES, "idle")

# Whether agentkeep holds a session's history: transcript entries, hook captures or output.
DISPLAYABLE_SQL = (
    "(EXISTS (SELECT 1 FROM messages WHERE session_id = sessions.id)"
    " OR EXISTS (SELECT 1 FROM captures WHERE session_id = sessions.id)"
    " OR EXISTS (SELECT 1 FROM streams WHERE session_id = sessions.id))"
)
_SELECT = (
    f"SELECT sessions.*, {DISPLAYABLE_SQL} AS displayable, {lifecycle.IDLE_SQL} AS idle"
    " FROM sessions"
)


def _emitter(tx: Tx) -> lifecycle.Emit:
    def emit(entity: str, entity_id: int, kind: str, data: dict[str, Any]) -> None:
        tx.emit(entity, entity_id, kind, data)

    return emit


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class SessionService(Service):
    def start_session(
        self,
        *,
        source: str = "agentkeep",
        external_id: str | None = None,
        agent_id: int | None = None,
        task_id: int | None = None,
        model: str | None = None,
        cwd: str | None = None,
        title: str | None = None,
        command: list[str] | None = None,
        pid: int | None = None,
        host: str | None = None,
    ) -> Written[Session]:
        """Start (record) a session. ``(source, external_id)`` is a natural idempotency key:
        starting the same outside session twice returns the first row."""
        if not source.strip():
            raise InvalidInput("a session needs a source (for example 'claude' or 'run')")
        check_identifier("the external id", external_id)
        with self.transaction() as tx:
            if external_id is not None:
                row = tx.one(
                    "SELECT * FROM sessions WHERE source = ? AND external_id = ?",
                    (source, external_id),
                )
                if row is not None:
                    return Written(Session.from_row(row), "already_exists")
            self._require(agent_id=agent_id, task_id=task_id)
            session_id = tx.insert(
                "sessions",
                {
                    "source": source,
                    "external_id": external_id,
                    "agent_id": agent_id,
                    "task_id": task_id,
                    "model": model,
                    "cwd": relative_to_root(self.root, cwd) if cwd else None,
                    "title": title,
                    "command": None if command is None else Json(list(command)),
                    "pid": pid,
                    "host": host,
                    "status": "running",
                    "started_at": tx.now,
                },
            )
            lifecycle.session_started(tx.conn, _emitter(tx), session_id, now=tx.now)
            return Written(self.get_session(session_id), "created")

    def end_session(
        self,
        session_id: int,
        *,
        status: str = "ended",
        exit_code: int | None = None,
        signal: int | None = None,
        duration_ms: int | None = None,
        reason: str | None = None,
    ) -> Session:
        """Mark a running session ended, failed or interrupted. Its running subagent
        sessions end with it, and its agent is done once none of its sessions runs."""
        if status not in lifecycle.ENDED:
            raise InvalidInput(f"a session ends as ended, failed or interrupted, not {status!r}")
        with self.transaction() as tx:
            before = self.get_session(session_id)
            if not lifecycle.session_ended(
                tx.conn,
                _emitter(tx),
                session_id,
                status=status,
                at=tx.now,
                now=tx.now,
                reason=reason,
                exit_code=exit_code,
                signal=signal,
                duration_ms=duration_ms,
            ):
                raise Conflict(f"session {session_id} has already {before.status}")
            return self.get_session(session_id)

    def end_idle_sessions(self) -> list[int]:
        """End the sessions agentkeep only observes (hooks, importers) that had no
        activity for longer than ``sessions.idle_minutes``; the ids ended. Importers call
        it once a run is over; the hook when a new session starts."""
        minutes = int(self.config["sessions.idle_minutes"])
        if minutes <= 0 or not self.writable:
            return []
        cutoff = lifecycle.idle_cutoff(minutes)
        if not self._count(f"SELECT count(*) FROM sessions WHERE {lifecycle.IDLE_SQL}", (cutoff,)):
            return []  # the common case: no write transaction at all
        with self.transaction() as tx:
            return lifecycle.end_idle_sessions(
                tx.conn, _emitter(tx), idle_minutes=minutes, now=tx.now
            )

    def add_session_tokens(self, /, session_id: int, **tokens: int) -> Session:
        """Add to a session's token totals (``input_tokens=…, output_tokens=…``)."""
        if not tokens:
            raise InvalidInput(f"name at least one token counter: {', '.join(TOKEN_FIELDS)}")
        unknown = set(tokens) - set(TOKEN_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown token counter(s): {', '.join(sorted(unknown))}")
        for name, value in tokens.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name} must be a whole number ≥ 0")
        with self.transaction() as tx:
            self.get_session(session_id)
            sets = ", ".join(f"{name} = {name} + ?" for name in tokens)
            tx.execute(f"UPDATE sessions SET {sets} WHERE id = ?", [*tokens.values(), session_id])
            tx.emit("session", session_id, "session.tokens_added", dict(tokens))
            return self.get_session(session_id)

    def get_session(self, session_id: int, *, resumable: bool = False) -> Session:
        """One session, with ``displayable`` and ``idle`` computed (docs/json-output.md);
        with ``resumable``, whether its agent's own files still exist (looks at them)."""
        self._require(session_id=session_id)
        row = self._row(f"{_SELECT} WHERE id = ?", (self._idle_cutoff(), session_id))
        assert row is not None
        session = _session(row)
        return self._with_resumable(session) if resumable else session

    def imported_files(self, session_id: int) -> list[str]:
        """The agent files an importer read session ``session_id`` from: their keys (paths
        under the agent's home, as the import cursors hold them), sorted."""
        return [
            str(row[0])
            for row in self._rows(
                "SELECT file_key FROM import_cursors WHERE session_id = ?"
                " AND source = (SELECT source FROM sessions WHERE id = ?) ORDER BY file_key",
                (session_id, session_id),
            )
        ]

    def resume_plan(self, session_id: int) -> ResumePlan:
        """Whether session ``session_id`` can be resumed in its agent on this machine, with
        the agent's resume command and directory, or why not (:mod:`agentkeep.resume`)."""
        from agentkeep.resume import plan

        return plan(self, self.get_session(session_id))

    def _with_resumable(self, session: Session, lookup: Any = None) -> Session:
        from agentkeep.resume import plan

        return dataclasses.replace(session, resumable=plan(self, session, lookup).resumable)

    def _idle_cutoff(self) -> str:
        return lifecycle.idle_cutoff(int(self.config["sessions.idle_minutes"]))

    def list_sessions(
        self,
        *,
        status: str | None = None,
        agent_id: int | None = None,
        task_id: int | None = None,
        source: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        resumable: bool = False,
        before_id: int | None = None,
    ) -> list[Session]:
        """Sessions, newest first. ``status`` 'running' leaves out idle sessions, 'idle'
        lists only them; ``since`` (ISO UTC) keeps sessions started at or after it. With
        ``resumable``, each says whether its agent's files still exist (looks at them).
        ``before_id``: only sessions older than that one (keyset paging)."""
        cutoff = self._idle_cutoff()
        where: list[str] = []
        params: list[Any] = [cutoff]
        if status is not None:
            if status not in LIST_STATUSES:
                raise InvalidInput(
                    f"unknown session status {status!r}",
                    hint=f"use one of: {', '.join(LIST_STATUSES)}",
                )
            if status == "idle":
                where.append(lifecycle.IDLE_SQL)
                params.append(cutoff)
            else:
                where.append("status = ?")
                params.append(status)
            if status == "running":
                where.append(f"NOT {lifecycle.IDLE_SQL}")
                params.append(cutoff)
        for column, value in (("agent_id", agent_id), ("task_id", task_id), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" + limit_clause(limit)
        found = [_session(row) for row in self._rows(sql, params)]
        if not resumable:
            return found
        from agentkeep.resume import Lookup

        lookup = Lookup()  # each agent directory listed once for the whole page
        return [self._with_resumable(s, lookup) for s in found]


def _session(row: Any) -> Session:
    values = dict(row)
    values["displayable"] = bool(values["displayable"])
    values["idle"] = bool(values["idle"])
    return Session.from_row(values)  # type: ignore[arg-type,no-any-return]
