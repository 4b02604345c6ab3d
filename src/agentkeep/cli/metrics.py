"""`agentkeep metrics …`"""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.events import parse_since
from agentkeep.cli.output import fmt_of, output_options, print_list, print_written

COLUMNS = ["id", "at", "name", "value", "labels", "session_id", "agent_id"]


@click.group(invoke_without_command=True)
@click.option("--name", help="Only this metric.")
@click.option("--since", help="Only since 30m / 2h / 7d ago or an ISO time.")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="0: all.")
@output_options
@click.pass_context
def metrics(
    ctx: click.Context, name: str | None, since: str | None, limit: int, as_json: bool, nl: bool
) -> None:
    """List metric observations (newest first), or record one.

    \b
    Examples:
      agentkeep metrics --name tests.duration_s --since 7d --json
      agentkeep metrics record tests.duration_s 41.2 -l suite=unit
    """
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    with state.open() as store:
        items = store.list_metrics(name=name, since=parse_since(since), limit=limit)
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no metrics")


@metrics.command("record")
@click.argument("name")
@click.argument("value", type=float)
@click.option("-l", "--label", "labels", multiple=True, help="key=value (repeatable).")
@click.option("--session", "session_id", type=int)
@click.option("--agent", "agent_id", type=int)
@output_options
@click.pass_obj
def record(
    state: State,
    name: str,
    value: float,
    labels: tuple[str, ...],
    session_id: int | None,
    agent_id: int | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Record one observation of metric NAME."""
    from agentkeep.errors import InvalidInput

    parsed = {}
    for label in labels:
        key, sep, val = label.partition("=")
        if not sep or not key:
            raise InvalidInput(f"label {label!r} is not key=value")
        parsed[key] = val
    with state.open() as store:
        metric = store.record_metric(
            name, value, labels=parsed, session_id=session_id, agent_id=agent_id
        )
    print_written("metric", metric, "created", fmt_of(as_json, nl))
