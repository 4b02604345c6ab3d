"""Output streams: append-only files indexed by the database, sealed with zstd when done.

Life of a stream (principles 1 and 6 of docs/design.md):

- **live** — ``streams/<session>/<name>.log``, opened ``O_APPEND``. Bytes arrive through
  the redactor (a secret split across reads is still found; invalid UTF-8 passes through
  unchanged) and are appended. A *progress commit* — fdatasync the file, then record
  ``length``, ``lines`` and one sparse-index row — happens at least every 64 KiB or 250 ms
  of output (under a burst faster than commits, each commit covers all that was written
  since the previous one). Every byte below the recorded ``length`` is durable.
  Progress commits are bookkeeping of an append-only file, not state changes: they write
  no event. Opening, closing and sealing do.
- **closed** — the writer flushed the redactor's held-back tail and recorded the final
  length.
- **sealed** — compressed to ``<name>.zst``: independent zstd frames of ~1 MiB followed by a
  seek table in the zstd *seekable format* (a skippable frame, so plain ``zstd -d`` still
  decompresses the file). A read at any offset decompresses only the frames it needs. The
  sealed file is verified against the sha256 of the plain bytes before it is renamed into
  place; the row then commits, and only then is the plain file deleted. On a backend shared
  between machines (PostgreSQL) the sealed file's bytes are stored in the database in the
  row's transaction (``backend.blobs``), and a machine without the file fetches it into
  its own ``streams/`` before reading it. A live stream is read only where it is written.

Reading is the same whatever the state: :meth:`StreamService.read_stream`, ``tail``,
``follow``. A reader of a live stream keeps its file descriptor, so sealing (which unlinks
the plain file) never pulls bytes from under it.
"""

from __future__ import annotations

import bisect
import codecs
import os
import re
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkeep.errors import AgentkeepError, Conflict, Corrupt, InvalidInput, RedactionFailed
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    READ_ONLY_FILE,
    ZSTD_LEVEL,
    check_no_links,
    make_dirs,
    open_file,
    remove_quietly,
    staged_file,
    translate_os_error,
    write_chunks,
    zstd,
)
from agentkeep.models import Stream
from agentkeep.services.base import Service

STREAMS_DIR = "streams"
FRAME_BYTES = 1 << 20
COMMIT_BYTES = 64 * 1024
COMMIT_SECONDS = 0.25
# How long `follow` waits for another stream's uncommitted bytes before showing a newer
# line anyway (a writer commits at least every COMMIT_SECONDS; one that died never does).
HOLD_SECONDS = 1.0
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# zstd seekable format (contrib/seekable_format/zstd_seekable_compression_format.md).
SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
_FOOTER = struct.Struct("<IBI")  # number of frames, descriptor, seekable magic
_ENTRY = struct.Struct("<II")  # compressed size, decompressed size (no checksums)


def stream_file(session_id: int, name: str, *, sealed: bool = False) -> str:
    """The path of a stream's file, relative to the store directory."""
    return f"{STREAMS_DIR}/{session_id}/{name}.{'zst' if sealed else 'log'}"


# -- the sealed format ------------------------------------------------------------------


@dataclass(frozen=True)
class SeekTable:
    """Where each frame of a sealed file starts, compressed and uncompressed."""

    compressed_starts: list[int]
    starts: list[int]  # uncompressed offset of each frame
    sizes: list[int]  # uncompressed size of each frame
    compressed_sizes: list[int]

    @property
    def length(self) -> int:
        return self.starts[-1] + self.sizes[-1] if self.starts else 0


def seek_table_bytes(frames: list[tuple[int, int]]) -> bytes:
    body = b"".join(_ENTRY.pack(c, d) for c, d in frames)
    body += _FOOTER.pack(len(frames), 0, SEEKABLE_MAGIC)
    return struct.pack("<II", SKIPPABLE_MAGIC, len(body)) + body


def read_seek_table(fd: int, file_size: int) -> SeekTable:
    if file_size < 8 + _FOOTER.size:
        raise Corrupt("a sealed stream file is too short to hold its seek table")
    frames, descriptor, magic = _FOOTER.unpack(os.pread(fd, _FOOTER.size, file_size - _FOOTER.size))
    entry_size = _ENTRY.size + (4 if descriptor & 0x80 else 0)
    table_size = 8 + frames * entry_size + _FOOTER.size
    if magic != SEEKABLE_MAGIC or table_size > file_size:
        raise Corrupt("a sealed stream file has no valid seek table")
    raw = os.pread(fd, frames * entry_size, file_size - _FOOTER.size - frames * entry_size)
    table = SeekTable([], [], [], [])
    compressed = offset = 0
    for index in range(frames):
        c_size, d_size = _ENTRY.unpack_from(raw, index * entry_size)
        table.compressed_starts.append(compressed)
        table.compressed_sizes.append(c_size)
        table.starts.append(offset)
        table.sizes.append(d_size)
        compressed += c_size
        offset += d_size
    if compressed + table_size != file_size:
        raise Corrupt("a sealed stream file's frames do not add up to its size")
    return table


