"""The commit high-water mark: a small file outside the database that remembers the newest
commit the store acknowledged, so a rollback of the database is detected (principle
10 of docs/design.md; docs/design.md "Recovery").

SQLite cannot see its own rollback: deleting a hot ``-wal``, deleting ``-shm`` while
another process holds the store, or a flipped byte in a WAL frame (recovery stops at the
first frame whose checksum fails) silently drops committed transactions, and
``integrity_check`` still says ``ok``. The mark lives in ``.agentkeep/high-water-mark``:
one JSON line padded to a fixed size, with a CRC::

    {"v":1,"seq":812,"at":"2026-12-03T18:02:11.123456Z","boot":"…","sync":"FULL",
     "damaged":null,"crc":…}

``seq``/``at`` name the newest event of the last write transaction that committed (events
are never deleted, and every state change writes one). ``damaged`` records corruption once
it is known (see below).

Protocol (all of it under the writers' queue lock, ``state.db.lock``, so marks are written
in commit order):

1. After ``BEGIN IMMEDIATE``, the mark is read and the database must hold the event it
   names with the same time. If it does not, the database lost commits, or lost them and
   then reused their sequence numbers: :class:`RollbackDetected`, and the transaction is
   rolled back. If the mark records damage: :class:`Corrupt`. Cost: one ``pread`` and one
   lookup by primary key.
2. Before ``COMMIT`` the newest event is read; after ``COMMIT`` returns, the mark is
   rewritten with ``pwrite`` when it changed. No fsync: the page cache survives a killed
   process, which is the loss this detects (a deleted side file, a damaged frame). A
   process that dies between COMMIT and the mark write leaves the mark *behind* the
   database, which is never an alarm.

Power loss cannot raise a false alarm: with ``synchronous=FULL`` the COMMIT is durable
before the mark is written, so after a power cut the database is at or ahead of whatever
part of the mark reached the disk; a torn or empty mark file is unreadable, which means
"no mark" (the next commit writes a new one). With ``synchronous=NORMAL`` a power cut may
legitimately lose the last commits (that is NORMAL's documented trade-off), so a rollback
found against a mark written by a NORMAL-mode writer during an earlier boot is accepted,
not reported.

Known damage: when SQLite reports ``SQLITE_CORRUPT``/``SQLITE_NOTADB`` on any connection
of the store, or ``db check``/``doctor`` find the database damaged, ``damaged`` is set (and
fsynced: it is rare and must survive). From then on every open refuses writes until the
user restores a backup or accepts the database as it is (``agentkeep db accept``), which
also resets the mark. Damage no statement touched stays unknown until a check runs:
``doctor`` runs ``quick_check``, ``db check`` the full ``integrity_check``.

Only the standard library is used (and neither ``typing`` nor ``dataclasses``, which pull in
``inspect``), so the hook's fast path shares it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - the hook's fast path imports this module: no typing
    from typing import Any

MARK_NAME = "high-water-mark"
RECORD_BYTES = 512  # one sector: a power cut cannot tear it in practice, the CRC covers the rest
_EVENT_AT = "SELECT at FROM events WHERE seq = ?"
_PLAIN = re.compile(r"[A-Za-z0-9:.@+_-]*")  # needs no JSON escaping
_NEWEST = "SELECT seq, at FROM events ORDER BY seq DESC LIMIT 1"


def boot_id() -> str:
    """This boot of the machine (Linux's boot_id; elsewhere the boot time, to the minute)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return f"boot@{round((time.time() - time.monotonic()) / 60)}"


_BOOT = boot_id()


class Mark:
    """One high-water mark record (immutable by convention)."""

    __slots__ = ("at", "boot", "damaged", "seq", "sync")

    def __init__(
        self,
        seq: int,
        at: str | None,
        boot: str,
        sync: str,
        damaged: dict[str, str] | None = None,
    ) -> None:
        self.seq = seq
        self.at = at
        self.boot = boot
        self.sync = sync
        self.damaged = damaged

    def _key(self) -> tuple[object, ...]:
        return (self.seq, self.at, self.boot, self.sync, self.damaged)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mark) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.seq, self.at, self.boot, self.sync))

    def __repr__(self) -> str:
        return f"Mark(seq={self.seq}, at={self.at!r}, sync={self.sync}, damaged={self.damaged})"

    def encode(self) -> bytes:
        if self.damaged is None and _PLAIN.fullmatch(f"{self.at or ''}{self.boot}{self.sync}"):
            # The common case, once per commit: formatted by hand (json.dumps costs ~3x).
            at = "null" if self.at is None else f'"{self.at}"'
            text = (
                f'{{"v":1,"seq":{int(self.seq)},"at":{at},"boot":"{self.boot}",'
                f'"sync":"{self.sync}","damaged":null}}'
            ).encode()
        else:
            body = {
                "v": 1,
                "seq": self.seq,
                "at": self.at,
                "boot": self.boot,
                "sync": self.sync,
                "damaged": self.damaged,
            }
            text = json.dumps(body, separators=(",", ":")).encode()
        # The CRC covers the JSON object as written; it is appended as its last member.
        line = text[:-1] + b',"crc":%d}' % zlib.crc32(text)
        if len(line) >= RECORD_BYTES:  # a very long damage reason: keep the record whole
            assert self.damaged is not None
            short = {**self.damaged, "reason": self.damaged.get("reason", "")[:120]}
            return Mark(self.seq, self.at, self.boot, self.sync, short).encode()
        return line + b" " * (RECORD_BYTES - 1 - len(line)) + b"\n"


