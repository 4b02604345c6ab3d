"""OpenCode history fixtures, written by the tests in OpenCode's documented formats
(docs/design.md "Agent tools' formats"; never copied user data):

- :class:`OpenCodeDB` — ``opencode.db`` as OpenCode ≥ 1.2 keeps it: SQLite in WAL mode with
  drizzle's tables ``project``, ``session``, ``message`` and ``part`` (JSON ``data``
  columns, epoch-millisecond ``time_*`` columns). Its connection stays open, like a running
  OpenCode, so a test can hold a write transaction or leave frames in the WAL.
- :class:`OpenCodeJson` — the ≤ 1.1 file layout: ``storage/session/<project>/<id>.json``,
  ``storage/message/<session>/<id>.json``, ``storage/part/<message>/<id>.json``.

Both take the same calls, and :func:`conversation` writes one session with every part type
through either.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms

SCHEMA = """
CREATE TABLE __drizzle_migrations (id INTEGER PRIMARY KEY, hash text NOT NULL, created_at numeric);
CREATE TABLE project (
    id text PRIMARY KEY, worktree text NOT NULL, vcs text, name text, icon_url text,
    icon_color text, time_created integer NOT NULL, time_updated integer NOT NULL,
    time_initialized integer, sandboxes text NOT NULL DEFAULT '[]'
);
CREATE TABLE session (
    id text PRIMARY KEY,
    project_id text NOT NULL REFERENCES project (id) ON DELETE CASCADE,
    parent_id text, slug text NOT NULL, directory text NOT NULL, title text NOT NULL,
    version text NOT NULL, share_url text, summary_additions integer,
    summary_deletions integer, summary_files integer, summary_diffs text, revert text,
    permission text, time_created integer NOT NULL, time_updated integer NOT NULL,
    time_compacting integer, time_archived integer
);
CREATE INDEX session_project_idx ON session (project_id);
CREATE INDEX session_parent_idx ON session (parent_id);
CREATE TABLE message (
    id text PRIMARY KEY,
    session_id text NOT NULL REFERENCES session (id) ON DELETE CASCADE,
    time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL
);
CREATE INDEX message_session_time_created_id_idx ON message (session_id, time_created, id);
CREATE TABLE part (
    id text PRIMARY KEY,
    message_id text NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    session_id text NOT NULL, time_created integer NOT NULL, time_updated integer NOT NULL,
    data text NOT NULL
);
CREATE INDEX part_message_id_id_idx ON part (message_id, id);
CREATE INDEX part_session_idx ON part (session_id);
CREATE TABLE todo (
    session_id text NOT NULL REFERENCES session (id) ON DELETE CASCADE, content text NOT NULL,
    status text NOT NULL, priority text NOT NULL, position integer NOT NULL,
    time_created integer NOT NULL, time_updated integer NOT NULL,
    PRIMARY KEY (session_id, position)
);
CREATE TABLE permission (
    project_id text PRIMARY KEY REFERENCES project (id) ON DELETE CASCADE,
    time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL
);
CREATE TABLE session_share (
    session_id text PRIMARY KEY REFERENCES session (id) ON DELETE CASCADE, id text NOT NULL,
    secret text NOT NULL, url text NOT NULL, time_created integer NOT NULL,
    time_updated integer NOT NULL
);
"""


class Layout(Protocol):
    def project(self, project_id: str, worktree: str) -> None: ...

    def session(
        self,
        session_id: str,
        *,
        project_id: str,
        directory: str,
        title: str,
        created: int,
        updated: int | None = None,
        parent_id: str | None = None,
        archived: int | None = None,
    ) -> None: ...

    def message(
        self,
        message_id: str,
        session_id: str,
        info: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None: ...

    def part(
        self,
        part_id: str,
        message_id: str,
        session_id: str,
        data: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None: ...


class OpenCodeDB:
    """``opencode.db`` (WAL) with an open connection standing in for a running OpenCode.
    Every call commits unless the test opened a transaction itself."""

    def __init__(self, path: Path, *, wal: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        if wal:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")  # frames stay in the WAL
        self.conn.executescript(SCHEMA)
        self.conn.execute(
            "INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('0000_init', 0)"
        )

    def close(self) -> None:
        self.conn.close()

    def project(self, project_id: str, worktree: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO project (id, worktree, vcs, time_created, time_updated)"
            " VALUES (?, ?, 'git', ?, ?)",
            (project_id, worktree, T0, T0),
        )

    def session(
        self,
        session_id: str,
        *,
        project_id: str,
        directory: str,
        title: str,
        created: int,
        updated: int | None = None,
        parent_id: str | None = None,
        archived: int | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO session (id, project_id, parent_id, slug, directory, title, version,"
            " time_created, time_updated, time_archived)"
            " VALUES (?, ?, ?, ?, ?, ?, '1.2.0', ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET title = excluded.title,"
            " time_updated = excluded.time_updated, time_archived = excluded.time_archived",
            (
                session_id,
                project_id,
                parent_id,
                session_id[-8:],
                directory,
                title,
                created,
                updated or created,
                archived,
            ),
        )

    def message(
        self,
        message_id: str,
        session_id: str,
        info: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None:
        data = {k: v for k, v in info.items() if k not in ("id", "sessionID")}
        self.conn.execute(
            "INSERT INTO message (id, session_id, time_created, time_updated, data)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
            " time_updated = excluded.time_updated",
            (message_id, session_id, created, updated or created, json.dumps(data)),
        )

    def part(
        self,
        part_id: str,
        message_id: str,
        session_id: str,
        data: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None:
        body = {k: v for k, v in data.items() if k not in ("id", "sessionID", "messageID")}
        self.conn.execute(
            "INSERT INTO part (id, message_id, session_id, time_created, time_updated, data)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
            " time_updated = excluded.time_updated",
            (part_id, message_id, session_id, created, updated or created, json.dumps(body)),
        )


class OpenCodeJson:
    """The ≤ 1.1 layout under ``<data dir>/storage``."""

    def __init__(self, data_dir: Path) -> None:
        self.storage = data_dir / "storage"
        self.projects: dict[str, str] = {}  # session id -> project id

    def _write(self, rel: str, value: dict[str, Any]) -> None:
        path = self.storage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2))

    def project(self, project_id: str, worktree: str) -> None:
        self._write(
            f"project/{project_id}.json",
            {"id": project_id, "worktree": worktree, "vcs": "git", "time": {"created": T0}},
        )

    def session(
        self,
        session_id: str,
        *,
        project_id: str,
        directory: str,
        title: str,
        created: int,
        updated: int | None = None,
        parent_id: str | None = None,
        archived: int | None = None,
    ) -> None:
        info: dict[str, Any] = {
            "id": session_id,
            "version": "1.1.0",
            "projectID": project_id,
            "directory": directory,
            "title": title,
            "time": {"created": created, "updated": updated or created},
        }
        if parent_id:
            info["parentID"] = parent_id
        if archived:
            info["time"]["archived"] = archived
        self.projects[session_id] = project_id
        self._write(f"session/{project_id}/{session_id}.json", info)

    def message(
        self,
        message_id: str,
        session_id: str,
        info: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None:
        self._write(
            f"message/{session_id}/{message_id}.json",
            {**info, "id": message_id, "sessionID": session_id},
        )

    def part(
        self,
        part_id: str,
        message_id: str,
        session_id: str,
        data: dict[str, Any],
        *,
        created: int,
        updated: int | None = None,
    ) -> None:
        self._write(
            f"part/{message_id}/{part_id}.json",
            {**data, "id": part_id, "sessionID": session_id, "messageID": message_id},
        )


class Ids:
    """Ascending ids in OpenCode's shape (``prefix_`` + 12 hex digits + 14 letters)."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n:012x}AbCdEfGhIjKlMn"


