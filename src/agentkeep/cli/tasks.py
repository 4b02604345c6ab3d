"""`agentkeep tasks …`"""

from __future__ import annotations

from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    fetch,
    fmt_of,
    limit_option,
    output_options,
    print_list,
    print_object,
    print_written,
    text_or_stdin,
)
from agentkeep.services.tasks import STATUSES

COLUMNS = ["id", "priority", "status", "assignee", "title", "labels", "depends_on"]
status_choice = click.Choice(STATUSES)


@click.group()
def tasks() -> None:
    """Record, list, claim and update tasks.

    \b
    Examples:
      agentkeep tasks add "Fix login redirect" -p 1 -l auth
      agentkeep tasks ready --json
      agentkeep tasks claim 12 --as agent-7
      agentkeep tasks update 12 --status done
      agentkeep tasks dep add 13 12       # 13 waits for 12
    """


@tasks.command("add")
@click.argument("title")
@click.option("-b", "--body", help="Description; '-' reads it from stdin.")
@click.option(
    "-p",
    "--priority",
    type=click.IntRange(0, 4),
    default=2,
    show_default=True,
    help="0 is the most urgent.",
)
@click.option("-l", "--label", "labels", multiple=True, help="A label (repeatable).")
@click.option("--assignee", help="Who works on it.")
@click.option("--parent", type=int, help="Parent task id (an epic).")
@click.option("--dep", "deps", type=int, multiple=True, help="A task this one waits for.")
@click.option("--idempotency-key", help="Retry-safe key: the same key creates one task.")
@output_options
@click.pass_obj
def add(
    state: State,
    title: str,
    body: str | None,
    priority: int,
    labels: tuple[str, ...],
    assignee: str | None,
    parent: int | None,
    deps: tuple[int, ...],
    idempotency_key: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Add a task.

    \b
    Examples:
      agentkeep tasks add "Write migration 2" -p 1 --dep 4
      git log -1 --format=%B | agentkeep tasks add "Follow up" --body -
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        written = store.add_task(
            title,
            body=text_or_stdin(body, "the task body") or "",
            priority=priority,
            labels=labels,
            assignee=assignee,
            parent_id=parent,
            depends_on=deps,
            idempotency_key=idempotency_key,
        )
    print_written("task", written.item, written.outcome, fmt)


@tasks.command("list")
@click.option(
    "-s",
    "--status",
    "statuses",
    type=status_choice,
    multiple=True,
    help="Only these statuses (repeatable). Default: all.",
)
@click.option("--assignee", help="Only tasks of this assignee.")
@click.option("-l", "--label", help="Only tasks with this label.")
@limit_option(0)
@output_options
@click.pass_obj
def list_(
    state: State,
    statuses: tuple[str, ...],
    assignee: str | None,
    label: str | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List tasks, most urgent first.

    \b
    Examples:
      agentkeep tasks list -s open -s in_progress
      agentkeep tasks list --label auth --json
    """
    with state.open() as store:
        items = store.list_tasks(
            status=statuses or None, assignee=assignee, label=label, limit=fetch(limit)
        )
    print_list(cut(items, limit), fmt_of(as_json, nl), COLUMNS, empty="no tasks")


@tasks.command("show")
@click.argument("task_id", type=int)
@output_options
@click.pass_obj
def show(state: State, task_id: int, as_json: bool, nl: bool) -> None:
    """Show one task.

    \b
    Example:
      agentkeep tasks show 12 --json
    """
    with state.open() as store:
        task = store.get_task(task_id)
    print_object(task, fmt_of(as_json, nl))


@tasks.command("update")
@click.argument("task_id", type=int)
@click.option("--title")
@click.option("-b", "--body", help="New description; '-' reads it from stdin.")
@click.option("-s", "--status", type=status_choice)
@click.option("-p", "--priority", type=click.IntRange(0, 4))
@click.option("--assignee", help="New assignee ('' clears it).")
@click.option("-l", "--label", "labels", multiple=True, help="Replace the labels (repeatable).")
@click.option("--clear-labels", is_flag=True, help="Remove all labels.")
@click.option(
    "--expect-status",
    type=status_choice,
    help="Only update if the task currently has this status (compare-and-set).",
)
@output_options
@click.pass_obj
def update(
    state: State,
    task_id: int,
    title: str | None,
    body: str | None,
    status: str | None,
    priority: int | None,
    assignee: str | None,
    labels: tuple[str, ...],
    clear_labels: bool,
    expect_status: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Change a task's fields. Status changes must follow the allowed transitions.

    \b
    Examples:
      agentkeep tasks update 12 --status done
      agentkeep tasks update 12 -p 0 --expect-status open
    """
    changes: dict[str, Any] = {}
    if title is not None:
        changes["title"] = title
    if body is not None:
        changes["body"] = text_or_stdin(body, "the task body")
    if status is not None:
        changes["status"] = status
    if priority is not None:
        changes["priority"] = priority
    if assignee is not None:
        changes["assignee"] = assignee or None
    if labels or clear_labels:
        changes["labels"] = list(labels)
    with state.open() as store:
        before = store.get_task(task_id)
        task = store.update_task(task_id, expect_status=expect_status, **changes)
    print_written("task", task, "updated" if task != before else "unchanged", fmt_of(as_json, nl))


@tasks.command("claim")
@click.argument("task_id", type=int)
@click.option("--as", "assignee", help="Who claims it (default: the actor).")
@click.option("--force", is_flag=True, help="Claim even if its dependencies are not done.")
@output_options
@click.pass_obj
def claim(
    state: State, task_id: int, assignee: str | None, force: bool, as_json: bool, nl: bool
) -> None:
    """Atomically claim an open task (exactly one concurrent claimer wins; exit 5 otherwise).

    \b
    Example:
      agentkeep tasks claim 12 --as agent-7 || echo "someone else got it"
    """
    with state.open() as store:
        who = assignee or store.actor
        before = store.get_task(task_id)
        task = store.claim_task(task_id, who, force=force)
    # A retry by the holder returns the task unchanged (see claim_task).
    retried = before.status == "in_progress" and before.assignee == who
    print_written("task", task, "unchanged" if retried else "updated", fmt_of(as_json, nl))


@tasks.command("ready")
@limit_option(0)
@output_options
@click.pass_obj
def ready(state: State, limit: int, as_json: bool, nl: bool) -> None:
    """Open tasks whose dependencies are all done, most urgent first.

    \b
    Example:
      agentkeep tasks ready -n 1 --json
    """
    with state.open() as store:
        items = cut(store.ready_tasks(limit=fetch(limit)), limit)
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no ready tasks")


@tasks.group("dep")
def dep() -> None:
    """Add or remove dependencies between tasks.

    \b
    Examples:
      agentkeep tasks dep add 13 12    # 13 waits for 12
      agentkeep tasks dep rm 13 12
    """


@dep.command("add")
@click.argument("task_id", type=int)
@click.argument("depends_on", type=int)
@output_options
@click.pass_obj
def dep_add(state: State, task_id: int, depends_on: int, as_json: bool, nl: bool) -> None:
    """TASK_ID waits for DEPENDS_ON. Cycles are refused."""
    with state.open() as store:
        task = store.add_dependency(task_id, depends_on)
    print_written("task", task, "updated", fmt_of(as_json, nl))


@dep.command("rm")
@click.argument("task_id", type=int)
@click.argument("depends_on", type=int)
@output_options
@click.pass_obj
def dep_rm(state: State, task_id: int, depends_on: int, as_json: bool, nl: bool) -> None:
    """Remove the dependency of TASK_ID on DEPENDS_ON."""
    with state.open() as store:
        task = store.remove_dependency(task_id, depends_on)
    print_written("task", task, "updated", fmt_of(as_json, nl))