def decode(data: bytes) -> Mark | None:
    """The mark in ``data``, or None when it is empty, torn or not ours."""
    try:
        line = data.rstrip(b" \n")
        head, sep, tail = line.rpartition(b',"crc":')
        if not sep or zlib.crc32(head + b"}") != int(tail.rstrip(b"}")):
            return None
        record = json.loads(head + b"}")
        if record.get("v") != 1:
            return None
        damaged = record.get("damaged")
        return Mark(
            seq=int(record["seq"]),
            at=record.get("at"),
            boot=str(record.get("boot", "")),
            sync=str(record.get("sync", "FULL")),
            damaged=dict(damaged) if isinstance(damaged, dict) else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None


class Verdict:
    """What the mark says about the database. ``problem``: ``None``, ``"rollback"`` or
    ``"damaged"``; ``message`` says what in a sentence."""

    __slots__ = ("db_seq", "mark", "message", "problem")

    def __init__(
        self,
        problem: str | None,
        message: str = "",
        mark: Mark | None = None,
        db_seq: int = 0,
    ) -> None:
        self.problem = problem
        self.message = message
        self.mark = mark
        self.db_seq = db_seq


class CommitGuard:
    """The mark of one store, as used by one connection (see the module docstring)."""

    __slots__ = ("_cache", "_fd", "_written", "path", "sync")

    def __init__(self, path: str, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.sync = synchronous.upper()
        self._fd: int | None = None
        self._cache: tuple[bytes, Mark | None] = (b"", None)  # the last record decoded
        self._written = b""  # the record this guard wrote after its last commit

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Mark | None:
        return self._decode(self._read_bytes())

    def _read_bytes(self) -> bytes:
        try:
            if self._fd is not None:
                data = os.pread(self._fd, RECORD_BYTES, 0)
            else:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    data = os.pread(fd, RECORD_BYTES, 0)
                finally:
                    os.close(fd)
        except OSError:
            return b""
        return data

    def _decode(self, data: bytes) -> Mark | None:
        if not data:
            return None
        if data != self._cache[0]:  # most reads see the record this process wrote last
            self._cache = (data, decode(data))
        return self._cache[1]

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def judge(self, execute: Any) -> Verdict:
        """Compare the mark with the database ``execute`` reads (a callable running SQL).

        Fast path: the mark is still the record this guard wrote after its own last commit,
        so no agentkeep writer has committed since, and the database is as this connection
        left it (a writer that does not advance the mark, the hook, can only put it ahead).
        """
        data = self._read_bytes()
        if data and data == self._written:
            return Verdict(None)
        mark = self._decode(data)
        if mark is None:
            return Verdict(None)
        if mark.damaged is not None:
            return Verdict(
                "damaged",
                f"the database was found damaged ({mark.damaged.get('reason', 'unknown')}) "
                f"at {mark.damaged.get('at', '?')}",
                mark,
            )
        newest = execute(_NEWEST).fetchone()
        db_seq = int(newest[0]) if newest else 0
        if mark.seq <= 0:
            return Verdict(None, mark=mark, db_seq=db_seq)
        row = (
            newest
            if newest and newest[0] == mark.seq
            else execute(_EVENT_AT, (mark.seq,)).fetchone()
        )
        if row is not None and row[-1] == mark.at:
            return Verdict(None, mark=mark, db_seq=db_seq)
        if mark.sync == "NORMAL" and mark.boot != _BOOT:
            # synchronous=NORMAL may lose the last commits in a power cut: its trade-off.
            return Verdict(None, mark=mark, db_seq=db_seq)
        if row is None:
            what = (
                f"the database ends at event {db_seq}, but event {mark.seq} "
                f"({mark.at}) was committed"
            )
        else:
            what = (
                f"event {mark.seq} was committed at {mark.at}, but the database holds a "
                f"different event {mark.seq} (at {row[-1]}): commits were lost, then "
                "written over"
            )
        return Verdict("rollback", f"commits are missing from the database: {what}", mark, db_seq)

    # -- writing ---------------------------------------------------------------------------

    def _open_for_write(self) -> int:
        if self._fd is None:
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
        return self._fd

    def newest(self, execute: Any) -> tuple[int, str | None]:
        row = execute(_NEWEST).fetchone()
        return (int(row[0]), row[1]) if row else (0, None)

    def advance(self, seq: int, at: str | None) -> None:
        """Record the commit of event ``seq`` (call after COMMIT, under the writer lock).
        Re-reads the mark first, so damage a reader recorded meanwhile is kept."""
        before = self.read()  # usually a cache hit: the record this guard wrote last
        if seq <= 0 or (before is not None and before.seq == seq and before.at == at):
            return
        mark = Mark(seq, at, _BOOT, self.sync, before.damaged if before is not None else None)
        record = mark.encode()
        try:  # (not contextlib.suppress: this runs on every commit)
            os.pwrite(self._open_for_write(), record, 0)
        except OSError:  # a mark we cannot write is a mark that lags
            return
        self._cache = (record, mark)
        self._written = record

    def reset(self, seq: int, at: str | None) -> None:
        """The user's decision: the database as it is now is the truth (durable)."""
        fd = self._open_for_write()
        os.pwrite(fd, Mark(seq, at, _BOOT, self.sync, None).encode(), 0)
        os.ftruncate(fd, RECORD_BYTES)
        os.fsync(fd)

    def record_damage(self, reason: str, at: str) -> None:
        """Remember that the database is damaged (durable; best effort on a read-only
        store, where nothing can be written anyway)."""
        mark = self.read()
        if mark is not None and mark.damaged is not None:
            return
        damaged = {"at": at, "reason": reason}
        record = (
            Mark(mark.seq, mark.at, mark.boot, mark.sync, damaged)
            if mark is not None
            else Mark(0, None, _BOOT, self.sync, damaged)
        )
        with contextlib.suppress(OSError):
            fd = self._open_for_write()
            os.pwrite(fd, record.encode(), 0)
            os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