class SealedReader:
    """Random access to a sealed stream: decompresses only the frames a read touches."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.table = read_seek_table(fd, os.fstat(fd).st_size)
        self._cache: tuple[int, bytes] | None = None  # the last frame decompressed

    @property
    def size(self) -> int:
        return self.table.length

    def _frame(self, index: int) -> bytes:
        if self._cache is not None and self._cache[0] == index:
            return self._cache[1]
        t = self.table
        data = os.pread(self.fd, t.compressed_sizes[index], t.compressed_starts[index])
        plain: bytes = zstd().decompress(data)
        if len(plain) != t.sizes[index]:
            raise Corrupt(f"frame {index} of a sealed stream has the wrong size")
        self._cache = (index, plain)
        return plain

    def read(self, offset: int, size: int) -> bytes:
        t = self.table
        end = min(offset + size, t.length)
        if offset >= end:
            return b""
        index = bisect.bisect_right(t.starts, offset) - 1
        parts = []
        while index < len(t.starts) and t.starts[index] < end:
            frame = self._frame(index)
            start = t.starts[index]
            parts.append(frame[max(offset - start, 0) : end - start])
            index += 1
        return b"".join(parts)

    def close(self) -> None:
        os.close(self.fd)


class LiveReader:
    """Reads a plain (live or closed) stream file; survives its unlinking by the sealer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        os.close(self.fd)


Reader = SealedReader | LiveReader


def open_reader(store_dir: Path, stream: Stream) -> Reader:
    path = store_dir / stream.path
    try:
        fd = open_file(path, os.O_RDONLY, within=store_dir)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise translate_os_error(exc, str(path)) from exc
    if stream.status == "sealed":
        try:
            return SealedReader(fd)
        except BaseException:
            os.close(fd)
            raise
    return LiveReader(fd)


# -- writing ----------------------------------------------------------------------------


