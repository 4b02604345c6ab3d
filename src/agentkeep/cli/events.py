"""`agentkeep events …` and `agentkeep undo`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    dumps,
    fetch,
    fmt_of,
    limit_option,
    output_options,
    print_list,
    print_written,
    since_option,
)

# parse_since moved to agentkeep.timeutil; kept importable from here for older callers.
from agentkeep.timeutil import parse_since as parse_since

COLUMNS = ["seq", "at", "actor", "kind", "entity", "entity_id", "data"]
if TYPE_CHECKING:
    from agentkeep.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def event_filters(func: F) -> F:
    """The options `events` and `events list` share."""
    for option in reversed(
        [
            click.option(
                "-f", "--follow", is_flag=True, help="Keep printing new events as they commit."
            ),
            since_option("events"),
            click.option("--id-gt", "after", type=int, default=0, help="Only events with seq > N."),
            click.option("--entity", help="Only this entity type (task, note, session…)."),
            click.option("--entity-id", type=int, help="Only events of this entity id."),
            click.option("-k", "--kind", help="Only this kind (a trailing * matches a prefix)."),
            limit_option(50),
            output_options,
        ]
    ):
        func = option(func)
    return func


@click.group(invoke_without_command=True)
@event_filters
@click.pass_context
def events(ctx: click.Context, /, **filters: Any) -> None:
    """The event ledger: every change, in order. `events` is short for `events list`.

    \b
    Examples:
      agentkeep events -n 20
      agentkeep events list --entity task --entity-id 12
      agentkeep events -f --json            # one JSON object per line, live
      agentkeep events --id-gt 4711 --nl    # incremental consumers
    """
    if ctx.invoked_subcommand is None:
        _show(ctx.obj, **filters)


@events.command("list")
@event_filters
@click.pass_obj
def list_(state: State, /, **filters: Any) -> None:
    """List events (oldest of the newest N first), or follow them with -f."""
    _show(state, **filters)


def _show(
    state: State,
    *,
    follow: bool,
    since: str | None,
    after: int,
    entity: str | None,
    entity_id: int | None,
    kind: str | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        if follow:
            _follow(
                store, fmt, after=after, entity=entity, entity_id=entity_id, kind=kind, since=since
            )
            return
        items = store.events(
            after=after,
            entity=entity,
            entity_id=entity_id,
            kind=kind,
            since=since,
            limit=fetch(limit),
            newest_first=True,
        )
    items = cut(items, limit)
    items.reverse()
    print_list(items, fmt, COLUMNS, empty="no events")


def _follow(
    store: Store,
    fmt: str,
    *,
    after: int,
    entity: str | None,
    entity_id: int | None,
    kind: str | None,
    since: str | None,
) -> None:
    start = after
    if since is not None:
        earlier = store.events(since=since, limit=1)
        start = earlier[0].seq - 1 if earlier else store.last_seq()
    elif after == 0:
        start = store.last_seq()
    for event in store.follow(after=start, entity=entity, entity_id=entity_id, kind=kind):
        data = event.to_dict()
        if fmt == "table":
            click.echo(
                f"#{event.seq} {event.at} {event.actor} {event.kind} "
                f"{event.entity}:{event.entity_id or ''} {dumps(event.data)}"
            )
        else:  # --json while following is line-delimited (an array cannot be streamed)
            click.echo(dumps(data))


@click.command()
@click.argument("entity", type=click.Choice(["task", "agent", "worktree"]))
@click.argument("entity_id", type=int)
@output_options
@click.pass_obj
def undo(state: State, entity: str, entity_id: int, as_json: bool, nl: bool) -> None:
    """Revert the last reversible change to an entity (from the event ledger).

    Repeating it walks further back. Refused if the entity changed since in a way undo
    cannot account for.

    \b
    Examples:
      agentkeep undo task 12
      agentkeep undo worktree 3 --json
    """
    with state.open() as store:
        event = store.undo(entity, entity_id)
    print_written("event", event, "created", fmt_of(as_json, nl))
