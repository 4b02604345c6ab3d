"""`agentkeep mcp`: the MCP server over stdio (agentkeep/mcp/)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agentkeep.cli import State

INSTALL_HINT = "pip install 'agentkeep[mcp]'"


@click.command()
@click.pass_obj
def mcp(state: State) -> None:
    """Run the MCP server for this project's store over stdio (for agents).

    Tools: prime, tasks_ready, task_claim, task_update, task_add, note_write,
    notes_latest, search, session_get. Each answers with the JSON the CLI prints under
    --json; a failure is a tool error holding the CLI's JSON error (code "conflict" for
    a lost claim). None deletes anything. The store is --store, else that of
    $CLAUDE_PROJECT_DIR (Claude Code sets it), else the one found from the working
    directory. Stdout carries only JSON-RPC; logs go to stderr. Needs the mcp extra
    (pip install 'agentkeep[mcp]').

    `agentkeep setup claude|codex|opencode --mcp` registers it. By hand:

    \b
    Claude Code   claude mcp add agentkeep -- agentkeep mcp
                  (or .mcp.json: {"mcpServers": {"agentkeep":
                   {"command": "agentkeep", "args": ["mcp"]}}})
    Codex         ~/.codex/config.toml:
                    [mcp_servers.agentkeep]
                    command = "agentkeep"
                    args = ["mcp"]
    OpenCode      opencode.json: {"mcp": {"agentkeep": {"type": "local",
                   "command": ["agentkeep", "mcp"], "enabled": true}}}

    \b
    Examples:
      agentkeep mcp                        # what an agent runs
      agentkeep --store ~/src/app mcp      # another project's store
    """
    from agentkeep.mcp.http import available

    if not available():
        from agentkeep.errors import AgentkeepError

        raise AgentkeepError("the MCP server needs the optional mcp package", hint=INSTALL_HINT)
    from agentkeep.mcp.server import run_stdio

    path = state.store
    if path is None and os.environ.get("CLAUDE_PROJECT_DIR"):
        from agentkeep.paths import find_store

        project = Path(os.environ["CLAUDE_PROJECT_DIR"])
        path = find_store(project) or project
    run_stdio(path, state.actor)
