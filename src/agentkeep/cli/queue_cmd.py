"""`agentkeep queue …`: work queues whose items are files (docs/queues.md)."""

from __future__ import annotations

from typing import Any

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
    print_object,
    print_written,
    text_or_stdin,
)

SUMMARY_COLUMNS = ["queue", "ready", "delayed", "taken", "done", "failed", "oldest_ready_age_s"]
ITEM_COLUMNS = ["id", "state", "attempts", "put_at", "lease_expires_at", "holder", "body"]
STATES = ("ready", "delayed", "taken", "done", "failed")
SECONDS = click.FloatRange(min=0, min_open=True)


@click.group()
def queue() -> None:
    """Work queues: put items, take one at a time with a lease, ack or nack them, or let
    `queue work` run a command for each item as soon as it appears.

    Each item is a file under .agentkeep/queues/QUEUE/; its state is the directory it is
    in (new, cur, done, failed), changed by one atomic rename (docs/queues.md).

    \b
    Examples:
      agentkeep queue put builds '{"ref": "main"}'
      agentkeep queue take builds --json          # null when nothing is ready
      agentkeep queue ack builds 18a3c0f2b4d5e6f7-0a1b2c3d4e5f
      agentkeep queue work builds -- ./build.sh   # the body on stdin
      agentkeep queue ls --json
    """


def _warn_event(item: Any) -> None:
    if getattr(item, "event_error", None):
        click.echo(f"agentkeep: warning: the event was not recorded: {item.event_error}", err=True)


@queue.command("put")
@click.argument("queue_name", metavar="QUEUE")
@click.argument("body")
@click.option("--idempotency-key", help="Retry-safe key: the same key adds one item.")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, help="Not before SECONDS.")
@output_options
@click.pass_obj
def put(
    state: State,
    queue_name: str,
    body: str,
    idempotency_key: str | None,
    delay: float,
    as_json: bool,
    nl: bool,
) -> None:
    """Add an item with BODY to QUEUE ('-' reads the body from stdin).

    \b
    Examples:
      agentkeep queue put reviews "PR 42"
      git diff | agentkeep queue put reviews - --idempotency-key diff-$(git rev-parse HEAD)
    """
    text = text_or_stdin(body, "the item body") or ""
    with state.open() as store:
        written = store.queues.put(queue_name, text, idempotency_key=idempotency_key, delay=delay)
    print_written("item", written.item, written.outcome, fmt_of(as_json, nl))
    _warn_event(written.item)


@queue.command("take")
@click.argument("queue_name", metavar="QUEUE")
@click.option(
    "--lease",
    type=SECONDS,
    default=300.0,
    show_default=True,
    help="Seconds until the item returns to the queue unless acked or nacked.",
)
@output_options
@click.pass_obj
def take(state: State, queue_name: str, lease: float, as_json: bool, nl: bool) -> None:
    """Claim the oldest ready item of QUEUE and print it (id, body, attempts).

    Nothing ready: exit 0 with no item (`null` under --json, nothing under --nl).

    \b
    Example:
      item=$(agentkeep queue take builds --json)
      id=$(echo "$item" | jq -r .id)   # "null" when nothing was ready
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        item = store.queues.take(queue_name, lease=lease)
    if item is None:
        if fmt == "json":
            click.echo("null")
        elif fmt == "table":
            click.echo("nothing to take", err=True)
        return
    print_object(item, fmt)
    _warn_event(item)


def _attempt_option(func: Any) -> Any:
    return click.option(
        "--attempt",
        type=click.IntRange(min=1),
        help="Only if this take (the `attempts` that `take` printed) still holds it.",
    )(func)


@queue.command("ack")
@click.argument("queue_name", metavar="QUEUE")
@click.argument("item_id", metavar="ID")
@_attempt_option
@output_options
@click.pass_obj
def ack(
    state: State, queue_name: str, item_id: str, attempt: int | None, as_json: bool, nl: bool
) -> None:
    """Mark a taken item done. An item not taken any more (its lease expired) is a
    conflict (exit 5).

    \b
    Example:
      agentkeep queue ack builds 18a3c0f2b4d5e6f7-0a1b2c3d4e5f --attempt 1
    """
    with state.open() as store:
        item = store.queues.ack(queue_name, item_id, attempt=attempt)
    print_written("item", item, "updated", fmt_of(as_json, nl))
    _warn_event(item)


@queue.command("nack")
@click.argument("queue_name", metavar="QUEUE")
@click.argument("item_id", metavar="ID")
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, help="Retry after SECONDS.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    help="Fail the item (failed/) when it has had this many takes.",
)
@_attempt_option
@output_options
@click.pass_obj
def nack(
    state: State,
    queue_name: str,
    item_id: str,
    delay: float,
    max_attempts: int | None,
    attempt: int | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Give a taken item back: ready again (after --delay), or failed after
    --max-attempts takes. An item not taken any more is a conflict (exit 5).

    \b
    Example:
      agentkeep queue nack builds 18a3c0f2b4d5e6f7-0a1b2c3d4e5f --delay 30 --max-attempts 3
    """
    with state.open() as store:
        item = store.queues.nack(
            queue_name, item_id, delay=delay, max_attempts=max_attempts, attempt=attempt
        )
    print_written("item", item, "updated", fmt_of(as_json, nl))
    _warn_event(item)


