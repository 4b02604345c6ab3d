"""Importers for the agent tools' own histories (Claude Code, Codex, OpenCode, JSONL).

Capture before deletion: each tool keeps its transcripts in private files it prunes or
rewrites. An importer reads them incrementally into this project's store — redacted,
under the capture policy, through :class:`agentkeep.capture.Writer` — so the sessions stay
complete after the tool forgets them.

Every importer has the same two steps: ``discover`` lists the tool's files that may belong
to this project (cheaply: names and stats), and ``import_file`` reads one of them from its
cursor on. :func:`import_lines` is the shared driver for line-based files: batches of
lines commit together with the cursor that covers them, so a crash re-reads at most one
batch, and the message external ids make that re-read a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentkeep.capture import Writer, under_root
from agentkeep.errors import InvalidInput
from agentkeep.importers.files import (
    Cursor,
    Line,
    load_cursor,
    open_source,
    read_lines,
    save_cursor,
)
from agentkeep.models import Record
from agentkeep.tools import IMPORTERS, load_importer

SOURCES = tuple(IMPORTERS)  # claude, codex, opencode (agentkeep/tools.py), jsonl
BATCH_BYTES = 8 * 1024 * 1024
WATCH_INTERVAL_S = 1.0
WORKTREE_REFRESH_S = 30.0  # --watch looks for new worktrees this often


@dataclass(frozen=True)
class SourceFile:
    """One file (or database, or session in a database) an importer may read."""

    path: Path
    key: str  # the cursor's file_key: relative to the tool's root, never absolute
    hint: Any = None  # importer-specific (for example a session id already known)


@dataclass
class FileOutcome:
    status: str  # imported | unchanged | foreign | error
    messages: int = 0
    sessions: set[int] = field(default_factory=set)
    bytes: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ImportResult(Record):
    source: str
    files: int
    imported: int
    unchanged: int
    foreign: int
    failed: int
    sessions: int
    messages: int
    bytes: int
    seconds: float
    errors: list[str]


@dataclass
class ImportContext:
    """What an importer needs to know about this run."""

    store: Any  # agentkeep.Store
    root: str  # the project root
    project_dirs: tuple[str, ...]  # the root and the project's worktrees
    path: Path | None = None  # an explicit file or directory to import instead of the default
    since: str | None = None  # ISO UTC: skip files and entries older than this
    options: dict[str, Any] = field(default_factory=dict)

    def belongs(self, cwd: str | None) -> bool:
        """Whether a session that ran in ``cwd`` belongs to this project (its root or one
        of its worktrees, or a directory inside them)."""
        return any(under_root(directory, cwd) for directory in self.project_dirs)


class Importer(Protocol):
    source: str

    def discover(self, ctx: ImportContext) -> Iterable[SourceFile]: ...

    def import_file(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome: ...


LineHandler = Callable[[Writer, Line, dict[str, Any]], int]
"""Stores one line (returns the number of messages it added); keeps its own running
state (session id, sequence, open tool calls...) in the dict, which is saved with the
cursor, so the next run continues where this one stopped."""


def import_lines(
    ctx: ImportContext,
    file: SourceFile,
    cursor: Cursor | None,
    handle: LineHandler,
    *,
    source: str,
    finish: Callable[[Writer, dict[str, Any]], None] | None = None,
    named: Callable[[int], None] | None = None,
) -> FileOutcome:
    """Read ``file``'s new complete lines through ``handle`` and move its cursor.

    Lines are committed in batches of ~8 MB together with the cursor. ``finish`` runs in
    each batch's transaction after its lines (for example to update session totals).
    ``state["session_id"]``, if the handler sets it, is saved on the cursor.
    ``named``: a cursor without an id is saved first, in the first batch's transaction,
    and ``named`` is told its id before any line is handled (rows can name it).
    """
    path = file.path
    if cursor is not None and cursor.unchanged(path):
        return FileOutcome("unchanged")
    start = cursor.resume_offset(path) if cursor is not None else 0
    if cursor is None:
        cursor = Cursor(source=source, file_key=file.key)
    state: dict[str, Any] = dict(cursor.state) if start else {}
    outcome = FileOutcome("imported")
    with open_source(path) as stream:
        lines: Iterator[Line] = read_lines(stream, start)
        offset = start
        exhausted = False
        while not exhausted:
            batch = 0
            with ctx.store.transaction() as tx:
                if named is not None and cursor.id is None:
                    save_cursor(tx.conn, cursor, tx.now)
                    saved = load_cursor(tx.conn, source, file.key)
                    assert saved is not None and saved.id is not None
                    cursor.id = saved.id
                    named(saved.id)
                writer = ctx.store.capture_writer(tx)
                for line in lines:
                    outcome.messages += handle(writer, line, state)
                    batch += line.end - line.offset
                    offset = line.end
                    if batch >= BATCH_BYTES or state.get("foreign"):
                        break
                else:
                    exhausted = True
                if finish is not None:
                    finish(writer, state)
                if state.get("session_id"):
                    outcome.sessions.add(int(state["session_id"]))
                    cursor.session_id = int(state["session_id"])
                cursor.status = "foreign" if state.get("foreign") else "imported"
                outcome.status = cursor.status
                cursor.advance(path, offset)
                cursor.state = state
                save_cursor(tx.conn, cursor, tx.now)
                outcome.bytes += batch
                if state.get("foreign"):
                    break
    return outcome


def _importer(source: str) -> Importer:
    """A new importer for ``source`` (the registry in :mod:`agentkeep.tools` names it)."""
    if source not in IMPORTERS:
        raise InvalidInput(
            f"unknown import source {source!r}", hint=f"one of: {', '.join(SOURCES)}"
        )
    importer: Importer = load_importer(source)
    return importer
