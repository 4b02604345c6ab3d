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

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentkeep._core import StoreBase
from agentkeep.capture import Writer, under_root
from agentkeep.errors import InvalidInput
from agentkeep.files import zstd
from agentkeep.importers.files import (
    Cursor,
    Line,
    load_cursor,
    open_source,
    read_lines,
    save_cursor,
)
from agentkeep.models import Record

SOURCES = ("claude", "codex", "opencode", "jsonl")
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
) -> FileOutcome:
    """Read ``file``'s new complete lines through ``handle`` and move its cursor.

    Lines are committed in batches of ~8 MB together with the cursor. ``finish`` runs in
    each batch's transaction after its lines (for example to update session totals).
    ``state["session_id"]``, if the handler sets it, is saved on the cursor.
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
    if source == "claude":
        from agentkeep.importers.claude import ClaudeImporter

        return ClaudeImporter()
    if source == "codex":
        from agentkeep.importers.codex import CodexImporter

        return CodexImporter()
    if source == "opencode":
        from agentkeep.importers.opencode import OpenCodeImporter

        return OpenCodeImporter()
    if source == "jsonl":
        from agentkeep.importers.jsonl import JsonlImporter

        return JsonlImporter()
    raise InvalidInput(f"unknown import source {source!r}", hint=f"one of: {', '.join(SOURCES)}")


class ImportOps(StoreBase):
    def project_dirs(self) -> tuple[str, ...]:
        """The project root and the worktrees this store knows (git's list and its own)."""
        from agentkeep.paths import git

        dirs = [str(self.root)]
        listing = git(self.root, "worktree", "list", "--porcelain") or ""
        for line in listing.splitlines():
            if line.startswith("worktree "):
                dirs.append(line.removeprefix("worktree "))
        for row in self._rows("SELECT path FROM worktrees"):
            path = Path(row["path"])
            dirs.append(str(path if path.is_absolute() else (self.root / path).resolve()))
        return tuple(dict.fromkeys(dirs))

    def import_history(
        self,
        source: str,
        *,
        path: Path | None = None,
        since: str | None = None,
        options: dict[str, Any] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        project_dirs: tuple[str, ...] | None = None,
    ) -> ImportResult:
        """Import ``source``'s history for this project: new lines of every file since
        the last run. Re-running imports nothing twice. ``path`` replaces the tool's
        default location; ``since`` (ISO UTC) skips older files and entries.
        ``project_dirs`` (default: :meth:`project_dirs`, which asks git) lets a caller
        that imports repeatedly look them up once."""
        importer = _importer(source)
        ctx = ImportContext(
            store=self,
            root=str(self.root),
            project_dirs=project_dirs or self.project_dirs(),
            path=path,
            since=since,
            options=dict(options or {}),
        )
        started = time.monotonic()
        files = list(importer.discover(ctx))
        counts = {"imported": 0, "unchanged": 0, "foreign": 0, "error": 0}
        sessions: set[int] = set()
        messages = read = 0
        errors: list[str] = []
        for number, file in enumerate(files, 1):
            if progress is not None:
                progress(number, len(files), file.key)
            cursor = load_cursor(self._conn, importer.source, file.key)
            if cursor is not None and cursor.status == "foreign" and cursor.unchanged(file.path):
                counts["foreign"] += 1
                continue
            try:
                outcome = importer.import_file(ctx, file, cursor)
            except (OSError, ValueError, EOFError, zstd().ZstdError) as exc:
                outcome = FileOutcome("error", error=f"{file.key}: {exc}")
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            sessions |= outcome.sessions
            messages += outcome.messages
            read += outcome.bytes
            if outcome.error:
                errors.append(outcome.error)
        # Transcripts carry no end marker: sessions idle past sessions.idle_minutes end now,
        # once their lines are all in (mid-run, their last activity is not known yet).
        self.end_idle_sessions()  # type: ignore[attr-defined]  # SessionOps, on Store
        return ImportResult(
            source=importer.source,
            files=len(files),
            imported=counts["imported"],
            unchanged=counts["unchanged"],
            foreign=counts["foreign"],
            failed=counts["error"],
            sessions=len(sessions),
            messages=messages,
            bytes=read,
            seconds=round(time.monotonic() - started, 3),
            errors=errors,
        )

    def watch_history(
        self,
        sources: Iterable[str],
        *,
        path: Path | None = None,
        options: dict[str, Any] | None = None,
        interval: float = WATCH_INTERVAL_S,
        on_pass: Callable[[list[ImportResult]], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Import ``sources`` again every ``interval`` seconds until ``stop()`` is true.
        New lines show up within about one interval plus the time to read them."""
        names = list(sources)
        dirs_at = -WORKTREE_REFRESH_S
        dirs: tuple[str, ...] = ()
        while not stop():
            if time.monotonic() - dirs_at >= WORKTREE_REFRESH_S:  # git, not every pass
                dirs, dirs_at = self.project_dirs(), time.monotonic()
            results = [
                self.import_history(name, path=path, options=options, project_dirs=dirs)
                for name in names
            ]
            if on_pass is not None:
                on_pass(results)
            deadline = time.monotonic() + interval
            while not stop() and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