class _Clock:
    """Strictly increasing nanosecond times, and which stream of each session wrote last:
    a write that switches streams gets a *mark* (its offset and time), which is all
    `logs` needs to interleave a session's streams in the order they were written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._writer: dict[int, int] = {}

    def switch(self, session_id: int, stream_id: int) -> int | None:
        with self._lock:
            if self._writer.get(session_id) == stream_id:
                return None
            self._writer[session_id] = stream_id
            self._last = max(self._last + 1, time.time_ns())
            return self._last

    def forget(self, session_id: int, stream_id: int) -> None:
        with self._lock:
            if self._writer.get(session_id) == stream_id:
                del self._writer[session_id]


_CLOCK = _Clock()


class StreamWriter:
    """Appends output to one live stream through the redactor.

    ``write`` never blocks on the database unless ``auto_commit`` is set; the owner calls
    :meth:`commit_progress` when :meth:`due` says so (``agentkeep run`` does it from a
    separate thread with its own connection, so the output path never waits for fsync).
    """

    def __init__(self, store: StreamService, stream: Stream, *, auto_commit: bool = True) -> None:
        from agentkeep.boundary import stream_redactor

        self.stream = stream
        self.path = store.store_dir / stream.path
        self._store = store
        self._auto_commit = auto_commit
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._redactor = stream_redactor()
        try:
            self._fd = open_file(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, within=store.store_dir
            )
        except OSError as exc:
            raise translate_os_error(exc, str(self.path)) from exc
        # (length, lines) written so far; replaced as one tuple so another thread reads a
        # consistent pair.
        self.progress = (stream.length, stream.lines)
        self._committed = (stream.length, stream.lines)
        self._committed_at = time.monotonic()
        self.closed = False
        self.failed = False  # set by an owner that stopped recording after an error
        self._marks: list[tuple[int, int]] = []  # (offset, time) not yet recorded
        self._marks_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Redact and append ``data``. Raises StorageFull/StorageError/RedactionFailed."""
        try:
            text = self._redactor.feed(self._decoder.decode(data))
        except AgentkeepError:
            raise
        except Exception as exc:  # fail closed
            raise RedactionFailed("the redactor failed; the output was not recorded") from exc
        if text:
            self._append(text.encode("utf-8", "surrogateescape"))
        if self._auto_commit and self.due():
            self.commit_progress()

    def _append(self, data: bytes) -> None:
        length, lines = self.progress
        moment = _CLOCK.switch(self.stream.session_id, self.stream.id)
        if moment is not None:
            with self._marks_lock:
                self._marks.append((length, moment))
        done = 0
        view = memoryview(data)
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            self.progress = (length + done, lines + data[:done].count(b"\n"))
            raise translate_os_error(exc, str(self.path)) from exc
        self.progress = (length + done, lines + data.count(b"\n"))

    def due(self) -> bool:
        length = self.progress[0]
        if length == self._committed[0]:
            return False
        return (
            length - self._committed[0] >= COMMIT_BYTES
            or time.monotonic() - self._committed_at >= COMMIT_SECONDS
        )

    def seconds_until_due(self) -> float | None:
        """How long until bytes written now would be due for a progress commit by time
        (0: at once); None when the last commit is older than COMMIT_SECONDS, so that new
        bytes are due as soon as they are written (:meth:`due` says so to the relay)."""
        left = self._committed_at + COMMIT_SECONDS - time.monotonic()
        if self.progress[0] != self._committed[0]:
            return max(left, 0.0)
        return left if left > 0 else None

    def sync(self) -> tuple[int, int]:
        """fdatasync what was written; returns the (length, lines) now durable."""
        progress = self.progress
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise translate_os_error(exc, str(self.path)) from exc
        return progress

    def commit_progress(self, store: StreamService | None = None) -> None:
        """Make the bytes written so far durable and record them (one small commit)."""
        length, lines = self.sync()
        if (length, lines) == self._committed:
            self._committed_at = time.monotonic()
            return
        (store or self._store).record_progress(
            self.stream.id, length, lines, marks=self._take_marks()
        )
        self._committed = (length, lines)
        self._committed_at = time.monotonic()

    def _take_marks(self) -> list[tuple[int, int]]:
        with self._marks_lock:
            marks, self._marks = self._marks, []
        return marks

    def close(self, store: StreamService | None = None) -> Stream:
        """Flush the redactor's held-back tail, record the final length, mark closed."""
        if self.closed:
            return (store or self._store).get_stream(self.stream.id)
        try:
            tail = self._redactor.feed(self._decoder.decode(b"", final=True))
            tail += self._redactor.flush()
        except Exception as exc:
            raise RedactionFailed("the redactor failed; the output tail was not recorded") from exc
        if tail:
            self._append(tail.encode("utf-8", "surrogateescape"))
        length, lines = self.sync()
        os.close(self._fd)
        self.closed = True
        target = store or self._store
        stream = target.close_stream(
            self.stream.id, length, lines, self._redactor.counts, marks=self._take_marks()
        )
        _CLOCK.forget(self.stream.session_id, self.stream.id)
        self._committed = (length, lines)
        return stream

    def abandon(self) -> None:
        """Close the file without recording anything more (the process is going away)."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)


# -- sealing after the fact ------------------------------------------------------------------

_DIRECTORY_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _session_dir(store_dir: Path, session_id: int) -> Path:
    """The directory of a session's stream files."""
    return store_dir / STREAMS_DIR / str(session_id)


def hold_sealing_lock(store_dir: Path, session_id: int) -> int:
    """Lock a session's stream directory (``flock``, exclusive) for the process that seals
    its closed streams after ``agentkeep run`` has exited, and return the descriptor.

    The lock belongs to the open file description: a forked sealer inherits it, so it is
    held from before the session ends until the sealer is done or dies. While it is held,
    ``doctor`` leaves the session's streams alone (:func:`being_sealed`): a closed stream
    of a finished session is otherwise one a recorder left unsealed, which ``--fix``
    seals — and whose half-published ``.zst`` it removes."""
    import fcntl

    directory = _session_dir(store_dir, session_id)
    check_no_links(store_dir, directory)
    try:
        fd = os.open(directory, _DIRECTORY_FLAGS)
    except OSError as exc:
        raise translate_os_error(exc, str(directory)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def being_sealed(store_dir: Path, session_id: int) -> bool:
    """Whether a sealer holds the session's lock (:func:`hold_sealing_lock`)."""
    import fcntl

    try:
        fd = os.open(_session_dir(store_dir, session_id), _DIRECTORY_FLAGS)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


# -- the service ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    stream: str
    line: int  # 1-based line number within its stream
    offset: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "line": self.line, "offset": self.offset, "text": self.text}


def start_with_streams(
    store: Any, names: Sequence[str], *, agent: str | None = None, **session: Any
) -> tuple[Any, list[StreamWriter]]:
    """Start a session (``store.start_session(**session)``; ``agent``, when given, is
    registered as a ``run`` agent first) with a live stream of each name, in one write
    transaction: one commit instead of one per row, and all of it recorded or none."""
    with store._joined_writes():
        agent_id = store.register_agent(agent, kind="run").item.id if agent else None
        started = store.start_session(agent_id=agent_id, **session).item
        writers = [store.open_stream(started.id, name, auto_commit=False) for name in names]
    return started, writers


