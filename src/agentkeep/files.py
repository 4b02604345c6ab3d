"""The file side of the store: durable writes, temp-file names, zstd, the disk reserve.

Bulk bytes live in files, never in hot rows (principle 6 of docs/design.md). Every file agentkeep
creates for good goes through :func:`publish`: written to a temp name in the destination
directory, fsynced, renamed into place, and the directory fsynced — only then may a row
refer to it. Temp names (:func:`temp_path`) carry the writer's pid, so ``doctor`` can tell
a crash's leftovers from a write in progress.

Failpoints (``AGENTKEEP_FAILPOINT``) mark each step for the crash-matrix tests:
``file:mid_write``, ``file:after_fsync``, ``file:after_rename``.

Everything agentkeep writes is private to the user and nothing inside the store follows a
symbolic link out of it (principle 5 and
"Permissions and links" in docs/design.md):

- directories are created 0700 and files 0600 (:data:`PRIVATE_DIR`, :data:`PRIVATE_FILE`),
  whatever the umask; :func:`tighten_store` fixes a store made by older versions;
- :func:`open_file` opens or creates a file with ``O_NOFOLLOW``, and with ``within=`` it
  refuses a path whose directories below the store directory include a link;
  :func:`make_dirs` with ``within=`` does the same for directories. A link committed inside
  ``.agentkeep/`` of a cloned repository (``streams -> /elsewhere``) is refused with a
  :class:`~agentkeep.errors.StorageError` that names it, never written through.

This module is importable on the hook's fast path: at import it loads only ``os``,
``errno``, ``stat`` and :mod:`agentkeep.errors`; everything else is imported where used.
"""

from __future__ import annotations

import errno
import os
import stat

from agentkeep.errors import AgentkeepError, StorageError, StorageFull

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing and pathlib cost the hook milliseconds
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any

# Level 3: 3.9x on agent output at ~160 MiB/s; levels 1 and 9 gave 3.5x at 240 and 4.4x at 38
# (100 MiB of terminal and agent text; docs/design.md "Bulk bytes: streams and artifacts").
ZSTD_LEVEL = 3
RESERVE_NAME = "reserve"
RESERVE_BYTES = 4 * 1024 * 1024
HOST = os.uname().nodename  # what socket.gethostname() returns, without importing socket
PRIVATE_DIR = 0o700  # every directory agentkeep creates (like ~/.ssh)
PRIVATE_FILE = 0o600  # every file agentkeep creates; immutable files are 0400
READ_ONLY_FILE = 0o400  # artifacts and sealed streams, which never change once written
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def failpoint(name: str) -> None:
    from agentkeep.failpoints import failpoint as hit

    hit(name)


def fsync_path(path: Path | str, *, directory: bool = False) -> None:
    """fsync a file (or a directory, to make a rename or create in it durable)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def translate_os_error(exc: OSError, what: str) -> AgentkeepError:
    """Map an OSError from agentkeep's own file handling to the error tree."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageFull(
            f"no space left while writing {what} ({os.strerror(exc.errno or 0)})",
            hint="free disk space, then retry",
        )
    return StorageError(f"could not write {what}: {exc.strerror or exc}")


# -- links and permissions -------------------------------------------------------------------


class LinkRefused(StorageError):
    """A symbolic link where agentkeep writes inside its store: refused every time until
    the user removes it (so, unlike a full disk, retrying later does not help)."""


def link_refused(path: Path | str) -> StorageError:
    """The error for a symbolic link found where agentkeep writes inside its store."""
    return LinkRefused(
        f"{path} is a symbolic link; agentkeep never follows links inside its store",
        hint="remove the link (a cloned repository may have brought it) and retry; "
        "`agentkeep doctor` lists every link in the store",
    )


def check_no_links(within: Path | str, path: Path | str) -> None:
    """Raise :func:`link_refused` if ``path`` or a directory between ``within`` and it is a
    symbolic link (components that do not exist yet are fine). ``within`` itself may be
    reached through links: it is the store directory the user chose."""
    base = os.fspath(within)
    relative = os.path.relpath(os.fspath(path), base)
    if relative == ".":
        return
    if relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative):
        raise StorageError(f"{path} is outside the store {within}")
    current = base
    for part in relative.split(os.sep):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise StorageError(f"{current} is not a directory") from exc
            raise translate_os_error(exc, current) from exc
        if stat.S_ISLNK(mode):
            raise link_refused(current)


def open_file(
    path: Path | str,
    flags: int,
    *,
    mode: int = PRIVATE_FILE,
    within: Path | str | None = None,
) -> int:
    """``os.open`` that never follows a link at ``path`` (``O_NOFOLLOW``, ``O_CLOEXEC``),
    creates files private (``mode``, default 0600) and opens only a regular file (a FIFO
    or a device planted in the store is refused, without blocking: ``O_NONBLOCK``, then
    ``fstat``). With ``within`` (the store directory), the directories between it and
    ``path`` are checked too (:func:`check_no_links`).

    The one way to open or create a file inside the store: streams, artifacts, spool,
    logs, locks and caches all use it. Raises StorageError for a link or a file that is not
    a regular one, OSError otherwise (FileNotFoundError, FileExistsError, ENOSPC…).
    """
    if within is not None:
        check_no_links(within, os.path.dirname(os.fspath(path)))
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (
            exc.errno == errno.EEXIST and os.path.islink(path)  # O_EXCL on a link
        ):
            raise link_refused(path) from exc
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise StorageError(f"{path} is not a regular file") from exc
        raise
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise StorageError(
            f"{path} is not a regular file",
            hint="remove it (a cloned repository may have brought it) and retry",
        )
    if _NONBLOCK:
        os.set_blocking(fd, True)  # a regular file: the flag only mattered for the open
    return fd


