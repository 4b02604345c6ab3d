"""The agentkeep server for bench_serve.py when ``agentkeep serve`` cannot run it yet.

    python bench/serve_app.py STORE_DIR

Runs uvicorn on ``agentkeep.server.app.create_app`` on a free loopback port (as
tests/helpers/server.py does, but in its own process, so its CPU is its own), and prints
one JSON line ``{"port": N, "pid": P}`` once the socket listens. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
from pathlib import Path

import uvicorn

from agentkeep.server.app import create_app
from agentkeep.server.context import ServerContext


def main() -> None:
    store_dir = Path(sys.argv[1])
    ctx = ServerContext(
        store_dir=store_dir,
        token=secrets.token_urlsafe(32),
        hosts=frozenset({"127.0.0.1", "localhost"}),
    )
    config = uvicorn.Config(
        create_app(ctx),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            threading.Event().wait(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        # The Host header then carries the port as well.
        ctx.hosts = ctx.hosts | {f"127.0.0.1:{port}", f"localhost:{port}"}
        ctx.origins = frozenset({f"http://127.0.0.1:{port}"})
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