class StreamService(Service):
    def open_stream(
        self, session_id: int, name: str = "stdout", *, auto_commit: bool = True
    ) -> StreamWriter:
        """Create a live stream for a session and return its writer."""
        if not NAME_RE.match(name):
            raise InvalidInput(
                f"{name!r} is not a stream name", hint="use a short lower-case name like stdout"
            )
        self._require(session_id=session_id)
        relative = stream_file(session_id, name)
        make_dirs((self.store_dir / relative).parent, within=self.store_dir)
        with self.transaction() as tx:
            if tx.one(
                "SELECT 1 FROM streams WHERE session_id = ? AND name = ?", (session_id, name)
            ):
                raise Conflict(f"session {session_id} already has a stream named {name!r}")
            stream_id = tx.insert(
                "streams",
                {
                    "session_id": session_id,
                    "name": name,
                    "status": "live",
                    "path": relative,
                    "created_at": tx.now,
                    "updated_at": tx.now,
                },
            )
            stream = self.get_stream(stream_id)
            tx.emit("stream", stream_id, "stream.opened", stream.to_dict())
        return StreamWriter(self, stream, auto_commit=auto_commit)

    def record_progress(
        self, stream_id: int, length: int, lines: int, *, marks: Sequence[tuple[int, int]] = ()
    ) -> None:
        """Record that ``length`` bytes (``lines`` newlines) of a live stream are durable,
        and when the writes at ``marks`` (offset, ns time) were made."""
        with self.transaction() as tx:
            _record_marks(tx, stream_id, marks)
            tx.execute(
                "UPDATE streams SET length = ?, lines = ?, updated_at = ? "
                "WHERE id = ? AND status = 'live' AND length <= ?",
                (length, lines, tx.now, stream_id, length),
            )
            tx.execute(
                "INSERT INTO stream_index (stream_id, offset, line) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (stream_id, length, lines),
            )

    def close_stream(
        self,
        stream_id: int,
        length: int,
        lines: int,
        redactions: dict[str, int] | None = None,
        *,
        marks: list[tuple[int, int]] = (),  # type: ignore[assignment]
    ) -> Stream:
        with self.transaction() as tx:
            _record_marks(tx, stream_id, marks)
            tx.add_redactions("content", redactions or {})
            changes = {"status": "closed", "length": length, "lines": lines, "updated_at": tx.now}
            tx.update("streams", stream_id, changes)
            tx.emit("stream", stream_id, "stream.closed", {"length": length, "lines": lines})
        return self.get_stream(stream_id)

    def get_stream(self, stream_id: int) -> Stream:
        return Stream.from_row(self._record("stream", stream_id))  # type: ignore[no-any-return]

    def list_streams(
        self, *, session_id: int | None = None, status: str | None = None
    ) -> list[Stream]:
        where: list[str] = []
        params: list[Any] = []
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM streams" + (" WHERE " + " AND ".join(where) if where else "")
        return [Stream.from_row(row) for row in self._rows(sql + " ORDER BY id", params)]

    def session_streams(self, session_id: int, name: str | None = None) -> list[Stream]:
        self._require(session_id=session_id)
        streams = self.list_streams(session_id=session_id)
        if name is not None:
            streams = [s for s in streams if s.name == name]
            if not streams:
                raise InvalidInput(
                    f"session {session_id} has no {name} stream",
                    hint="`agentkeep logs SESSION` without --stream shows them all",
                )
        return streams

    # -- sealing ----------------------------------------------------------------------

    def seal_stream(self, stream_id: int, *, abandoned: bool = False) -> Stream:
        """Compress a closed stream into verified zstd frames.

        A live stream is sealed only when ``abandoned`` (its writer is known to be dead:
        ``doctor`` checks), since a writer would go on appending to the unlinked file.
        Idempotent: a sealed stream is returned unchanged. The plain file is deleted only
        after the sealed one is durable and the row says so.
        """
        stream = self.get_stream(stream_id)
        if stream.status == "sealed":
            return stream
        if stream.status == "live" and not abandoned:
            raise Conflict(
                f"stream {stream_id} is still being written",
                hint="streams are sealed when their session ends; `agentkeep doctor --fix` "
                "seals those whose recorder died",
            )
        plain = self.store_dir / stream.path
        relative = stream_file(stream.session_id, stream.name, sealed=True)
        final = self.store_dir / relative
        make_dirs(final.parent, within=self.store_dir)
        with staged_file(final) as tmp:
            length, lines, digest, stored, index = _compress_file(plain, tmp, self.store_dir)
            failpoint("seal:compressed")
            _verify_sealed(tmp, digest, length)
        failpoint("seal:published")
        with self.transaction() as tx:
            current = tx.row("streams", stream_id)
            if current["status"] == "sealed":
                # Sealed meanwhile by another process, into the same file name with the
                # same bytes (compression is deterministic): nothing left to do.
                return self.get_stream(stream_id)
            changes = {
                "status": "sealed",
                "path": relative,
                "length": length,
                "lines": lines,
                "stored_bytes": stored,
                "sha256": digest,
                "sealed_at": tx.now,
                "updated_at": tx.now,
            }
            tx.update("streams", stream_id, changes)
            self.backend.blobs.put(tx.conn, _blob(digest), final)
            tx.execute("DELETE FROM stream_index WHERE stream_id = ?", (stream_id,))
            tx.conn.executemany(
                "INSERT INTO stream_index (stream_id, offset, line) VALUES (?, ?, ?)",
                [(stream_id, offset, line) for offset, line in index],
            )
            tx.emit(
                "stream",
                stream_id,
                "stream.sealed",
                {"length": length, "stored_bytes": stored, "sha256": digest},
            )
        failpoint("seal:committed")
        remove_quietly(plain)
        return self.get_stream(stream_id)

    # -- reading ----------------------------------------------------------------------

    def open_stream_reader(self, stream_id: int) -> tuple[Stream, Reader]:
        """The stream's row and a reader of its bytes (live or sealed alike)."""
        for _ in range(3):
            stream = self.get_stream(stream_id)
            try:
                return stream, open_reader(self.store_dir, stream)
            except FileNotFoundError:
                # Sealed on another machine (fetch it), or sealed between the row read
                # and the open (read the row again).
                self._fetch_sealed(stream)
        raise Corrupt(
            f"the file of stream {stream_id} is missing ({stream.path})",
            hint="run `agentkeep doctor`",
        )

    def sealed_file(self, stream_id: int) -> Path:
        """The local file of a sealed stream, fetched first on a shared backend when this
        machine does not have it (it may still be missing)."""
        stream = self.get_stream(stream_id)
        path = self.store_dir / stream.path
        if not path.exists():
            self._fetch_sealed(stream)
        return path

    def _fetch_sealed(self, stream: Stream) -> bool:
        if stream.status != "sealed" or stream.sha256 is None or not self.backend.blobs.shared:
            return False
        from agentkeep.services.artifacts import fetch_blob

        final = self.store_dir / stream.path
        return fetch_blob(self.backend, self._conn, self.store_dir, _blob(stream.sha256), final)

    def read_stream(self, stream_id: int, offset: int = 0, size: int | None = None) -> bytes:
        """Bytes ``[offset, offset+size)`` of a stream (to its end when size is None)."""
        if offset < 0 or (size is not None and size < 0):
            raise InvalidInput("offset and size must not be negative")
        _, reader = self.open_stream_reader(stream_id)
        try:
            end = reader.size if size is None else min(reader.size, offset + size)
            return reader.read(offset, max(end - offset, 0))
        finally:
            reader.close()

    def _line_at(self, stream_id: int, offset: int, reader: Reader) -> int:
        """How many newlines precede ``offset`` (from the nearest sparse-index entry)."""
        row = self._row(
            "SELECT offset, line FROM stream_index WHERE stream_id = ? AND offset <= ? "
            "ORDER BY offset DESC LIMIT 1",
            (stream_id, offset),
        )
        start, line = (row[0], row[1]) if row else (0, 0)
        position = start
        while position < offset:
            chunk = reader.read(position, min(FRAME_BYTES, offset - position))
            if not chunk:
                break
            line += chunk.count(b"\n")
            position += len(chunk)
        return int(line)

    def stream_lines(
        self,
        stream_id: int,
        *,
        last: int | None = None,
        grep: str | None = None,
    ) -> list[Line]:
        """The lines of a stream (the last ``last`` of them), optionally filtered by a
        regular expression (matched against the decoded text)."""
        pattern = _compile(grep)
        stream, reader = self.open_stream_reader(stream_id)
        try:
            size = reader.size
            start = 0 if last is None else _start_of_last_lines(reader, size, last)
            first_line = self._line_at(stream_id, start, reader) + 1
            return list(_lines(stream.name, reader, start, size, first_line, pattern))
        finally:
            reader.close()

    def _marks(self, stream_id: int) -> tuple[list[int], list[int]]:
        """A stream's marks: offsets (ascending) and their times."""
        try:
            rows = self._rows(
                "SELECT offset, t FROM stream_marks WHERE stream_id = ? ORDER BY offset",
                (stream_id,),
            )
        except AgentkeepError:  # a store older than schema 4
            rows = []
        return [int(r[0]) for r in rows], [int(r[1]) for r in rows]

    def session_lines(
        self,
        session_id: int,
        name: str | None = None,
        *,
        last: int | None = None,
        grep: str | None = None,
    ) -> list[Line]:
        """The lines of a session's streams in the order they were written (by the
        streams' marks; lines of a stream without marks keep its own order, after
        marked ones of the same time), the last ``last`` of them in all."""
        keyed: list[tuple[int, int, int, Line]] = []
        for position, stream in enumerate(self.session_streams(session_id, name)):
            offsets, times = self._marks(stream.id)
            for line in self.stream_lines(stream.id, last=last, grep=grep):
                keyed.append((_time_of(offsets, times, line.offset), position, line.line, line))
        keyed.sort(key=lambda item: item[:3])
        lines = [item[3] for item in keyed]
        if last is not None:
            lines = lines[len(lines) - last :] if last else []
        return lines

    def follow_stream(
        self,
        session_id: int,
        *,
        name: str | None = None,
        last: int | None = 10,
        grep: str | None = None,
        poll_seconds: float = 0.05,
        stop: Any = None,
        hold_seconds: float = HOLD_SECONDS,
    ) -> Iterator[Line]:
        """Yield lines of a session's streams as they are written, in the order they were
        written, until every stream is closed or sealed and read to its end (or
        ``stop()`` returns true).

        Only durable bytes are read (their marks commit with them), and the streams
        commit separately: while another live stream B has bytes on disk that are not
        yet committed, a line newer than B's last mark waits — those bytes may be older
        than it — until B's commit (at most ~0.3 s later) or ``hold_seconds``.

        Once everything committed is shown, nothing is read again until the backend's
        watcher (``backend.follow``, as for :meth:`EventService.follow`) reports a commit,
        checked every ``poll_seconds``.
        """
        pattern = _compile(grep)
        readers: dict[int, tuple[Stream, Reader, int, int, bytes]] = {}
        held: list[tuple[int, int, int, Line, float]] = []  # key, stream order, line, since
        first = True
        watch = self.backend.follow.watch(self.db_path, self.config, read_only=self._conn.read_only)
        try:
            while True:
                progressed = False  # bytes were read: there may be more without a commit
                streams = self.session_streams(session_id, name)
                for stream in streams:
                    if stream.id in readers:
                        continue
                    opened, reader = self.open_stream_reader(stream.id)
                    size = min(reader.size, opened.length)
                    start = 0 if last is None else _start_of_last_lines(reader, size, last)
                    line = self._line_at(stream.id, start, reader) + 1
                    readers[stream.id] = (opened, reader, start, line, b"")
                finished = 0
                batch: list[tuple[int, int, int, Line]] = []
                waiting: dict[int, int] = {}  # stream order -> last mark, if it has more
                for order, stream in enumerate(streams):
                    opened, reader, position, line, partial = readers[stream.id]
                    offsets, times = self._marks(stream.id)
                    if stream.status == "live" and reader.size > stream.length:
                        waiting[order] = times[-1] if times else 0
                    # Only the durable bytes: their marks are recorded with them.
                    chunk = reader.read(
                        position, max(0, min(FRAME_BYTES, stream.length - position))
                    )
                    if chunk:
                        progressed = True
                        position += len(chunk)
                        data = partial + chunk
                        cut = data.rfind(b"\n") + 1
                        items = list(_split(stream.name, data[:cut], position - len(data), line))
                        line += len(items)
                        for item in items if pattern is None else pattern.keep(items):
                            moment = _time_of(offsets, times, item.offset)
                            batch.append((moment, order, item.line, item))
                        partial = data[cut:]
                        readers[stream.id] = (opened, reader, position, line, partial)
                        continue
                    done = stream.status != "live" and position >= stream.length
                    if done and partial:
                        item = Line(stream.name, line, position - len(partial), _text(partial))
                        if pattern is None or pattern.search(item.text):
                            moment = _time_of(offsets, times, item.offset)
                            batch.append((moment, order, item.line, item))
                        readers[stream.id] = (opened, reader, position, line + 1, b"")
                    finished += done
                batch.sort(key=lambda entry: entry[:3])
                if first and last is not None:
                    # Each stream started at its own last N lines: N in all are shown.
                    batch = batch[len(batch) - last :] if last else []
                first = False
                now = time.monotonic()
                held += [(*entry, now) for entry in batch]
                held.sort(key=lambda entry: entry[:3])
                ended = bool(streams) and finished == len(streams)
                released = 0
                for key, order, _, item, since in held:
                    blocked = any(key > mark for o, mark in waiting.items() if o != order)
                    if blocked and not ended and now - since < hold_seconds:
                        break  # later lines wait too: the order holds
                    released += 1
                    yield item
                del held[:released]
                if released or batch:
                    continue
                session = self._row("SELECT status FROM sessions WHERE id = ?", (session_id,))
                if ended and not held and session and session[0] != "running":
                    return
                if stop is not None and stop():
                    return
                if held or progressed:
                    time.sleep(poll_seconds)  # held lines wait for time as well as commits
                    continue
                # Everything committed is shown: nothing changes until another commit.
                while not watch.changed(poll_seconds):
                    if stop is not None and stop():
                        return
        finally:
            watch.close()
            for _, reader, *_ in readers.values():
                reader.close()


