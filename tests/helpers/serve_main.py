"""A server subprocess for tests that kill or signal it (tests/test_server_live.py).

    python tests/helpers/serve_main.py STORE_DIR

Runs uvicorn on ``create_app`` on a free loopback port, the way the server process does
(signal handlers included: SIGINT and SIGTERM stop it), and prints one JSON line,
``{"port": P, "pid": PID}``, once the socket listens. The token comes from
``AGENTKEEP_TEST_TOKEN`` (or is random). Until ``agentkeep serve --port 0`` lands, this is
what a test starts.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path

import uvicorn

from agentkeep.server.app import create_app
from agentkeep.server.context import ServerContext


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)


def main(argv: list[str]) -> int:
    store_dir = Path(argv[0])
    ctx = ServerContext(
        store_dir=store_dir,
        token=os.environ.get("AGENTKEEP_TEST_TOKEN") or secrets.token_urlsafe(32),
        hosts=frozenset({"127.0.0.1", "localhost"}),
    )
    config = uvicorn.Config(
        create_app(ctx), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=3
    )
    _Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
