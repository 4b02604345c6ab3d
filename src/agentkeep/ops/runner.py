"""`agentkeep run`: run a command as a recorded session.

The command's output is shown as usual and, through the redactor, appended to the
session's streams. The main thread only relays and appends; a committer thread with its own
database connection makes progress durable (fdatasync, then one small commit) at least
every 64 KiB or 250 ms, so the child never waits for an fsync.

When the child exits, the streams are closed and the session ended; more than
SEAL_INLINE_BYTES of output is sealed by a forked process after ``agentkeep run`` has
exited with the child's status (:class:`PendingSeal`), so compressing it does not delay
the caller.

If agentkeep dies, the child's output up to the last recorded length is intact; the
session stays ``running`` with the recorder's pid, which ``agentkeep doctor`` finds dead,
and marks the session interrupted and seals its streams.

The command runs even when nothing can be recorded: if the disk is full before the session
could start (after the reserve's room was used), :func:`run_unrecorded` runs it with the
terminal's own stdio, says so on stderr, and its exit code is the result.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from agentkeep.errors import AgentkeepError, InvalidInput, StorageFull
from agentkeep.files import HOST, ensure_reserve, release_reserve
from agentkeep.models import Record, Stream
from agentkeep.services.streams import StreamWriter, hold_sealing_lock, start_with_streams

if TYPE_CHECKING:
    from agentkeep.store import Store

READ_BYTES = 1 << 20
PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
RECORD_BYTES = 64 * 1024  # the relay redacts consecutive reads of a stream together up to
RECORD_HOLD = 0.02  # this many bytes, holding them at most this long (seconds)
# `agentkeep run` seals output up to this size before it exits; larger output is sealed by
# a forked process after the command's exit status is reported. Measured: sealing costs
# ~3 ms + ~7.5 ms per MiB, and a forked sealer ~10 ms more CPU (its own store open,
# copy-on-write faults) than sealing in place, so below ~1 MiB it would buy little wall
# time for the CPU it costs.
SEAL_INLINE_BYTES = 1 << 20
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INTERRUPTING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL}


@dataclass(frozen=True)
class RunResult(Record):
    session_id: int | None  # None: the run could not be recorded (status "unrecorded")
    status: str
    exit_code: int | None
    signal: int | None
    duration_ms: int
    streams: list[dict[str, Any]] = field(default_factory=list)
    recording_errors: list[str] = field(default_factory=list)

    @property
    def shell_status(self) -> int:
        """What a shell would report: the exit code, or 128 + the signal number."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 1


class _Committer(threading.Thread):
    """Commits stream progress from its own connection while the main thread relays.

    Its connection uses ``synchronous=NORMAL``: a progress commit is bookkeeping whose loss
    on a power cut only makes the recorded length smaller — never larger than the bytes
    made durable by the fdatasync that precedes it — so it need not wait for a WAL fsync
    of its own (measured: that fsync made 3,200 progress commits of a 200 MiB run cost
    ~2 s). The next FULL commit of any connection syncs these frames too.
    """

    def __init__(self, store_dir: Path, writers: Sequence[StreamWriter]) -> None:
        super().__init__(name="agentkeep-committer", daemon=True)
        self.store_dir = store_dir
        self.writers = writers
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        # The connection is opened when the first progress is due: a command that ends
        # before (most quick ones) needs none, and its start is not slowed by our open.
        store: Store | None = None
        try:
            while not self.stopping.is_set():
                self.wake.wait(self._next_wait())
                self.wake.clear()
                for writer in self.writers:
                    if writer.closed or writer.failed or not writer.due():
                        continue
                    if store is None:
                        store = self._open()
                        if store is None:
                            return
                    try:
                        writer.commit_progress(store.streams)
                    except AgentkeepError as exc:
                        # Keep relaying the output; the length stays at the last commit.
                        writer.failed = True
                        self.errors.append(f"{writer.stream.name}: {exc.message}")
        finally:
            if store is not None:
                store.close()

    def _open(self) -> Store | None:
        from agentkeep.store import open as open_store

        try:
            return open_store(self.store_dir, config={"store.synchronous": "NORMAL"})
        except AgentkeepError as exc:
            self.errors.append(f"progress not recorded: {exc.message}")
            return None

    def _next_wait(self) -> float | None:
        """Until the first writer's bytes are due by time; None (until woken) when no
        writer has had a commit within COMMIT_SECONDS: new bytes on such a writer are due
        at once, and the relay wakes us as soon as a writer is due."""
        waits = [
            left
            for writer in self.writers
            if not (writer.closed or writer.failed)
            and (left := writer.seconds_until_due()) is not None
        ]
        return min(waits) if waits else None