class UserPattern:
    r"""A regular expression a user typed (``logs --grep``), run by RE2, whose matching
    time is linear in the text: a pattern such as ``(a+)+$`` that makes a backtracking
    engine run for minutes cannot make a command hang (issue 9 §4). RE2 has Python's
    syntax except backreferences and lookaround; those, and a pattern too large to compile,
    are refused with a clear :class:`InvalidInput`.

    RE2's Python binding costs ~1.5 µs a call, 5x Python's ``re`` on a short line, so
    :meth:`keep` searches a batch of lines joined by newlines with one multi-line scan and
    runs the per-line search only on lines a match crossed into: a match that stays inside
    one line is a match of that line, since ``(?m)`` gives ``^``/``$`` line semantics and
    ``\b`` sees the same boundary at a newline as at the end of a text. Patterns where
    that does not hold (``\A``, ``\z``, a ``-m`` flag) are searched line by line.
    """

    def __init__(self, pattern: str, *, option: str = "--grep") -> None:
        import re2  # type: ignore[import-untyped,unused-ignore]

        options = re2.Options()
        options.log_errors = False  # RE2 would print its own copy of the error on stderr
        try:
            self._line = re2.compile(pattern, options)
            batch_safe = not re.search(r"\\[Az]|\(\?[a-zA-Z]*-[a-zA-Z]*m", pattern)
            self._batch = re2.compile("(?m)" + pattern, options) if batch_safe else None
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise InvalidInput(
                f"{option} {pattern!r} is not a regular expression agentkeep can run: {reason}",
                hint="patterns use Python's syntax without backreferences or lookaround "
                "(matching is linear-time, so no pattern can hang); see "
                "https://github.com/google/re2/wiki/Syntax",
            ) from exc
        except TypeError as exc:  # a pattern RE2 cannot take (e.g. lone surrogates)
            raise InvalidInput(f"{option} {pattern!r} is not a valid regular expression") from exc
        if self._line.search(""):  # matches empty text: a batch scan would stop everywhere
            self._batch = None

    def search(self, text: str) -> bool:
        """Whether ``text`` (one line) matches."""
        return self._line.search(text) is not None

    def keep(self, lines: list[Line]) -> list[Line]:
        """The lines that match, in order (see the class docstring)."""
        if self._batch is None or len(lines) < 4:
            return [line for line in lines if self.search(line.text)]
        import bisect

        starts, position = [], 0
        for line in lines:
            starts.append(position)
            position += len(line.text) + 1
        matched: set[int] = set()
        crossed: set[int] = set()
        for found in self._batch.finditer("\n".join(line.text for line in lines)):
            first = bisect.bisect_right(starts, found.start()) - 1
            last = bisect.bisect_right(starts, found.end()) - 1
            if first == last:
                matched.add(first)
            else:
                crossed.update(range(first, last + 1))
        matched.update(i for i in crossed - matched if self.search(lines[i].text))
        return [lines[i] for i in sorted(matched)]


