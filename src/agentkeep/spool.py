"""The hook spool: deliveries waiting for the writer lock (principle 3 of docs/design.md).

When the writer lock is not free within ``hook.lock_wait_ms``, the hook writes its
delivery, already redacted, to ``.agentkeep/spool/`` and exits; the next writer (a hook
that gets the lock, any library or CLI write, an importer between batches) applies the
records in order and removes them. See docs/design.md, "The hook spool".

The protocol, one file per delivery:

- A record is written to ``<name>.tmp-<pid>-<8 hex>`` (``O_EXCL``, mode 0600), fsynced,
  renamed to ``<name>``, and the directory is fsynced: a record is whole under its final
  name or absent. ``<name>`` is ``<time in ns, 20 digits>-<pid>-<8 hex>.delivery``, so
  the names sort in delivery order.
- A record is a frame: the line ``agentkeep-spool 1 <body bytes> <sha256 of body>``, then
  the body, a JSON object in ASCII. A frame that does not check out is never applied.
- ``spool/`` exists only while it holds something: the first writer creates it (and fsyncs
  ``.agentkeep``), a drainer that empties it removes it. So a writer's "anything to
  drain?" is one ``stat`` (:func:`pending`).
- Drainers hold the writer lock while they list, apply and remove records, so two never
  apply the same record at once; a record is removed only after the transaction that
  applied it committed. A drainer killed in between leaves records whose deliveries are
  stored: the next drainer finds them stored (the capture dedupe key) and removes them.
- A record that cannot be applied (a frame that does not check out, a delivery the writer
  refuses) is moved to ``.agentkeep/spool-quarantine/`` with a ``.reason`` file beside it,
  never deleted; ``agentkeep doctor`` reports it. A temp file whose process is gone is a
  write that was cut short: promoted if its frame checks out, quarantined otherwise.

Standard library only: this module is on the hook's path.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time

from agentkeep.capture import _sha256

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any

SPOOL_DIR = "spool"
QUARANTINE_DIR = "spool-quarantine"
SUFFIX = ".delivery"
MAGIC = b"agentkeep-spool 1 "
FORMAT = 1
# How long a record may wait before `doctor` calls the spool undrained (a problem).
GRACE_S = 60

_RECORD = re.compile(r"^(\d{20})-\d+-[0-9a-f]{8}\.delivery$")
_TEMP = re.compile(r"^(.+\.delivery)\.tmp-(\d+)-[0-9a-f]{8}$")


class SpoolError(Exception):
    """A record that cannot be read back (``str()`` says why, never its content)."""


def spool_path(store_dir: str) -> str:
    return os.path.join(store_dir, SPOOL_DIR)


def quarantine_path(store_dir: str) -> str:
    return os.path.join(store_dir, QUARANTINE_DIR)


def pending(store_dir: str) -> bool:
    """Whether the spool may hold something: one ``stat`` (the directory exists only
    while it is not empty)."""
    try:
        os.stat(spool_path(store_dir))
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unreadable: let the drainer find out and say so
    return True


# -- frames -----------------------------------------------------------------------------------


def encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    return MAGIC + f"{len(body)} {_sha256(body).hexdigest()}\n".encode() + body


def decode(data: bytes) -> dict[str, Any]:
    """The record of a frame, or SpoolError."""
    if not data.startswith(MAGIC):
        raise SpoolError("not a spool record (no header)")
    head, newline, body = data[len(MAGIC) :].partition(b"\n")
    fields = head.split(b" ")
    if not newline or len(fields) != 2 or not fields[0].isdigit():
        raise SpoolError("damaged header")
    if int(fields[0]) != len(body):
        raise SpoolError(f"truncated or extended: {len(body)} bytes, the header says {fields[0]!r}")
    if _sha256(body).hexdigest().encode() != fields[1]:
        raise SpoolError("checksum mismatch")
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise SpoolError("the body is not JSON") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise SpoolError("unknown record format")
    return record


# -- writing ----------------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dir(path: str) -> None:
    """Create ``path`` (0700) if needed; a new directory's entry is made durable. A
    symlink in its place is refused: nothing inside the store follows one out of it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        _refuse_symlink(path)
        return
    _fsync_dir(os.path.dirname(path))


def _refuse_symlink(path: str) -> None:
    if os.path.islink(path):
        raise OSError(
            errno.ELOOP, f"{os.path.basename(path)} is a symlink; agentkeep does not follow it"
        )


