"""Importing agents' own histories into the store, once and incrementally (``agentkeep
import``, ``import --watch``). The formats live in :mod:`agentkeep.importers`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentkeep.files import zstd
from agentkeep.importers import (
    WATCH_INTERVAL_S,
    WORKTREE_REFRESH_S,
    FileOutcome,
    ImportContext,
    ImportResult,
    _importer,
)
from agentkeep.importers.files import load_cursor
from agentkeep.services.base import Service


class HistoryService(Service):
    """Importing agents' own histories (``agentkeep import``): see :mod:`agentkeep.importers`."""

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
        that imports repeatedly look them up once. What the run stored is indexed for
        search before it returns, in a few bulk statements (schema 8)."""
        importer = _importer(source)
        ctx = ImportContext(
            store=self._store,
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
        try:
            for number, file in enumerate(files, 1):
                if progress is not None:
                    progress(number, len(files), file.key)
                cursor = load_cursor(self._conn, importer.source, file.key)
                if (
                    cursor is not None
                    and cursor.status == "foreign"
                    and cursor.unchanged(file.path)
                ):
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
            # Transcripts carry no end marker: sessions idle past sessions.idle_minutes end
            # now, once their lines are all in (mid-run, their last activity is not known).
            self._store.sessions.end_idle_sessions()
        finally:
            # The messages stored are indexed for search now, in bulk: a fraction of what
            # indexing them row by row inside the import cost (schema 8) — after a failure
            # too, or every read-only search would index them afresh, in memory, until the
            # next import. A search never misses them anyway (it catches up first, or looks
            # at them directly).
            self._store.catch_up_search()
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
