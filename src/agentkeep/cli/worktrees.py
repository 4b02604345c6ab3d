"""`agentkeep worktrees …`"""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_list, print_written

COLUMNS = ["id", "path", "branch", "status", "lease_owner", "lease_expires_at", "base_commit"]


@click.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include removed worktrees.")
@output_options
@click.pass_context
def worktrees(ctx: click.Context, show_all: bool, as_json: bool, nl: bool) -> None:
    """List the worktrees agents use, or add, lease, release and remove them.
    `worktrees` is short for `worktrees list`.

    \b
    Examples:
      agentkeep worktrees
      agentkeep worktrees add ../app-wt1 --branch fix/login
      agentkeep worktrees lease 3 --owner agent-7 --ttl 3600
      agentkeep worktrees remove 3       # refused if it has unmerged or untracked work
    """
    if ctx.invoked_subcommand is None:
        _show(ctx.obj, show_all, as_json, nl)


@worktrees.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include removed worktrees.")
@output_options
@click.pass_obj
def list_(state: State, show_all: bool, as_json: bool, nl: bool) -> None:
    """List worktrees (active ones unless --all).

    \b
    Example:
      agentkeep worktrees list --all --json
    """
    _show(state, show_all, as_json, nl)


def _show(state: State, show_all: bool, as_json: bool, nl: bool) -> None:
    with state.open() as store:
        items = store.list_worktrees(status=None if show_all else "active")
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no worktrees")


@worktrees.command("add")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--branch", help="Its branch.")
@click.option("--base", "base_commit", help="The commit it started from.")
@output_options
@click.pass_obj
def add(
    state: State, path: str, branch: str | None, base_commit: str | None, as_json: bool, nl: bool
) -> None:
    """Record a worktree at PATH (stored relative to the project root)."""
    with state.open() as store:
        written = store.add_worktree(path, branch=branch, base_commit=base_commit)
    print_written("worktree", written.item, written.outcome, fmt_of(as_json, nl))


@worktrees.command("lease")
@click.argument("worktree_id", type=int)
@click.option("--owner", help="Who takes the lease (default: the actor).")
@click.option(
    "--ttl",
    type=click.IntRange(1, 366 * 24 * 3600),
    default=3600,
    show_default=True,
    help="Seconds until the lease expires.",
)
@output_options
@click.pass_obj
def lease(
    state: State, worktree_id: int, owner: str | None, ttl: int, as_json: bool, nl: bool
) -> None:
    """Take or extend the lease on a worktree (exit 5 while someone else holds it)."""
    with state.open() as store:
        worktree = store.lease_worktree(worktree_id, owner or store.actor, ttl_seconds=ttl)
    print_written("worktree", worktree, "updated", fmt_of(as_json, nl))


@worktrees.command("release")
@click.argument("worktree_id", type=int)
@click.option("--owner", help="The lease holder (default: the actor).")
@output_options
@click.pass_obj
def release(state: State, worktree_id: int, owner: str | None, as_json: bool, nl: bool) -> None:
    """Release your lease on a worktree."""
    with state.open() as store:
        worktree = store.release_worktree(worktree_id, owner or store.actor)
    print_written("worktree", worktree, "updated", fmt_of(as_json, nl))


@worktrees.command("remove")
@click.argument("worktree_id", type=int)
@click.option("--force", is_flag=True, help="Remove even with unmerged commits or files.")
@output_options
@click.pass_obj
def remove(state: State, worktree_id: int, force: bool, as_json: bool, nl: bool) -> None:
    """Remove a worktree (git worktree remove) and mark it removed.

    Refused while it has commits on no other branch or untracked/modified files.
    """
    with state.open() as store:
        worktree = store.remove_worktree(worktree_id, force=force)
    print_written("worktree", worktree, "updated", fmt_of(as_json, nl))