def compile_user_pattern(pattern: str, *, option: str = "--grep") -> UserPattern:
    """``pattern`` as a :class:`UserPattern` (raises InvalidInput with a clear message)."""
    return UserPattern(pattern, option=option)


def _compile(grep: str | None) -> UserPattern | None:
    return None if grep is None else compile_user_pattern(grep)


def _blob(sha256: str) -> str:
    """A sealed stream's name in the backend's shared bytes (``blob_name``)."""
    return f"streams/{sha256}.zst"


def _time_of(offsets: list[int], times: list[int], offset: int) -> int:
    """The time of the mark at or before ``offset`` (0 when there is none)."""
    index = bisect.bisect_right(offsets, offset) - 1
    return times[index] if index >= 0 else 0


def _record_marks(tx: Any, stream_id: int, marks: Sequence[tuple[int, int]]) -> None:
    if marks:
        tx.conn.executemany(
            "INSERT INTO stream_marks (stream_id, offset, t) VALUES (?, ?, ?)"
            " ON CONFLICT (stream_id, offset)"
            f" DO UPDATE SET t = {tx.conn.dialect.greatest('stream_marks.t', 'excluded.t')}",
            [(stream_id, offset, moment) for offset, moment in marks],
        )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\n")


def _split(name: str, data: bytes, offset: int, first_line: int) -> Iterator[Line]:
    """The lines of ``data`` (which ends with a newline). Only \\n ends a line — as in
    ``streams.lines`` — not \\r or the other separators bytes.splitlines knows."""
    line = first_line
    pieces = data.split(b"\n")
    for piece in pieces[:-1]:
        yield Line(name, line, offset, _text(piece))
        offset += len(piece) + 1
        line += 1