@dataclass
class Written:
    """What :func:`conversation` wrote (ids a test asserts on)."""

    session_id: str
    messages: list[str] = field(default_factory=list)
    parts: dict[str, str] = field(default_factory=dict)  # name -> part id


def assistant_info(created: int, *, summary: bool = False, cost: float = 0.0123) -> dict[str, Any]:
    info: dict[str, Any] = {
        "role": "assistant",
        "time": {"created": created, "completed": created + 900},
        "parentID": "msg_parent",
        "modelID": "claude-sonnet-4-5",
        "providerID": "anthropic",
        "mode": "build",
        "agent": "build",
        "path": {"cwd": "/", "root": "/"},
        "cost": cost,
        "tokens": {
            "input": 1200,
            "output": 300,
            "reasoning": 50,
            "cache": {"read": 1000, "write": 200},
        },
        "finish": "stop",
    }
    if summary:
        info["summary"] = True
    return info


def user_info(created: int, agent: str = "build") -> dict[str, Any]:
    return {
        "role": "user",
        "time": {"created": created},
        "agent": agent,
        "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5"},
    }


def conversation(
    layout: Layout,
    ids: Ids,
    *,
    directory: str,
    project_id: str = "prj_root",
    t0: int = T0,
    secret: str = "",
    title: str = "Fix the failing test",
    parent_id: str | None = None,
) -> Written:
    """One session with every part type: a prompt (plus a synthetic text and an inline
    image), an assistant turn (step-start, reasoning, text, a completed bash call, a failed
    edit, a patch, step-finish, a part type nobody knows), a compaction and its summary."""
    sid = ids("ses")
    out = Written(sid)
    layout.project(project_id, directory)
    layout.session(
        sid,
        project_id=project_id,
        directory=directory,
        title=title,
        created=t0,
        updated=t0 + 9000,
        parent_id=parent_id,
    )

    def message(info: dict[str, Any], at: int) -> str:
        mid = ids("msg")
        layout.message(mid, sid, info, created=at)
        out.messages.append(mid)
        return mid

    def part(name: str, mid: str, data: dict[str, Any], at: int) -> None:
        pid = ids("prt")
        layout.part(pid, mid, sid, data, created=at)
        out.parts[name] = pid

    m1 = message(user_info(t0), t0)
    part("prompt", m1, {"type": "text", "text": f"Please fix the failing test {secret}"}, t0)
    part(
        "synthetic",
        m1,
        {"type": "text", "text": "Called the Read tool with tests/test_x.py", "synthetic": True},
        t0,
    )
    part(
        "image",
        m1,
        {
            "type": "file",
            "mime": "image/png",
            "filename": "shot.png",
            "url": "data:image/png;base64," + "iVBORw0KGgo" * 200,
        },
        t0,
    )
    t1 = t0 + 1000
    m2 = message(assistant_info(t1), t1)
    part("step-start", m2, {"type": "step-start", "snapshot": "4b825dc6"}, t1)
    part(
        "reasoning",
        m2,
        {"type": "reasoning", "text": "The test imports a helper.", "time": {"start": t1}},
        t1,
    )
    part("text", m2, {"type": "text", "text": "I'll run the tests first."}, t1 + 10)
    part(
        "bash",
        m2,
        {
            "type": "tool",
            "callID": "toolu_bash_1",
            "tool": "bash",
            "state": {
                "status": "completed",
                "input": {"command": f"pytest -q --token {secret}"},
                "output": f"1 failed; env had {secret}",
                "title": "pytest",
                "metadata": {},
                "time": {"start": t1 + 20, "end": t1 + 800},
            },
        },
        t1 + 20,
    )
    part(
        "edit",
        m2,
        {
            "type": "tool",
            "callID": "toolu_edit_1",
            "tool": "edit",
            "state": {
                "status": "error",
                "input": {"filePath": f"{directory}/missing.py"},
                "error": "Error: File not found",
                "time": {"start": t1 + 810, "end": t1 + 820},
            },
        },
        t1 + 810,
    )
    part("patch", m2, {"type": "patch", "hash": "abc123", "files": [f"{directory}/src/x.py"]}, t1)
    part(
        "step-finish",
        m2,
        {
            "type": "step-finish",
            "reason": "tool-calls",
            "cost": 0.0123,
            "tokens": {
                "input": 1200,
                "output": 300,
                "reasoning": 50,
                "cache": {"read": 1000, "write": 200},
            },
        },
        t1 + 890,
    )
    part("unknown", m2, {"type": "hologram", "beam": [1, 2, 3]}, t1 + 895)
    t2 = t0 + 5000
    m3 = message(user_info(t2), t2)
    part("compaction", m3, {"type": "compaction", "auto": True}, t2)
    t3 = t0 + 6000
    m4 = message(assistant_info(t3, summary=True, cost=0.002), t3)
    part("summary", m4, {"type": "text", "text": "Summary: the helper import was fixed."}, t3)
    return out


def subagent(
    layout: Layout, ids: Ids, *, parent: str, directory: str, t0: int = T0 + 2000
) -> Written:
    """A child session (``parent_id`` set) that a task tool started."""
    sid = ids("ses")
    out = Written(sid)
    layout.session(
        sid,
        project_id="prj_root",
        directory=directory,
        title="Find the helper (@explore subagent)",
        created=t0,
        parent_id=parent,
    )
    m1 = ids("msg")
    layout.message(m1, sid, user_info(t0, agent="explore"), created=t0)
    p1 = ids("prt")
    layout.part(p1, m1, sid, {"type": "text", "text": "Find where the helper lives"}, created=t0)
    m2 = ids("msg")
    layout.message(m2, sid, assistant_info(t0 + 100, cost=0.001), created=t0 + 100)
    p2 = ids("prt")
    layout.part(
        p2, m2, sid, {"type": "text", "text": "It lives in src/helpers.py"}, created=t0 + 100
    )
    out.messages = [m1, m2]
    out.parts = {"prompt": p1, "answer": p2}
    return out
