"""The server process (docs/server.md): one server per store, its ``server.json``, the
per-install token, background start and stop.

One server per store: ``.agentkeep/server.lock`` is held with ``flock`` for the server's
whole life, so the kernel releases it however the process ends (SIGKILL included).
Whoever can take the lock knows no server runs, and a ``server.json`` they find is
stale. ``server.json`` (pid, port, url, host, started_at, version) is written atomically
once the socket listens and removed on a clean exit; it is what ``server status``,
``server stop`` and ``serve --background`` read.

Standard library only at import: ``agentkeep server status|stop|token`` never load the
web stack; :func:`run_server` imports uvicorn and the app when it runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentkeep import _version
from agentkeep.errors import Busy, Conflict, InvalidInput, StorageError
from agentkeep.files import open_file, remove_quietly, staged_file, write_chunks
from agentkeep.paths import user_data_dir

SERVER_JSON = "server.json"
LOCK_FILE = "server.lock"
LOG_FILE = "server.log"
TOKEN_FILE = "server-token"
DEFAULT_PORT = 8765
# Ctrl-C / SIGTERM: open streams (SSE tabs) get this long to finish, then are cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 3
# Safety nets of `serve --background` and `server stop`; both wait for events.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_ROTATE_BYTES = 8 * 1_048_576  # server.log is moved to server.log.1 past this, at start
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says about a running server."""

    pid: int
    port: int
    url: str
    host: str
    started_at: str
    version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerInfo:
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            url=str(data["url"]),
            host=str(data["host"]),
            started_at=str(data["started_at"]),
            version=str(data["version"]),
        )


@dataclass(frozen=True)
class ServerStatus:
    """Whether a server runs for a store; ``stale`` when a ``server.json`` was left by
    one that did not exit cleanly (SIGKILL, a crash)."""

    running: bool
    info: ServerInfo | None = None
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"running": self.running, "stale": self.stale}
        if self.info is not None:
            out.update(self.info.to_dict())
            if self.running:
                out["uptime_seconds"] = uptime_seconds(self.info.started_at)
        return out


def uptime_seconds(started_at: str) -> int | None:
    from datetime import UTC, datetime

    try:
        started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((datetime.now(UTC) - started).total_seconds()))


# -- the token ------------------------------------------------------------------------


def token_path() -> Path:
    return user_data_dir() / TOKEN_FILE


def install_token(*, warn: Callable[[str], None] | None = None) -> str:
    """The per-install token: created once (``secrets.token_urlsafe(32)``, a 0600 file
    made with ``O_EXCL`` in the user data dir), then read. A file other users can read
    is made private (with a warning through ``warn``); one owned by another user, a
    link, or one without a usable token is refused. There is no fallback value."""
    path = token_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
    token = secrets.token_urlsafe(32)
    try:
        fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=0o600)
    except FileExistsError:
        return _read_token(path, warn=warn)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        write_chunks(fd, (token.encode() + b"\n",))
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def _read_token(path: Path, *, warn: Callable[[str], None] | None) -> str:
    try:
        fd = open_file(path, os.O_RDONLY)
    except OSError as exc:
        raise StorageError(f"cannot read the server token {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise StorageError(
                f"the server token {path} belongs to another user",
                hint="remove it; `agentkeep server token` makes a new one",
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
            if warn is not None:
                warn(f"the server token {path} was readable by others; it is 0600 now")
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(text) < 32 or not all(c.isalnum() or c in "-_" for c in text):
        raise StorageError(
            f"the server token {path} holds no usable token",
            hint="remove it; `agentkeep server token` makes a new one",
        )
    return text


# -- the lock and server.json -----------------------------------------------------------


def read_info(store_dir: Path) -> ServerInfo | None:
    """What ``server.json`` says, or None when there is none (or it is unreadable)."""
    try:
        fd = open_file(store_dir / SERVER_JSON, os.O_RDONLY)
    except (OSError, StorageError):
        return None
    try:
        data = json.loads(os.read(fd, 65536))
        return ServerInfo.from_dict(data)
    except (ValueError, KeyError, TypeError, OSError):
        return None
    finally:
        os.close(fd)


def _open_lock(store_dir: Path, *, create: bool) -> int | None:
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        return open_file(store_dir / LOCK_FILE, flags, within=store_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot open {store_dir / LOCK_FILE}: {exc.strerror}") from exc


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def status(store_dir: Path) -> ServerStatus:
    """Whether a server runs for ``store_dir`` (the lock is held), and what it said."""
    fd = _open_lock(store_dir, create=False)
    info = read_info(store_dir)
    if fd is None:
        return ServerStatus(False, info, stale=info is not None)
    try:
        if _try_lock(fd):
            return ServerStatus(False, info, stale=info is not None)
        return ServerStatus(True, info)
    finally:
        os.close(fd)  # closing drops the probe's lock, if it took it


def already_running(info: ServerInfo | None) -> Conflict:
    where = f" at {info.url} (pid {info.pid})" if info is not None else ""
    return Conflict(
        f"a server is already running for this store{where}",
        hint="`agentkeep server status` shows it; `agentkeep server stop` stops it",
    )


@contextlib.contextmanager
def store_lock(store_dir: Path) -> Iterator[None]:
    """Hold the store's server lock, or raise Conflict naming the running server. A
    stale ``server.json`` is removed once the lock is ours."""
    fd = _open_lock(store_dir, create=True)
    assert fd is not None
    try:
        if not _try_lock(fd):
            raise already_running(read_info(store_dir))
        remove_quietly(store_dir / SERVER_JSON)
        yield
    finally:
        os.close(fd)


def write_info(store_dir: Path, info: ServerInfo) -> None:
    """``server.json``, atomically (a reader sees the whole file or none)."""
    final = store_dir / SERVER_JSON
    with staged_file(final) as tmp:
        fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            write_chunks(fd, (json.dumps(info.to_dict(), indent=2).encode() + b"\n",))
        finally:
            os.close(fd)


def remove_info(store_dir: Path, pid: int) -> None:
    """Remove ``server.json`` if it is this server's."""
    info = read_info(store_dir)
    if info is not None and info.pid == pid:
        remove_quietly(store_dir / SERVER_JSON)


# -- addresses --------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts_and_origins(
    host: str, port: int, public_url: str | None
) -> tuple[frozenset[str], frozenset[str]]:
    """The Host header names the server answers, and the origins that may send it
    changes: the loopback names, the address it listens on, and ``--public-url``'s."""
    names = {*LOOPBACK_NAMES}
    if host not in ("0.0.0.0", "::", ""):
        names.add(_url_host(host).lower())
    origins = {f"http://{name}:{port}" for name in names}
    if public_url:
        parts = urlsplit(public_url)
        if parts.hostname:
            hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            names.add(hostname.lower())
            origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(names), frozenset(origins)


def check_public_url(public_url: str | None) -> None:
    if public_url is None:
        return
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"--public-url must be an http(s) URL such as https://box.example:8765, "
            f"not {public_url!r}"
        )


