"""A real agentkeep server on a free loopback port, in a thread of the test process, set up
as ``agentkeep serve`` sets it up (its socket, hosts, origins and uvicorn configuration).

    with running_server(project / ".agentkeep") as server:
        httpx.get(server.url + "/api/v1/tasks", headers=server.auth)

Tests that kill the server (SIGKILL) start ``agentkeep serve`` as a subprocess instead.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeep.server import live, process
from agentkeep.server.app import create_app
from agentkeep.server.context import ServerContext

SAFETY = 60.0  # seconds: only a safety net for a hung server, never a budget


@dataclass
class RunningServer:
    url: str
    port: int
    token: str
    ctx: ServerContext
    app: Any
    # The access log's lines (method, path, status), kept here instead of on stderr, where a
    # line written after a test's output capture ended showed in pytest's progress.
    log: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authorise a mutation from a script."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub(self) -> live.Hub:
        """The live streams' fan-out (it exists while the server runs)."""
        hub = self.app.state.live_hub
        assert isinstance(hub, live.Hub)
        return hub


@contextlib.contextmanager
def running_server(
    store_dir: Path,
    *,
    token: str | None = None,
    live_options: live.LiveOptions | None = None,
    require_auth: bool = False,
) -> Iterator[RunningServer]:
    """The app on a free port until the block ends. ``live_options`` replaces the live
    streams' settings (short pings, small queues)."""
    sock = process.listen("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    hosts, origins = process.allowed_hosts_and_origins("127.0.0.1", port, None)
    log: list[str] = []
    token = token or secrets.token_urlsafe(32)
    ctx = ServerContext(
        store_dir=Path(store_dir),
        token=token,
        hosts=hosts,
        origins=origins,
        access_log=log.append,
        require_auth=require_auth,
    )
    app = create_app(ctx)
    if live_options is not None:
        app.state.live_options = live_options
    started = threading.Event()
    server = process.uvicorn_server(process.uvicorn_config(app), started.set)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="agentkeep-test-server", daemon=True
    )
    thread.start()
    try:
        while not started.wait(0.05):  # an event: set once the socket listens
            if not thread.is_alive():
                raise RuntimeError("the test server did not start")
        yield RunningServer(f"http://127.0.0.1:{port}", port, token, ctx, app, log)
    finally:
        server.should_exit = True
        thread.join(SAFETY)
        sock.close()
        assert not thread.is_alive(), "the test server did not stop"
