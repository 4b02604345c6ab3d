"""Reading an agent tool's files incrementally: complete lines from a byte offset, plain or
zstd-compressed, with the fingerprints an import cursor keeps.

An importer never trusts a file to stay as it was. A cursor records how far it read (the
offset just past the last complete line) and two hashes: of the file's first 4 KiB and of
the 4 KiB before the offset. If the file is now shorter than the offset, or either hash
differs, the file was rewritten, truncated or replaced, and is read again from the start;
message external ids make that re-read idempotent. A last line without its newline is
left for the next run (the tool is probably still writing it).

Offsets of a ``.jsonl.zst`` file count decompressed bytes, so a rollout that Codex
compresses after a week keeps its cursor (the file key drops the ``.zst``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agentkeep.boundary import REPLACE, Boundary
from agentkeep.files import zstd

FINGERPRINT_BYTES = 4096
# A line longer than this is skipped without being held in memory or parsed (a 100 MB
# base64 screenshot line must not take the importer down). It is recorded as skipped.
MAX_LINE_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024


def open_source(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed if it is zstd (``.zst``)."""
    if path.suffix == ".zst":
        return zstd().ZstdFile(path, "rb")  # type: ignore[no-any-return]
    return path.open("rb")


def file_key(path: Path, root: Path) -> str:
    """The cursor key of ``path``: relative to the tool's root, POSIX, without ``.zst``."""
    rel = path.relative_to(root).as_posix()
    return rel.removesuffix(".zst")


@dataclass(frozen=True)
class Line:
    offset: int  # of the line's first byte (decompressed)
    end: int  # just past its newline
    data: bytes | None  # None when the line was longer than MAX_LINE_BYTES (skipped)

    def json(self) -> Any:
        """The decoded line: a JSON value, or raises ValueError. Invalid UTF-8 is
        replaced (U+FFFD), NaN/Infinity are accepted as Python floats (Writer nulls them)."""
        if self.data is None:
            raise ValueError("line too long")
        return json.loads(self.data.decode("utf-8", "replace"))


def decode_object(line: Line) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)`` for a line holding a JSON object, ``(None, None)`` for a blank
    line, ``(None, why)`` for a line that cannot be read (too long, not JSON, nested too
    deeply, not an object). Importers keep going either way."""
    if line.data is None:
        return None, f"line of {line.end - line.offset:,} bytes skipped (too long)"
    if not line.data.strip():
        return None, None
    try:
        value = line.json()
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "not JSON"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, None


def read_lines(stream: IO[bytes], offset: int, *, max_line: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """Complete lines from ``offset`` on. Stops before a last line with no newline."""
    _skip_to(stream, offset)
    position = offset
    pending = bytearray()
    pending_start = offset
    overlong = False
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                if not overlong:
                    pending += chunk[start:]
                    if len(pending) > max_line:
                        overlong = True
                        pending.clear()
                position += len(chunk) - start
                break
            piece = chunk[start:newline]
            end = position + (newline - start) + 1
            if overlong or len(pending) + len(piece) > max_line:
                yield Line(pending_start, end, None)
            else:
                pending += piece
                yield Line(pending_start, end, bytes(pending))
            pending.clear()
            overlong = False
            position = end
            pending_start = end
            start = newline + 1


def _skip_to(stream: IO[bytes], offset: int) -> None:
    # A zstd stream seeks by decompressing forward; a plain file seeks directly.
    if offset:
        stream.seek(offset)


def fingerprint(path: Path, offset: int) -> tuple[str, str]:
    """(sha256 of the first 4 KiB, sha256 of the 4 KiB before ``offset``), decompressed."""
    with open_source(path) as stream:
        head = stream.read(min(FINGERPRINT_BYTES, offset) if offset else FINGERPRINT_BYTES)
        if offset <= FINGERPRINT_BYTES:
            tail = head[max(0, offset - FINGERPRINT_BYTES) : offset]
        else:
            _skip_to(stream, offset - FINGERPRINT_BYTES)
            tail = stream.read(FINGERPRINT_BYTES)
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


@dataclass
class Cursor:
    """Where an importer stopped in one source file (a row of ``import_cursors``)."""

    source: str
    file_key: str
    offset: int = 0
    head_sha: str | None = None
    tail_sha: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    status: str = "imported"
    session_id: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Cursor:
        return cls(
            source=row["source"],
            file_key=row["file_key"],
            offset=row["offset"],
            head_sha=row["head_sha"],
            tail_sha=row["tail_sha"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            status=row["status"],
            session_id=row["session_id"],
            state=json.loads(row["state"]),
            id=row["id"],
        )

    def unchanged(self, path: Path) -> bool:
        """Whether the file looks exactly as when this cursor was saved (size and mtime;
        cheap: one stat). A changed file still continues from the offset if it only grew."""
        try:
            st = path.stat()
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns

    def resume_offset(self, path: Path) -> int:
        """Where to continue reading ``path``: the saved offset if the file only grew since,
        else 0 (rewritten, truncated or replaced)."""
        if not self.offset or self.head_sha is None:
            return 0
        try:
            head, tail = fingerprint(path, self.offset)
        except OSError:
            return 0
        if head != self.head_sha or tail != self.tail_sha:
            return 0
        # A file shorter than the offset hashes a shorter tail, which differs: caught above.
        return self.offset

    def advance(self, path: Path, offset: int) -> None:
        """Record that everything before ``offset`` was imported."""
        st = path.stat()
        self.offset = offset
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        self.head_sha, self.tail_sha = fingerprint(path, offset)


def load_cursor(conn: Any, source: str, key: str) -> Cursor | None:
    stored = Boundary(REPLACE).ident("file_key", key)  # as save_cursor stored it
    row = conn.execute(
        "SELECT * FROM import_cursors WHERE source = ? AND file_key = ?", (source, stored)
    ).fetchone()
    return Cursor.from_row(row) if row is not None else None


def save_cursor(conn: Any, cursor: Cursor, now: str) -> None:
    """Upsert ``cursor`` (inside the transaction that stored what it covers).

    The cursor passes the privacy boundary like any captured row (REPLACE mode): its
    ``state`` holds whatever an importer keeps between runs (tool names, pending texts,
    ids from the transcript), and the file key is a path the tool chose."""
    boundary = Boundary(REPLACE)
    file_key = boundary.ident("file_key", cursor.file_key)
    state = boundary.json("state", cursor.state)
    done = conn.execute(
        "INSERT INTO import_cursors (source, file_key, offset, head_sha, tail_sha, size,"
        " mtime_ns, status, session_id, state, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (source, file_key) DO UPDATE SET offset = excluded.offset,"
        " head_sha = excluded.head_sha, tail_sha = excluded.tail_sha, size = excluded.size,"
        " mtime_ns = excluded.mtime_ns, status = excluded.status,"
        " session_id = coalesce(excluded.session_id, import_cursors.session_id),"
        " state = excluded.state,"
        " updated_at = excluded.updated_at RETURNING id",
        (
            cursor.source,
            file_key,
            cursor.offset,
            cursor.head_sha,
            cursor.tail_sha,
            cursor.size,
            cursor.mtime_ns,
            cursor.status,
            cursor.session_id,
            state,
            now,
        ),
    ).fetchall()  # the row's id, inserted or updated
    boundary.record(conn, "import_cursors", done[0][0], now)


def mtime_ns(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
