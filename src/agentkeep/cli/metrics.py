"""`agentkeep metrics …`"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    fetch,
    fmt_of,
    limit_option,
    output_options,
    print_list,
    print_written,
    since_option,
)

F = TypeVar("F", bound=Callable[..., Any])
COLUMNS = ["id", "at", "name", "value", "labels", "session_id", "agent_id"]


def _list_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--name", help="Only this metric."),
            since_option("observations"),
            limit_option(50),
            output_options,
        ]
    ):
        func = option(func)
    return func


@click.group(invoke_without_command=True)
@_list_options
@click.pass_context
def metrics(
    ctx: click.Context, name: str | None, since: str | None, limit: int, as_json: bool, nl: bool
) -> None:
    """List metric observations (newest first), or record one. `metrics` is short for
    `metrics list`.

    \b
    Examples:
      agentkeep metrics --name tests.duration_s --since 7d --json
      agentkeep metrics record tests.duration_s 41.2 -l suite=unit
    """
    if ctx.invoked_subcommand is None:
        _show(ctx.obj, name, since, limit, as_json, nl)


@metrics.command("list")
@_list_options
@click.pass_obj
def list_(
    state: State, name: str | None, since: str | None, limit: int, as_json: bool, nl: bool
) -> None:
    """List metric observations, newest first.

    \b
    Example:
      agentkeep metrics list --name tests.duration_s --since 7d -n 0
    """
    _show(state, name, since, limit, as_json, nl)


def _show(
    state: State, name: str | None, since: str | None, limit: int, as_json: bool, nl: bool
) -> None:
    with state.open() as store:
        items = store.list_metrics(name=name, since=since, limit=fetch(limit))
    print_list(cut(items, limit), fmt_of(as_json, nl), COLUMNS, empty="no metrics")


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
