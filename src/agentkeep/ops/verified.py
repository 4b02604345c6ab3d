"""What an operation checked, and whether it changed since (see :class:`Verified`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from agentkeep.errors import AgentkeepError
from agentkeep.files import open_file, staged_file

VERIFIED_FORMAT = 1
RACY_S = 2.0  # a file changed this recently is checked again next time (see Verified)


class Verified:
    """A record of the files an operation checked (doctor: re-hashed and found matching
    their rows) or derived a value from (usage: bytes per table), so a later run reads
    only what is new or changed (issue 10, "Scale": doctor and usage read every byte
    every time). ``full`` ignores the record (and rewrites it).

    A file counts as unchanged when its size, mtime, ctime and inode are what they were
    when it was verified. The database counts as unchanged when its file and its WAL both
    are (every commit writes the WAL; a checkpoint writes the file), so a store nobody
    wrote since is not page-checked again. Objects and sealed streams are immutable (0400):
    anything that rewrites, replaces or truncates one through the file system changes its
    ctime, which no user tool can set back. What this does not see is damage below the
    file system (bit rot): that is what ``--full`` is for. Like git's "racy" index
    entries, a file whose ctime is within ``RACY_S`` of the check is not recorded, so a
    change in the same clock tick as the check cannot hide.

    The record (a private JSON file in the store directory) is a cache: deleting it only
    makes the next run slower. Failing to write it (a read-only store) is not an error.
    """

    def __init__(self, path: Path, *, full: bool) -> None:
        self.path = path
        self.started = time.time()
        self.before: dict[str, list[int]] = {}
        self.values: dict[str, Any] = {}
        if not full:
            self.before, self.values = self._load()
        self.now: dict[str, list[int]] = {}
        self.kept: dict[str, Any] = {}

    def _load(self) -> tuple[dict[str, list[int]], dict[str, Any]]:
        try:
            fd = open_file(self.path, os.O_RDONLY)  # never through a link
            with os.fdopen(fd, "rb") as handle:
                data = json.loads(handle.read())
        except (OSError, ValueError, AgentkeepError):  # a link, a FIFO: only a cache
            return {}, {}
        if not isinstance(data, dict) or data.get("format") != VERIFIED_FORMAT:
            return {}, {}
        files, values = data.get("files"), data.get("values")
        return (
            files if isinstance(files, dict) else {},
            values if isinstance(values, dict) else {},
        )

    @staticmethod
    def _stamp(first: Path, *others: Path) -> list[int] | None:
        """What changes when any of the files changes; None when ``first`` is missing.

        ``others`` (a WAL) may be absent or empty, and that is one state whatever their
        times: SQLite creates an empty WAL when a connection opens and removes it when the
        last one closes, so an empty WAL's times change with every open, not with data.
        A commit makes the WAL non-empty (and a checkpoint writes ``first``)."""
        stamp: list[int] = []
        for path in (first, *others):
            try:
                st = path.stat()
            except FileNotFoundError:
                if path is first:
                    return None
                stamp += [0, 0, 0, 0]
                continue
            except OSError:
                return None
            if path is not first and st.st_size == 0:
                stamp += [0, 0, 0, 0]
            else:
                stamp += [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return stamp

    def unchanged(self, key: str, *paths: Path) -> bool:
        """Whether ``paths`` were verified as ``key`` and none has changed since."""
        stamp = self._stamp(*paths)
        name = f"{key}:{paths[0].name}"
        if stamp is None or self.before.get(name) != stamp:
            return False
        self.now[name] = stamp
        if name in self.values:
            self.kept[name] = self.values[name]
        return True

    def value(self, key: str, *paths: Path) -> Any:
        """What was recorded with ``key`` if ``paths`` have not changed since, else None."""
        if not self.unchanged(key, *paths):
            return None
        return self.values.get(f"{key}:{paths[0].name}")

    def record(self, key: str, *paths: Path, value: Any = None) -> None:
        """``paths`` were just checked and match ``key`` (or ``value`` was derived from
        them: a JSON value to give back while they stay unchanged)."""
        stamp = self._stamp(*paths)
        if stamp is not None and max(stamp[2::4]) / 1e9 < self.started - RACY_S:
            name = f"{key}:{paths[0].name}"
            self.now[name] = stamp
            if value is not None:
                self.kept[name] = value

    def save(self) -> None:
        if self.now == self.before and self.kept == self.values:
            return
        record = {"format": VERIFIED_FORMAT, "files": self.now, "values": self.kept}
        data = json.dumps(record, sort_keys=True)
        # A cache: best effort (another user's store, a full disk).
        with contextlib.suppress(AgentkeepError, OSError), staged_file(self.path) as tmp:
            fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode("utf-8"))