@queue.command("ls")
@click.argument("queue_name", metavar="[QUEUE]", required=False)
@click.option("--state", "item_state", type=click.Choice(STATES), help="Only items in it.")
@limit_option(50)
@output_options
@click.pass_obj
def ls(
    state: State,
    queue_name: str | None,
    item_state: str | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """The queues with their counts by state and the age of the oldest ready item; with
    QUEUE, its items (ready, delayed, taken, failed, done; oldest first).

    \b
    Examples:
      agentkeep queue ls
      agentkeep queue ls builds --state failed --json
    """
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        if queue_name is None:
            if item_state is not None:
                raise click.UsageError("--state needs a QUEUE")
            queues = cut(store.queues.list_queues(), limit)
            print_list(queues, fmt, SUMMARY_COLUMNS, empty="no queues")
            return
        items = store.queues.items(queue_name, state=item_state, limit=fetch(limit))
    print_list(cut(items, limit), fmt, ITEM_COLUMNS, empty="no items")


@queue.command("show")
@click.argument("queue_name", metavar="QUEUE")
@click.argument("item_id", metavar="ID")
@output_options
@click.pass_obj
def show(state: State, queue_name: str, item_id: str, as_json: bool, nl: bool) -> None:
    """Show one item, whatever its state.

    \b
    Example:
      agentkeep queue show builds 18a3c0f2b4d5e6f7-0a1b2c3d4e5f --json
    """
    with state.open(read_only=True) as store:
        item = store.queues.get(queue_name, item_id)
    print_object(item, fmt_of(as_json, nl))


@queue.command("work", context_settings={"ignore_unknown_options": True})
@click.argument("queue_name", metavar="QUEUE")
@click.option("--lease", type=SECONDS, default=60.0, show_default=True, help="Lease seconds "
              "(renewed every third of it while the command runs).")  # fmt: skip
@click.option("--poll", type=SECONDS, default=0.1, show_default=True, help="Idle poll seconds.")
@click.option("--once", is_flag=True, help="Run one item (waiting for it), then exit.")
@click.option("--max-items", type=click.IntRange(min=1), help="Exit after N items.")
@click.option("--drain", is_flag=True, help="Exit when nothing is ready to take.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Takes before an item fails.")  # fmt: skip
@click.option("--backoff", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Retry delay after the first failure; doubles each time.")  # fmt: skip
@click.option("--backoff-max", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="The longest retry delay.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Do not echo the command's output.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def work(
    state: State,
    queue_name: str,
    lease: float,
    poll: float,
    once: bool,
    max_items: int | None,
    drain: bool,
    max_attempts: int,
    backoff: float,
    backoff_max: float,
    quiet: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND for each item of QUEUE as soon as it appears (within ~0.1 s).

    Each run is a recorded session (`agentkeep logs SESSION`), with the item's body on
    its stdin and AGENTKEEP_QUEUE, AGENTKEEP_QUEUE_ITEM and AGENTKEEP_QUEUE_ATTEMPT in
    its environment. Exit 0 acks the item; any other result gives it back with
    exponential backoff, and it fails after --max-attempts takes. A killed worker's item
    returns to the queue at once; SIGTERM/SIGINT stop the worker after the current item.

    \b
    Examples:
      agentkeep queue work builds -- ./build.sh
      agentkeep queue work reviews --max-attempts 3 -- sh -c 'review "$AGENTKEEP_QUEUE_ITEM"'
      agentkeep queue work jobs --drain --json -- python job.py
    """
    from agentkeep.ops.queue_worker import work_queue
    from agentkeep.services.queues import QueueItem

    def report(item: QueueItem, outcome: str) -> None:
        if not as_json:
            click.echo(f"agentkeep: {item.queue} {item.id} attempt {item.attempts}: {outcome}",
                       err=True)  # fmt: skip

    with state.open() as store:
        result = work_queue(
            store,
            queue_name,
            list(command),
            lease=lease,
            poll=poll,
            max_items=1 if once else max_items,
            drain=drain,
            max_attempts=max_attempts,
            backoff=backoff,
            backoff_max=backoff_max,
            echo=not quiet,
            on_item=report,
        )
    if as_json:
        click.echo(dumps({"schema_version": 1, **result.to_dict()}))
