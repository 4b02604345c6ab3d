"""Sessions: one agent conversation or recorded run, with its status and token totals."""

from __future__ import annotations

from typing import Any

from agentkeep._core import Json, StoreBase, check_identifier, limit_clause
from agentkeep.errors import Conflict, InvalidInput
from agentkeep.models import Session, Written
from agentkeep.paths import relative_to_root

STATUSES = ("running", "ended", "failed", "interrupted")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class SessionOps(StoreBase):
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
            session = self.get_session(session_id)
            tx.emit("session", session_id, "session.started", session.to_dict())
            return Written(session, "created")

    def end_session(
        self,
        session_id: int,
        *,
        status: str = "ended",
        exit_code: int | None = None,
        signal: int | None = None,
        duration_ms: int | None = None,
    ) -> Session:
        """Mark a running session ended, failed or interrupted."""
        if status not in STATUSES or status == "running":
            raise InvalidInput(f"a session ends as ended, failed or interrupted, not {status!r}")
        with self.transaction() as tx:
            before = self.get_session(session_id)
            if before.status != "running":
                raise Conflict(f"session {session_id} has already {before.status}")
            changes: dict[str, Any] = {"status": status, "exit_code": exit_code, "ended_at": tx.now}
            if signal is not None:
                changes["signal"] = signal
            if duration_ms is not None:
                changes["duration_ms"] = duration_ms
            tx.update("sessions", session_id, changes)
            tx.emit("session", session_id, f"session.{status}", changes)
            return self.get_session(session_id)

    def add_session_tokens(self, session_id: int, **tokens: int) -> Session:
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

    def get_session(self, session_id: int) -> Session:
        return Session.from_row(self._record("session", session_id))  # type: ignore[no-any-return]

    def list_sessions(
        self,
        *,
        status: str | None = None,
        agent_id: int | None = None,
        task_id: int | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        """Sessions, newest first."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(
                    f"unknown session status {status!r}", hint=f"use one of: {', '.join(STATUSES)}"
                )
            where.append("status = ?")
            params.append(status)
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" + limit_clause(limit)
        return [Session.from_row(row) for row in self._rows(sql, params)]