@dataclass
class PendingSeal:
    """The closed streams of a finished run, sealed after ``agentkeep run`` has reported
    the command's exit status (compressing and verifying large output took seconds).

    Holds the session's sealing lock (:func:`~agentkeep.services.streams.hold_sealing_lock`),
    taken before the session ended. :meth:`start` forks a sealer that inherits it; nothing
    is lost if the sealer is killed: the streams stay closed (readable as they are) and
    ``doctor --fix`` seals them, as it does for a recorder that died."""

    store_dir: Path
    actor: str
    stream_ids: list[int]
    lock_fd: int

    def start(self) -> None:
        """Fork the sealer and return at once. Call with no database connection open in
        this process (SQLite's locks do not survive ``fork()``): the sealer opens its own."""
        try:
            pid = os.fork()
        except (OSError, AttributeError):  # no process to spare (or no fork): seal here
            try:
                self._seal()
            finally:
                self.release()
            return
        if pid != 0:
            self.release()  # the sealer's copy keeps the lock
            return
        try:  # the sealer: never returns into the caller's code
            os.setsid()  # not in the terminal's process group: Ctrl-C and hang-ups pass it by
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # nobody waits for output of ours on a pipe
                os.dup2(devnull, fd)
            self._seal()
        finally:
            os._exit(0)

    def _seal(self) -> None:
        from agentkeep.store import open as open_store

        with (
            contextlib.suppress(AgentkeepError),
            open_store(self.store_dir, actor=self.actor) as store,
        ):
            for stream_id in self.stream_ids:
                with contextlib.suppress(AgentkeepError):  # left closed: doctor --fix seals it
                    store.seal_stream(stream_id)

    def release(self) -> None:
        """Close this process's copy of the lock (the lock ends with the last copy)."""
        os.close(self.lock_fd)