# -- running ----------------------------------------------------------------------------


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    require_auth: bool = False
    public_url: str | None = None
    actor: str | None = None
    max_json_bytes: int = 1_048_576
    max_upload_bytes: int = 1024 * 1_048_576


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Made with ``IPPROTO_TCP`` named (not ``socket.create_server``, whose protocol number is
    0): asyncio turns on ``TCP_NODELAY`` only for sockets that say they are TCP, and without
    it a response written in two parts waited for the client's delayed ACK — 40 ms on every
    request of a kept-alive connection (bench/bench_serve.py: lists at ~45 ms, ~7 ms after).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(
                f"port {port} on {host} is in use by another program",
                hint="choose another with --port (0: any free port)",
            ) from exc
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def run_server(
    store_dir: Path,
    options: ServeOptions,
    *,
    token: str,
    announce: Callable[[ServerInfo], None],
    ready_fd: int | None = None,
) -> None:
    """Serve ``store_dir`` until SIGINT/SIGTERM: hold the lock, listen, write
    ``server.json``, call ``announce`` (and write the info to ``ready_fd``, which
    ``serve --background`` waits on), and clean up on the way out."""
    from agentkeep.server.app import create_app
    from agentkeep.server.context import ServerContext

    with store_lock(store_dir), listen(options.host, options.port) as sock:
        port = int(sock.getsockname()[1])
        hosts, origins = allowed_hosts_and_origins(options.host, port, options.public_url)
        url = options.public_url or f"http://{_url_host(options.host)}:{port}"
        info = ServerInfo(
            pid=os.getpid(),
            port=port,
            url=url.rstrip("/"),
            host=options.host,
            started_at=_now(),
            version=_version.__version__,
        )
        ctx = ServerContext(
            store_dir=store_dir,
            token=token,
            hosts=hosts,
            origins=origins,
            actor=options.actor,
            require_auth=options.require_auth,
            max_json_bytes=options.max_json_bytes,
            max_upload_bytes=options.max_upload_bytes,
        )
        config = uvicorn_config(create_app(ctx))

        def started() -> None:
            write_info(store_dir, info)
            announce(info)
            if ready_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(ready_fd, json.dumps(info.to_dict()).encode())
                    os.close(ready_fd)

        try:
            uvicorn_server(config, started).run(sockets=[sock])
        finally:
            remove_info(store_dir, info.pid)


