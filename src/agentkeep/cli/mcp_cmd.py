"""`agentkeep mcp`: the MCP server over stdio.

TODO(mcp): the real command (agentkeep/mcp/).
"""

from __future__ import annotations

import click

from agentkeep.cli import State


@click.command()
@click.pass_obj
def mcp(state: State) -> None:
    """Run the MCP server for this project's store over stdio (for agents)."""
    raise click.UsageError("not built yet")