def _write_new(directory: str, name: str, data: bytes) -> str:
    """``data`` durably under ``directory/name`` (tmp → fsync → rename → fsync dir)."""
    final = os.path.join(directory, name)
    tmp = f"{final}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        _unlink_quietly(tmp)  # our own unfinished write, never a record
        raise
    _fsync_dir(directory)
    return final


def append(store_dir: str, record: dict[str, Any]) -> str:
    """Write one record durably; returns its path. Raises OSError (a full disk, ...)."""
    data = encode(record)
    directory = spool_path(store_dir)
    name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
    for attempt in range(3):
        _make_dir(directory)
        try:
            return _write_new(directory, name, data)
        except FileNotFoundError:
            if attempt == 2:  # a drainer removed the emptied directory meanwhile: again
                raise
    raise AssertionError("unreachable")


def rewrite(path: str, record: dict[str, Any]) -> None:
    """Replace a record atomically (a spilled payload's record then names its artifact)."""
    directory, name = os.path.split(path)
    _write_new(directory, name, encode(record))


# -- reading and draining (callers hold the writer lock) ---------------------------------------


def read(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return decode(handle.read())


def records(store_dir: str, rejected: list[str] | None = None) -> list[str]:
    """The paths of the records waiting, oldest first. Temp files of processes that are
    gone are promoted (their frame checks out) or quarantined; other names are
    quarantined (why is appended to ``rejected``). Call it holding the writer lock."""
    rejected = [] if rejected is None else rejected
    directory = spool_path(store_dir)
    _refuse_symlink(directory)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if _RECORD.match(name):
            found.append(name)
            continue
        temp = _TEMP.match(name)
        if temp is not None:
            if _pid_alive(int(temp.group(2))):
                continue  # being written
            path = os.path.join(directory, name)
            try:
                read(path)
            except (OSError, SpoolError) as exc:
                rejected.append(f"{name}: a write cut short ({exc})")
                quarantine(store_dir, path, rejected[-1])
                continue
            final = temp.group(1)
            os.replace(path, os.path.join(directory, final))
            _fsync_dir(directory)
            if _RECORD.match(final):
                found.append(final)
            continue
        rejected.append(f"{name}: not a spool record name")
        quarantine(store_dir, os.path.join(directory, name), rejected[-1])
    return [os.path.join(directory, name) for name in sorted(found)]


def remove(paths: list[str]) -> None:
    """Remove records whose deliveries are committed (a lost unlink only makes the next
    drainer find them stored), then the spool directory if that emptied it."""
    for path in paths:
        _unlink_quietly(path)
    if paths:
        tidy(os.path.dirname(os.path.dirname(paths[0])))


def tidy(store_dir: str) -> None:
    """Remove the spool directory if it is empty (see :func:`pending`)."""
    try:
        os.rmdir(spool_path(store_dir))
    except OSError:
        return  # not empty (a record arrived meanwhile), or gone


def quarantine(store_dir: str, path: str, reason: str) -> str:
    """Move a record that cannot be applied out of the spool, with why beside it."""
    target_dir = quarantine_path(store_dir)
    _make_dir(target_dir)
    name = os.path.basename(path)
    target = os.path.join(target_dir, name)
    _write_new(target_dir, name + ".reason", f"{reason}\n".encode("utf-8", "replace"))
    os.replace(path, target)
    _fsync_dir(target_dir)
    _fsync_dir(os.path.dirname(path))
    return target


# -- looking (doctor, status; no lock) -------------------------------------------------------


class Status:
    """What the spool holds: ``waiting`` records (and temp files), the time the oldest was
    written (epoch seconds, None when empty), ``quarantined`` records."""

    __slots__ = ("oldest", "quarantined", "waiting")

    def __init__(self, waiting: int, oldest: float | None, quarantined: int) -> None:
        self.waiting = waiting
        self.oldest = oldest
        self.quarantined = quarantined


def status(store_dir: str) -> Status:
    waiting = 0
    oldest: float | None = None
    try:
        names = os.listdir(spool_path(store_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        match = _RECORD.match(name)
        if match is not None:
            at = int(match.group(1)) / 1e9
        else:
            try:
                at = os.stat(os.path.join(spool_path(store_dir), name)).st_mtime
            except OSError:
                continue
        waiting += 1
        oldest = at if oldest is None else min(oldest, at)
    try:
        quarantined = sum(
            1
            for name in os.listdir(quarantine_path(store_dir))
            if not name.endswith(".reason") and ".reason.tmp-" not in name
        )
    except FileNotFoundError:
        quarantined = 0
    return Status(waiting, oldest, quarantined)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return