def _lines(
    name: str, reader: Reader, start: int, end: int, first_line: int, pattern: UserPattern | None
) -> Iterator[Line]:
    position, line, partial = start, first_line, b""
    while position < end:
        chunk = reader.read(position, min(FRAME_BYTES, end - position))
        if not chunk:
            break
        position += len(chunk)
        data = partial + chunk
        cut = data.rfind(b"\n") + 1
        items = list(_split(name, data[:cut], position - len(data), line))
        line += len(items)
        yield from items if pattern is None else pattern.keep(items)
        partial = data[cut:]
    if partial:
        item = Line(name, line, position - len(partial), _text(partial))
        if pattern is None or pattern.search(item.text):
            yield item


def _start_of_last_lines(reader: Reader, size: int, count: int) -> int:
    """The offset where the last ``count`` lines of the first ``size`` bytes begin."""
    if count <= 0:
        return size
    position = size
    wanted = count + 1  # the newline ending the last line is not a line start
    if size and reader.read(size - 1, 1) != b"\n":
        wanted -= 1
    window = 64 * 1024
    while position > 0:
        start = max(0, position - window)
        chunk = reader.read(start, position - start)
        index = len(chunk)
        while True:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            wanted -= 1
            if wanted == 0:
                return start + index + 1
        position = start
        window = min(window * 2, FRAME_BYTES)
    return 0


