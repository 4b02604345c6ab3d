"""`agentkeep agents …`"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_list, print_written
from agentkeep.services.agents import STATUSES

F = TypeVar("F", bound=Callable[..., Any])
COLUMNS = ["id", "name", "kind", "role", "status", "pid", "host", "worktree_id", "heartbeat_at"]


def _list_options(func: F) -> F:
    for option in reversed(
        [
            click.option("-s", "--status", type=click.Choice(STATUSES), help="Only this status."),
            click.option(
                "--mark-dead",
                is_flag=True,
                help="First mark dead the agents on this host whose process is gone.",
            ),
            output_options,
        ]
    ):
        func = option(func)
    return func


@click.group(invoke_without_command=True)
@_list_options
@click.pass_context
def agents(
    ctx: click.Context, status: str | None, mark_dead: bool, as_json: bool, nl: bool
) -> None:
    """List agents, or register one. `agents` is short for `agents list`.

    \b
    Examples:
      agentkeep agents --mark-dead
      agentkeep agents register reviewer-1 --kind claude-code --pid $$
    """
    if ctx.invoked_subcommand is None:
        _show(ctx.obj, status, mark_dead, as_json, nl)


@agents.command("list")
@_list_options
@click.pass_obj
def list_(state: State, status: str | None, mark_dead: bool, as_json: bool, nl: bool) -> None:
    """List agents.

    \b
    Example:
      agentkeep agents list -s active --json
    """
    _show(state, status, mark_dead, as_json, nl)


def _show(state: State, status: str | None, mark_dead: bool, as_json: bool, nl: bool) -> None:
    with state.open() as store:
        if mark_dead:
            for agent in store.mark_dead_agents():
                click.echo(f"marked dead: {agent.name} (pid {agent.pid})", err=True)
        items = store.list_agents(status=status)
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no agents")


@agents.command("register")
@click.argument("name")
@click.option(
    "--kind", default="custom", show_default=True, help="claude-code, codex, opencode, custom…"
)
@click.option("--role", help="What it does (implementer, reviewer…).")
@click.option("--pid", type=int, help="Its process id (lets --mark-dead detect its death).")
@click.option("--worktree", "worktree_id", type=int, help="The worktree it works in.")
@output_options
@click.pass_obj
def register(
    state: State,
    name: str,
    kind: str,
    role: str | None,
    pid: int | None,
    worktree_id: int | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Register agent NAME (or mark it active again with a new pid)."""
    with state.open() as store:
        written = store.register_agent(name, kind=kind, role=role, pid=pid, worktree_id=worktree_id)
    print_written("agent", written.item, written.outcome, fmt_of(as_json, nl))


@agents.command("set")
@click.argument("name")
@click.option("-s", "--status", type=click.Choice(STATUSES), required=True)
@output_options
@click.pass_obj
def set_status(state: State, name: str, status: str, as_json: bool, nl: bool) -> None:
    """Set an agent's status (name or id)."""
    with state.open() as store:
        agent = store.update_agent(int(name) if name.isdigit() else name, status=status)
    print_written("agent", agent, "updated", fmt_of(as_json, nl))