def run_command(
    store: Store,
    argv: Sequence[str],
    *,
    agent: str | None = None,
    task_id: int | None = None,
    title: str | None = None,
    use_pty: bool = False,
    echo: bool = True,
    on_start: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``argv`` as a recorded session; returns how it ended (never raises for the
    child's own failure)."""
    result, _ = record_command(
        store,
        argv,
        agent=agent,
        task_id=task_id,
        title=title,
        use_pty=use_pty,
        echo=echo,
        on_start=on_start,
    )
    return result


def record_command(
    store: Store,
    argv: Sequence[str],
    *,
    agent: str | None = None,
    task_id: int | None = None,
    title: str | None = None,
    use_pty: bool = False,
    echo: bool = True,
    on_start: Callable[[int], None] | None = None,
    seal_later_over: int | None = None,
    stdin: int | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[RunResult, PendingSeal | None]:
    """:func:`run_command`; with ``seal_later_over``, streams holding more bytes than that
    in all are left closed and returned as a :class:`PendingSeal` (the result lists them
    as closed) for the caller to :meth:`~PendingSeal.start` once its store is closed.
    ``stdin`` (a file descriptor) and ``env`` are the child's (default: ours)."""
    if not argv:
        raise InvalidInput("name a command to run", hint="agentkeep run -- pytest -x")
    if not _findable(argv[0]):
        raise InvalidInput(
            f"command not found: {argv[0]}", hint="check the name, or give its full path"
        )
    ensure_reserve(store.store_dir)  # room to finish the bookkeeping if the disk fills
    names = ("pty",) if use_pty else ("stdout", "stderr")
    try:
        try:
            session, writers = _start(store, argv, agent, task_id, title, names)
        except StorageFull:
            release_reserve(store.store_dir)  # what the reserve is for; gc recreates it
            session, writers = _start(store, argv, agent, task_id, title, names)
    except StorageFull as exc:
        started = time.monotonic()
        returncode = run_unrecorded(argv, reason=exc.message, use_pty=use_pty)
        sig = -returncode if returncode < 0 else None
        return RunResult(
            session_id=None,
            status="unrecorded",
            exit_code=None if sig is not None else returncode,
            signal=sig,
            duration_ms=int((time.monotonic() - started) * 1000),
            recording_errors=[f"the run was not recorded: {exc.message}"],
        ), None
    if on_start is not None:
        on_start(session.id)
    committer = _Committer(store.store_dir, writers)
    committer.start()
    started = time.monotonic()
    errors: list[str] = []
    failures: list[tuple[str, AgentkeepError]] = []  # (stream name, why recording stopped)
    try:
        returncode = _relay(
            argv, writers, committer, failures, use_pty=use_pty, echo=echo, stdin=stdin, env=env
        )
    finally:
        committer.stopping.set()
        committer.wake.set()
        committer.join()
    duration_ms = int((time.monotonic() - started) * 1000)
    errors.extend(f"{name}: {exc.message}" for name, exc in failures)
    errors.extend(committer.errors)
    if any(isinstance(exc, StorageFull) for _, exc in failures) or committer.errors:
        # The disk filled: give the closing bookkeeping the reserve's room (gc or the next
        # run recreates it once there is space again).
        release_reserve(store.store_dir)
    closed: list[Stream] = []
    for writer in writers:
        try:
            closed.append(writer.close(store.streams))
        except AgentkeepError as exc:
            writer.abandon()
            errors.append(f"{writer.stream.name}: {exc.message}")
    pending = None
    if seal_later_over is not None and sum(s.length for s in closed) > seal_later_over:
        # No lock (or no flock on this system), no deferral: sealed below.
        with contextlib.suppress(AgentkeepError, OSError, ImportError):
            lock = hold_sealing_lock(store.store_dir, session.id)
            pending = PendingSeal(store.store_dir, store.actor, [s.id for s in closed], lock)
    streams = []
    for stream in closed:
        if pending is not None:
            streams.append(stream.to_dict())
            continue
        try:
            streams.append(store.seal_stream(stream.id).to_dict())
        except AgentkeepError as exc:
            errors.append(f"{stream.name}: {exc.message}")
    sig = -returncode if returncode < 0 else None
    if sig is not None:
        status = "interrupted" if sig in INTERRUPTING else "failed"
    else:
        status = "ended" if returncode == 0 else "failed"
    try:
        store.end_session(
            session.id,
            status=status,
            exit_code=None if sig is not None else returncode,
            signal=sig,
            duration_ms=duration_ms,
        )
    except AgentkeepError as exc:
        # The command's own result still reaches the caller; `doctor` finds the session
        # (its recorder will be dead) and marks it interrupted.
        errors.append(f"the end of session {session.id} was not recorded: {exc.message}")
    result = RunResult(
        session_id=session.id,
        status=status,
        exit_code=None if sig is not None else returncode,
        signal=sig,
        duration_ms=duration_ms,
        streams=streams,
        recording_errors=errors,
    )
    return result, pending


def _start(
    store: Store,
    argv: Sequence[str],
    agent: str | None,
    task_id: int | None,
    title: str | None,
    names: Sequence[str],
) -> tuple[Any, list[StreamWriter]]:
    """The session's row and its stream writers, before the child starts: one transaction
    (one commit's fsync rather than three or four), so a session is recorded with its
    streams or not at all."""
    return start_with_streams(
        store,
        names,
        agent=agent,
        source="run",
        task_id=task_id,
        cwd=os.getcwd(),
        # Redacting the title is CPU: done here, not while holding the writers' lock.
        title=title or _title(argv),
        command=list(argv),
        pid=os.getpid(),
        host=HOST,
    )


def _findable(command: str) -> bool:
    """Whether ``command`` names an executable file, decided as ``shutil.which`` does
    (importing shutil, with its archive modules, cost ~2 ms of every run's start-up)."""
    if sys.platform == "win32":  # PATHEXT and the rest: leave it to shutil
        import shutil

        return shutil.which(command) is not None

    def runnable(path: str) -> bool:
        return os.path.exists(path) and os.access(path, os.X_OK) and not os.path.isdir(path)

    if os.path.dirname(command):
        return runnable(command)
    path = os.environ.get("PATH")
    if path is None:
        try:
            path = os.confstr("CS_PATH") or os.defpath
        except (AttributeError, ValueError):
            path = os.defpath
    return any(runnable(os.path.join(entry, command)) for entry in path.split(os.pathsep))


def run_unrecorded(argv: Sequence[str], *, reason: str, use_pty: bool = False) -> int:
    """Run ``argv`` with our own stdin/stdout/stderr when it cannot be recorded (a full
    disk); warns on stderr. Returns its returncode (negative: killed by that signal)."""
    del use_pty  # the child gets our terminal itself: colours and progress bars stay
    sys.stderr.write(f"agentkeep: not recording this run ({reason}); running it anyway\n")
    sys.stderr.flush()
    proc = subprocess.Popen(list(argv))
    previous = _forward_signals(proc)
    try:
        return proc.wait()
    finally:
        _restore_signals(previous)


def _title(argv: Sequence[str]) -> str:
    import shlex

    from agentkeep.boundary import cut, redact_text

    return cut(redact_text(shlex.join(argv))[0], 200)  # cut after redacting


def _relay(
    argv: Sequence[str],
    writers: list[StreamWriter],
    committer: _Committer,
    failures: list[tuple[str, AgentkeepError]],
    *,
    use_pty: bool,
    echo: bool,
    stdin: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start the child, copy its output to our terminal and the writers; its returncode."""
    if use_pty:
        import pty

        master, slave = pty.openpty()
        _copy_window_size(slave)
        proc = subprocess.Popen(
            argv, stdin=stdin, stdout=slave, stderr=slave, close_fds=True, env=env
        )
        os.close(slave)
        sources = {master: (writers[0], 1)}
    else:
        proc = subprocess.Popen(
            argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None and proc.stderr is not None
        sources = {
            proc.stdout.fileno(): (writers[0], 1),
            proc.stderr.fileno(): (writers[1], 2),
        }
        for fd in sources:
            _widen_pipe(fd)
    previous = _forward_signals(proc)
    recording = {fd: True for fd in sources}
    # Consecutive reads of one stream are redacted and appended together (up to
    # RECORD_BYTES, for at most RECORD_HOLD): a command writing 4-8 KB at a time otherwise
    # costs a redactor call, an append and a line count per piece (the redactor runs ~50%
    # faster on 64 KiB than on 4 KiB). A read of the other stream flushes first, so the
    # streams' marks keep the order the output was written in; the terminal gets every
    # read at once.
    batch: list[bytes] = []
    batch_bytes = 0
    batch_fd = -1
    batch_since = 0.0

    def record() -> None:
        nonlocal batch, batch_fd, batch_bytes
        if not batch:
            return
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        writer = sources[batch_fd][0]
        fd, batch, batch_fd, batch_bytes = batch_fd, [], -1, 0
        try:
            writer.write(data)
        except AgentkeepError as exc:
            # The child is never harmed by a recording failure (a full disk): its output
            # keeps flowing to the terminal.
            recording[fd] = False
            writer.failed = True
            failures.append((writer.stream.name, exc))
            print(
                f"agentkeep: recording of {writer.stream.name} stopped: {exc.message}",
                file=sys.stderr,
            )
        if writer.due() and not committer.wake.is_set():
            committer.wake.set()

    try:
        with selectors.DefaultSelector() as selector:
            for fd in sources:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                wait = None
                if batch:
                    wait = max(0.0, batch_since + RECORD_HOLD - time.monotonic())
                ready = selector.select(wait)
                for key, _ in ready:
                    fd = key.fd
                    try:
                        data = os.read(fd, READ_BYTES)
                    except OSError:  # EIO: the pty's other side closed
                        data = b""
                    if not data:
                        if fd == batch_fd:
                            record()
                        selector.unregister(fd)
                        continue
                    if echo:
                        _write_quietly(sources[fd][1], data)
                    if not recording[fd]:
                        continue
                    if fd != batch_fd:
                        record()
                        batch_fd, batch_since = fd, time.monotonic()
                    batch.append(data)
                    batch_bytes += len(data)
                    if batch_bytes >= RECORD_BYTES:
                        record()
                if batch and (not ready or time.monotonic() - batch_since >= RECORD_HOLD):
                    record()
            record()
        return proc.wait()
    finally:
        _restore_signals(previous)
        if use_pty:
            with contextlib.suppress(OSError):
                os.close(next(iter(sources)))
        else:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if proc.poll() is None:  # we are failing ourselves: do not leave the child behind
            proc.terminate()
            proc.wait()


def _widen_pipe(fd: int) -> None:
    """Let the command write up to PIPE_BYTES ahead of us (Linux; 64 KiB by default):
    while we redact a burst it keeps running instead of blocking on a full pipe, and we
    then read (and redact) in larger pieces. Echo latency is unchanged: we read as soon
    as anything is there."""
    import fcntl

    with contextlib.suppress(OSError, AttributeError):  # other systems; a lower limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _write_quietly(fd: int, data: bytes) -> None:
    """Copy to our terminal; a closed terminal must not stop the recording."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass


def _copy_window_size(slave: int) -> None:
    import fcntl
    import termios

    for fd in (0, 1, 2):
        try:
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
        with contextlib.suppress(OSError):
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        return


def _forward_signals(proc: subprocess.Popen[bytes]) -> dict[int, Any]:
    """Pass SIGTERM/SIGHUP (and a SIGINT not typed at our terminal) on to the child."""

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _terminal_sent_it():
            return  # Ctrl-C at the terminal already reached the child (same process group)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous: dict[int, Any] = {}
    for signum in FORWARDED:
        try:
            previous[signum] = signal.signal(signum, forward)
        except ValueError:  # not the main thread: leave signals alone
            break
    return previous


def _terminal_sent_it() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