def uvicorn_config(app: Any) -> Any:
    """How the server runs ``app``: plain h11, no websockets, our access log instead of
    uvicorn's, and open streams cut after GRACEFUL_SHUTDOWN_SECONDS on Ctrl-C/SIGTERM
    (uvicorn's default waits for them forever)."""
    import uvicorn

    return uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,  # security.py writes one without query strings
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _now() -> str:
    from agentkeep.timeutil import utc_now

    return utc_now()


def uvicorn_server(config: Any, on_started: Callable[[], None]) -> Any:
    """uvicorn's server, telling when it listens (``on_started``), and leaving the
    process alive after a signal: uvicorn re-raises it once it has shut down, which for
    SIGTERM would end the process before ``server.json`` is removed."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_started()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


# -- background start and stop ----------------------------------------------------------


def start_background(
    store_dir: Path,
    serve_args: list[str],
    *,
    root_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT_SECONDS,
) -> ServerInfo:
    """Start ``agentkeep --store STORE_DIR ROOT_ARGS serve SERVE_ARGS`` detached (its own
    session; output appended to ``server.log``) and return once it listens: the child
    writes its ``server.json`` to a pipe when it does, and EOF without it means it failed.
    ``ROOT_ARGS``: the other root options the child must keep (``--actor NAME``)."""
    current = status(store_dir)
    if current.running:
        raise already_running(current.info)
    log_path = store_dir / LOG_FILE
    with contextlib.suppress(OSError):  # one old log is kept, so it never grows unbounded
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(LOG_FILE + ".1"))
    try:
        log_fd = open_file(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, within=store_dir)
    except OSError as exc:
        raise StorageError(f"cannot open {log_path}: {exc.strerror}") from exc
    read_end, write_end = os.pipe()
    try:
        command = [
            sys.executable,
            "-m",
            "agentkeep",
            "--store",
            str(store_dir),
            *root_args,
            "serve",
            *serve_args,
            "--ready-fd",
            str(write_end),
        ]
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    finally:
        os.close(write_end)
        os.close(log_fd)
    try:
        said = _read_until_eof(read_end, timeout)
    finally:
        os.close(read_end)
    if said:
        return ServerInfo.from_dict(json.loads(said))
    code = child.poll()
    if code is None:  # neither ready nor gone within the safety net: do not leave it
        child.kill()
        child.wait()
    raise StorageError(
        f"the server did not start (exit code {child.returncode}); "
        f"the end of {log_path}:\n{_tail(log_path)}",
    )


def _read_until_eof(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - size))
            return file.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def stop(store_dir: Path, *, timeout: float = STOP_TIMEOUT_SECONDS) -> ServerStatus:
    """Stop the store's server: SIGTERM, wait for it to release the lock (its exit),
    SIGKILL after ``timeout``. Returns what was running (``running`` False when nothing
    was; a stale ``server.json`` is removed then)."""
    fd = _open_lock(store_dir, create=False)
    if fd is None:
        found = status(store_dir)
        if found.stale:
            remove_quietly(store_dir / SERVER_JSON)
        return found
    try:
        if _try_lock(fd):
            info = read_info(store_dir)
            remove_quietly(store_dir / SERVER_JSON)
            return ServerStatus(False, info, stale=info is not None)
        info = read_info(store_dir)
        if info is None:
            raise Busy(
                "the server is starting or stopping (no server.json yet)",
                hint="try again in a moment",
            )
        waiter = _LockWaiter(fd)
        _signal(info.pid, signal.SIGTERM)
        if not waiter.wait(timeout):
            _signal(info.pid, signal.SIGKILL)
            if not waiter.wait(timeout):
                raise StorageError(f"the server (pid {info.pid}) did not exit after SIGKILL")
        remove_quietly(store_dir / SERVER_JSON)  # a SIGKILLed server could not
        return ServerStatus(True, info)
    finally:
        os.close(fd)


def wait_until_stopped(store_dir: Path, timeout: float) -> bool:
    """Wait until no server holds the store's lock (it exited, however it ended): a
    wait on the lock itself, not a poll. False if one still holds it after ``timeout``."""
    fd = _open_lock(store_dir, create=False)
    if fd is None:
        return True
    try:
        return _LockWaiter(fd).wait(timeout)
    finally:
        os.close(fd)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class _LockWaiter:
    """Takes the lock on ``fd`` in a thread, which returns once its holder exits: a
    wait on the event, not a poll. ``fd`` is closed by the caller (dropping the lock)."""

    def __init__(self, fd: int) -> None:
        self._taken = threading.Event()
        threading.Thread(target=self._take, args=(fd,), daemon=True).start()

    def _take(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._taken.set()

    def wait(self, timeout: float) -> bool:
        return self._taken.wait(timeout)