def write_new_file(path: Path | str, data: bytes) -> bool:
    """Create ``path`` (0600, never through a link) holding ``data``; False when it exists."""
    try:
        fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    try:
        write_chunks(fd, (data,))
    finally:
        os.close(fd)
    return True


def make_private(path: Path | str) -> bool:
    """Remove group and other permissions from ``path`` (never through a link); returns
    whether it changed. Directories become 0700, files keep their owner bits (0600/0400).
    Paths this user does not own are left alone."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return False
    wanted = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else stat.S_IMODE(st.st_mode) & 0o700
    try:
        os.chmod(path, wanted)
    except OSError:  # not ours (another user's store read by us): nothing to do
        return False
    return True


def tighten_store(store_dir: Path | str, *, deep: bool = False) -> list[str]:
    """Make the store private: the directory 0700, its entries without group/other bits.

    Every writable open runs the shallow pass (one listdir: the store directory and its
    top-level entries, which include ``state.db`` and its ``-wal``/``-shm``); ``doctor
    --fix`` runs the deep pass over every directory below. Links are never followed.
    Returns the paths changed, relative to the store directory.
    """
    base = os.fspath(store_dir)
    changed = ["."] if make_private(base) else []
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if make_private(entry.path):
                changed.append(os.path.relpath(entry.path, base))
            if deep and entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
    return sorted(changed)


DATABASE_SIDE_FILES = ("-wal", "-shm", "-journal")


def check_database_files(db: Path | str) -> None:
    """Refuse a database whose file or ``-wal``/``-shm``/``-journal`` is a symbolic link:
    SQLite would follow it and write wherever it points."""
    for suffix in ("", *DATABASE_SIDE_FILES):
        path = f"{os.fspath(db)}{suffix}"
        if os.path.islink(path):
            raise link_refused(path)


def make_database_private(db: Path | str) -> None:
    """Make a database file (just opened or created by SQLite, before its first write) and
    its side files 0600. SQLite creates ``-wal``/``-shm``/``-journal`` with the mode of the
    database file, so they follow."""
    for suffix in ("", *DATABASE_SIDE_FILES):
        make_private(f"{os.fspath(db)}{suffix}")


def secure_store(store_dir: Path | str) -> list[str]:
    """What a writable open of the store does first: refuse a symbolic link among the
    store directory's entries (``streams -> /elsewhere`` committed in a cloned repository;
    every writer below also refuses links on its own path), then make the directory and
    its entries private (:func:`tighten_store`, shallow). Returns the paths tightened."""
    base = os.fspath(store_dir)
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []  # opening the database reports what is wrong with the directory
    for entry in entries:
        if entry.is_symlink():
            raise link_refused(entry.path)
    changed = tighten_store(base)
    if changed:
        _tightened[os.path.abspath(base)] = changed
    return changed


_tightened: dict[str, list[str]] = {}  # store dir -> what an open made private, until told


def tightened_on_open(store_dir: Path | str, *, forget: bool = True) -> list[str]:
    """What opening ``store_dir`` in this process made private, so the CLI and ``doctor``
    can report it (``doctor`` reports it once: it forgets)."""
    key = os.path.abspath(os.fspath(store_dir))
    return _tightened.pop(key, []) if forget else _tightened.get(key, [])


def store_problems(store_dir: Path | str) -> tuple[list[str], list[str]]:
    """``(links, exposed)`` below the store directory: symbolic links (which agentkeep
    refuses to write through) and paths that other users may read or enter, each relative
    to the store directory. Walks everything, never following links (for ``doctor``)."""
    base = os.fspath(store_dir)
    links: list[str] = []
    exposed: list[str] = []
    try:
        if os.lstat(base).st_mode & 0o077:
            exposed.append(".")
    except OSError:
        return links, exposed
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            relative = os.path.relpath(entry.path, base)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links.append(relative)
                continue
            if st.st_mode & 0o077:
                exposed.append(relative)
            if stat.S_ISDIR(st.st_mode):
                pending.append(entry.path)
    return sorted(links), sorted(exposed)


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
    return final.with_name(f"{final.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def temp_owner(path: Path) -> int | None:
    """The pid that created a temp file, or None if ``path`` is not a temp name."""
    import re

    match = re.search(r"\.tmp-(\d+)-[0-9a-f]{8}$", path.name)
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


def staged_file(final: Path) -> AbstractContextManager[Path]:
    """A temp path beside ``final`` to write; published as ``final`` (:func:`publish`) when
    the block succeeds, removed when it fails. An OSError becomes StorageFull/StorageError.
    Create the temp file private (:func:`open_file`, or ``os.open`` with mode 0600).
    """
    from contextlib import contextmanager

    @contextmanager
    def staged() -> Iterator[Path]:
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

    return staged()


def make_dirs(path: Path, *, within: Path | None = None) -> None:
    """Create ``path`` and its parents (0700), fsyncing each new directory's parent.

    With ``within`` (the store directory), no directory between it and ``path`` may be a
    symbolic link: a link is refused (:func:`link_refused`), never followed.
    """
    if within is not None:
        check_no_links(within, path)
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    try:
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=PRIVATE_DIR)
            except FileExistsError:  # made by a concurrent writer
                if within is not None:
                    check_no_links(within, directory)
                continue
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
        fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
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
            self.fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise translate_os_error(exc, str(self.path)) from exc
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock
        self.fd = -1
