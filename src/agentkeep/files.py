"""The file side of the store: durable writes, temp-file names, zstd, the disk reserve.

Bulk bytes live in files, never in hot rows (DESIGN.md principle 6). Every file agentkeep
creates for good goes through :func:`publish`: written to a temp name in the destination
directory, fsynced, renamed into place, and the directory fsynced — only then may a row
refer to it. Temp names (:func:`temp_path`) carry the writer's pid, so ``doctor`` can tell
a crash's leftovers from a write in progress.

Failpoints (``AGENTKEEP_FAILPOINT``) mark each step for the crash-matrix tests:
``file:mid_write``, ``file:after_fsync``, ``file:after_rename``.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentkeep.backend.sqlite import fsync_path, translate_os_error
from agentkeep.failpoints import failpoint

ZSTD_LEVEL = 3  # measured (performance.md): 3.9x on agent output at ~160 MB/s
RESERVE_NAME = "reserve"
RESERVE_BYTES = 4 * 1024 * 1024
_TEMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]{8}$")
HOST = socket.gethostname()


def zstd() -> Any:
    """The zstd module, imported on first use (the hook path stores without compressing
    and must not import third-party code). Python 3.14 ships it in the standard library;
    older versions use its backport, ``backports.zstd``, which has the same API."""
    try:
        from compression import zstd as module  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - depends on the interpreter
        from backports import zstd as module  # type: ignore[no-redef,import-not-found,unused-ignore]
    return module


def compressor(level: int = ZSTD_LEVEL) -> Any:
    return zstd().ZstdCompressor(level=level)


def decompress(data: bytes) -> bytes:
    result: bytes = zstd().decompress(data)
    return result


def temp_path(final: Path) -> Path:
    """A temp name beside ``final`` that names this process (see :func:`temp_owner`)."""
    return final.with_name(f"{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def temp_owner(path: Path) -> int | None:
    """The pid that created a temp file, or None if ``path`` is not a temp name."""
    match = _TEMP.search(path.name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid runs on this machine (False for None)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_chunks(fd: int, chunks: Iterable[bytes]) -> int:
    """Write every chunk to ``fd``; returns the bytes written."""
    total = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            total += written
        failpoint("file:mid_write")
    return total


def publish(tmp: Path, final: Path) -> None:
    """Make ``tmp`` durable under the name ``final`` (fsync, rename, fsync the directory).

    ``tmp`` must be in ``final``'s directory. Raises StorageFull/StorageError; ``tmp`` is
    removed on failure.
    """
    try:
        fsync_path(tmp)
        failpoint("file:after_fsync")
        os.replace(tmp, final)
        failpoint("file:after_rename")
        fsync_path(final.parent, directory=True)
    except OSError as exc:
        remove_quietly(tmp)
        raise translate_os_error(exc, str(final)) from exc


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """A temp path beside ``final`` to write; published as ``final`` (:func:`publish`) when
    the block succeeds, removed when it fails. An OSError becomes StorageFull/StorageError.
    """
    tmp = temp_path(final)
    try:
        yield tmp
    except OSError as exc:
        remove_quietly(tmp)
        raise translate_os_error(exc, str(final)) from exc
    except BaseException:
        remove_quietly(tmp)
        raise
    publish(tmp, final)


def make_dirs(path: Path) -> None:
    """Create ``path`` and its parents, fsyncing each new directory's parent."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            fsync_path(directory.parent, directory=True)
    except OSError as exc:
        raise translate_os_error(exc, str(path)) from exc


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # cleanup of our own leftovers; doctor reports whatever stays


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def ensure_reserve(store_dir: Path) -> bool:
    """Keep a small preallocated file that ``gc`` deletes first on a full disk, so the
    cleanup transaction has room for its WAL frames. Returns whether it exists now."""
    path = store_dir / RESERVE_NAME
    if file_size(path) >= RESERVE_BYTES:
        return True
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError:
        remove_quietly(tmp)  # no room for it now; gc recreates it once space is back
        return False


def release_reserve(store_dir: Path) -> int:
    """Delete the reserve file; returns the bytes freed."""
    path = store_dir / RESERVE_NAME
    size = file_size(path)
    remove_quietly(path)
    return size


class maintenance_lock:  # lower case: used like a function, `with maintenance_lock(d):`
    """An flock on ``.agentkeep/maintenance.lock``: ``gc`` holds it exclusively while it
    deletes files; ``backup`` and ``export`` hold it shared while they copy them, so a file
    a snapshot refers to cannot vanish before it is copied. Writers never take it."""

    def __init__(self, store_dir: Path, *, shared: bool = False) -> None:
        self.path = store_dir / "maintenance.lock"
        self.shared = shared
        self.fd = -1

    def __enter__(self) -> maintenance_lock:
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise translate_os_error(exc, str(self.path)) from exc
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock
        self.fd = -1
