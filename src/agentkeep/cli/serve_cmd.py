"""`agentkeep serve` and `agentkeep server status|stop|token`.

TODO(serve-core): the real commands (server/process.py).
"""

from __future__ import annotations

import click

from agentkeep.cli import State


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free).")
@click.pass_obj
def serve(state: State, host: str, port: int) -> None:
    """Serve the HTTP API, the dashboard and MCP for this project's store."""
    raise click.UsageError("not built yet")


@click.group()
def server() -> None:
    """Status, stop and token of this project's server (`agentkeep serve`)."""
