"""Notes: what agents leave for each other and for people — handoffs, decisions, next
actions, validation results, pointers to PRs and issues, health findings, facts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentkeep._core import Json, limit_clause
from agentkeep.errors import InvalidInput
from agentkeep.models import Note, Written
from agentkeep.services.base import Service

KINDS = ("handoff", "decision", "next_action", "validation", "pointer", "health", "fact")

# Fields each kind carries in `data`: (required, optional).
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "handoff": ((), ()),
    "decision": ((), ()),
    "next_action": ((), ()),
    "fact": ((), ()),
    "validation": (("command",), ("exit_code", "summary")),
    "pointer": (("url",), ("ref",)),
    "health": (("subject", "status"), ("detail",)),
}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)
POINTER_REFS = ("repo", "fork", "pr", "issue", "commit", "doc", "other")


def check_note(kind: str, body: str, data: Mapping[str, Any]) -> dict[str, Any]:
    check_note_kind(kind)
    if not isinstance(data, Mapping):
        raise InvalidInput("note data must be a JSON object")
    required, _optional = KIND_FIELDS[kind]
    missing = [name for name in required if data.get(name) in (None, "")]
    if missing:
        raise InvalidInput(
            f"a {kind} note needs {', '.join(missing)}",
            hint=f"`agentkeep notes add {kind} --help` shows the fields",
        )
    if kind in ("handoff", "decision", "next_action", "fact") and not body.strip():
        raise InvalidInput(f"a {kind} note needs text")
    out = dict(data)
    if kind == "validation" and out.get("exit_code") is not None:
        try:
            out["exit_code"] = int(out["exit_code"])
        except (TypeError, ValueError) as exc:
            raise InvalidInput("a validation note's exit_code must be a whole number") from exc
    if kind == "pointer":
        if not _URL.match(str(out["url"])):
            raise InvalidInput(f"pointer url must be a URL like https://…, not {out['url']!r}")
        if out.get("ref") is not None and out["ref"] not in POINTER_REFS:
            raise InvalidInput(f"pointer ref must be one of {', '.join(POINTER_REFS)}")
    return out


class NoteService(Service):
    def add_note(
        self,
        kind: str,
        body: str = "",
        *,
        data: Mapping[str, Any] | None = None,
        task_id: int | None = None,
        session_id: int | None = None,
        agent_id: int | None = None,
        author: str | None = None,
        idempotency_key: str | None = None,
    ) -> Written[Note]:
        """Record a note. ``data`` holds the kind's fields (see :data:`KIND_FIELDS`)."""
        clean = check_note(kind, body, data or {})
        with self.transaction() as tx:
            existing = tx.existing_for_key(idempotency_key, "note")
            if existing is not None:
                return Written(self.get_note(existing), "already_exists")
            self._require(task_id=task_id, session_id=session_id, agent_id=agent_id)
            note_id = tx.insert(
                "notes",
                {
                    "kind": kind,
                    "body": body,
                    "data": Json(clean),
                    "task_id": task_id,
                    "session_id": session_id,
                    "agent_id": agent_id,
                    "author": author or tx.actor,
                    "created_at": tx.now,
                },
            )
            tx.remember_key(idempotency_key, "note", note_id)
            note: Note = Note.from_row(tx.row("notes", note_id))
            tx.emit("note", note_id, "note.created", note.to_dict())
            return Written(note, "created")

    def get_note(self, note_id: int) -> Note:
        return Note.from_row(self._record("note", note_id))  # type: ignore[no-any-return]

    def list_notes(
        self,
        *,
        kind: str | None = None,
        task_id: int | None = None,
        session_id: int | None = None,
        agent_id: int | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Note]:
        """Notes, newest first. ``before_id``: only notes older than that one (keyset
        paging: stable while notes are added)."""
        where: list[str] = []
        params: list[Any] = []
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        if kind is not None:
            check_note_kind(kind)
            where.append("kind = ?")
            params.append(kind)
        for column, value in (
            ("task_id", task_id),
            ("session_id", session_id),
            ("agent_id", agent_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM notes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" + limit_clause(limit)
        return [Note.from_row(row) for row in self._rows(sql, params)]

    def latest_note(self, kind: str = "handoff", *, task_id: int | None = None) -> Note | None:
        """The newest note of ``kind`` (for a task, if given), or None."""
        notes = self.list_notes(kind=kind, task_id=task_id, limit=1)
        return notes[0] if notes else None


def check_note_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"unknown note kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
