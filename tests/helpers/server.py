"""A real agentkeep server on a free loopback port, in a thread of the test process.

    with running_server(project / ".agentkeep") as server:
        httpx.get(server.url + "/api/v1/tasks", headers=server.auth)

Tests that kill the server (SIGKILL) start ``agentkeep serve`` as a subprocess instead.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from agentkeep.server.app import create_app
from agentkeep.server.context import ServerContext


@dataclass
class RunningServer:
    url: str
    port: int
    token: str
    ctx: ServerContext

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authorise a mutation from a script."""
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def running_server(store_dir: Path, *, token: str | None = None) -> Iterator[RunningServer]:
    token = token or secrets.token_urlsafe(32)
    ctx = ServerContext(
        store_dir=Path(store_dir),
        token=token,
        hosts=frozenset({"127.0.0.1", "localhost"}),
    )
    app = create_app(ctx)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="agentkeep-test-server", daemon=True)
    thread.start()
    while not server.started:  # an event: uvicorn sets it once the socket listens
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        thread.join(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", port, token, ctx)
    finally:
        server.should_exit = True
        thread.join(10)