class _Sha256:
    """``hashlib.sha256()``, importing hashlib (OpenSSL: ~7 ms of a cold start) only when
    there are bytes to hash: an empty stream (``agentkeep run -- true``) needs neither it
    nor zstd to be sealed."""

    __slots__ = ("_hash",)

    EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    def __init__(self) -> None:
        self._hash: Any = None

    def update(self, data: bytes) -> None:
        if self._hash is None:
            import hashlib

            self._hash = hashlib.sha256()
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self.EMPTY if self._hash is None else str(self._hash.hexdigest())


def _compress_file(
    plain: Path, tmp: Path, store_dir: Path
) -> tuple[int, int, str, int, list[tuple[int, int]]]:
    """Write ``plain`` as independent zstd frames plus a seek table to ``tmp`` (both in
    ``store_dir``, whose links are never followed).

    Returns (length, lines, sha256, stored bytes, the sparse index: (offset, lines before
    it) of each frame)."""
    module: Any = None
    digest = _Sha256()
    frames: list[tuple[int, int]] = []
    index: list[tuple[int, int]] = []
    length = lines = stored = 0
    with os.fdopen(open_file(plain, os.O_RDONLY, within=store_dir), "rb") as source:
        fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=READ_ONLY_FILE)
        try:
            while piece := source.read(FRAME_BYTES):
                if module is None:
                    module = zstd()
                index.append((length, lines))
                digest.update(piece)
                lines += piece.count(b"\n")
                length += len(piece)
                frame = module.compress(piece, ZSTD_LEVEL)
                write_chunks(fd, (frame,))
                frames.append((len(frame), len(piece)))
                stored += len(frame)
            table = seek_table_bytes(frames)
            write_chunks(fd, (table,))
            stored += len(table)
        finally:
            os.close(fd)
    return length, lines, digest.hexdigest(), stored, index


def _verify_sealed(path: Path, sha256: str, length: int) -> None:
    fd = open_file(path, os.O_RDONLY)
    try:
        reader = SealedReader(fd)
        digest = _Sha256()
        for index in range(len(reader.table.starts)):
            digest.update(reader._frame(index))
    finally:
        os.close(fd)
    if reader.size != length or digest.hexdigest() != sha256:
        raise Corrupt(
            f"sealing {path.name} produced a file that does not match its source",
            hint="the plain stream was kept; run `agentkeep doctor`",
        )


def verify_sealed_file(path: Path, sha256: str, length: int) -> str | None:
    """A problem with a sealed stream file, or None when it matches its hash."""
    try:
        _verify_sealed(path, sha256, length)
    except FileNotFoundError:
        return "file missing"
    except Corrupt as exc:
        return exc.message
    except Exception as exc:
        return f"unreadable: {exc}"
    return None
