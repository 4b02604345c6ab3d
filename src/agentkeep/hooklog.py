"""The hook-error log: ``.agentkeep/hook-errors.log``, the one place hooks report failures.

A hook must never fail the agent (``agentkeep hook`` and ``agentkeep prime --hook-json``
always exit 0), so what went wrong is written here instead, and ``agentkeep doctor``
reports it. This module is the only writer of that file:

- one line per failure: time, who (the hook's source, or ``prime --hook-json``), the error
  class and its message, never the payload;
- the line passes the privacy boundary before it is cut to :data:`LINE_CHARS` characters
  (an error message may echo a setting or an argument that holds a secret); if the
  redactor fails, the message is withheld and only the error class is written (fail
  closed);
- the file is created private to the user (0600), never through a symlink, and rotated to
  ``hook-errors.log.1`` beyond :data:`MAX_BYTES`.

Standard library only (the hook imports it); best effort: nothing here ever raises.
"""

from __future__ import annotations

import errno
import os

from agentkeep.errors import HookError
from agentkeep.timeutil import utc_now

LOG_NAME = "hook-errors.log"
MAX_BYTES = 1 << 20  # rotated to hook-errors.log.1 beyond this
LINE_CHARS = 500


def describe(who: str, exc: BaseException) -> str:
    """The unredacted text of a line about ``exc`` (the caller never writes it as is)."""
    if isinstance(exc, HookError):
        message = str(exc)  # says why without quoting the payload
    else:
        detail = str(exc)
        message = type(exc).__name__ + (f": {detail}" if detail else "")
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            message += f" (from {type(cause).__name__})"
    return f"{who} {message}"  # who too: it is whatever argv said


def line_for(who: str, exc: BaseException) -> str:
    """The line written for ``exc``: redacted, then flattened and cut (fail-closed)."""
    try:
        from agentkeep.boundary import redact_text

        text = redact_text(describe(who, exc))[0]  # before cutting: no cut hides a secret
    except Exception:
        text = f"? {type(exc).__name__} (message withheld: the redactor failed)"
    return f"{utc_now()} {' '.join(text.split())[:LINE_CHARS]}\n"


def log_failure(store_dir: str | os.PathLike[str], who: str, exc: BaseException) -> bool:
    """Append one redacted line about ``exc`` to the store's hook log; returns whether it
    was written (the hook says a lost delivery on stderr when it was not)."""
    try:
        append_line(store_dir, line_for(who, exc))
    except Exception:  # the caller decides whether anywhere is left to report to
        return False
    return True


def append_line(store_dir: str | os.PathLike[str], line: str) -> None:
    """Append an already redacted ``line`` (rotating first when the log is full)."""
    path = os.path.join(os.fspath(store_dir), LOG_NAME)
    try:
        if os.lstat(path).st_size > MAX_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass
    # Never through a link, never blocked by a FIFO planted in the store (docs/design.md).
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        data = line.encode("utf-8", "replace")
        if os.write(fd, data) != len(data):
            raise OSError(f"{LOG_NAME}: a short write (the disk is full?)")
    finally:
        os.close(fd)


def read_lines(store_dir: str | os.PathLike[str]) -> list[str]:
    """The lines of the current log ([] when there is none), redacted again on the way
    out (a line written by an older agentkeep, or by hand, may not be). Raises OSError
    when the log exists but cannot be read, and when it is a symbolic link or not a
    regular file: like every file in the store, it is never followed out of it."""
    path = os.path.join(os.fspath(store_dir), LOG_NAME)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return []
    except OSError:
        if os.path.islink(path):
            message = "it is a symbolic link, which agentkeep never follows"
            raise OSError(errno.ELOOP, message) from None
        raise
    with open(fd, encoding="utf-8", errors="replace") as handle:
        if (os.fstat(fd).st_mode & 0o170000) != 0o100000:  # stat.S_ISREG: not a FIFO
            raise OSError(errno.EINVAL, "not a regular file")
        text = handle.read()
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        from agentkeep.boundary import redact_text

        return [redact_text(line)[0] for line in lines]
    except Exception:
        return ["(withheld: the redactor failed)" for _ in lines]
