"""`agentkeep context` — a thin adapter over agentkeep.services.context."""

from __future__ import annotations

import os

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, neutralize, output_options, print_list
from agentkeep.services.context import DEFAULT_BUDGET, MIN_BUDGET


@click.command("context")
@click.option(
    "--task",
    "task_id",
    type=int,
    help="The task the work is for (its title, body, labels and notes).",
)
@click.option(
    "--files",
    multiple=True,
    metavar="PATHS…",
    help="Files being worked on (repeatable; also several after one --files).",
)
@click.option("--query", help="What the work is about, in words.")
@click.option(
    "--budget",
    type=click.IntRange(min=MIN_BUDGET),
    default=DEFAULT_BUDGET,
    show_default=True,
    help="Most characters to print (agents cap injected context at 10,000).",
)
@click.argument("more_files", nargs=-1, metavar="", required=False)
@output_options
@click.pass_obj
def context(
    state: State,
    task_id: int | None,
    files: tuple[str, ...],
    query: str | None,
    budget: int,
    more_files: tuple[str, ...],
    as_json: bool,
    nl: bool,
) -> None:
    """What an agent should read for a piece of work, within a budget.

    Picks the project's specs and docs that apply — spec-kit, Kiro specs and steering,
    Agent OS standards, OpenSpec, ADRs, AGENTS.md/CLAUDE.md, Cursor rules and the domains
    of .agentkeep/specs.toml — plus the task's latest handoffs and decisions and the
    recent failures on the files, best first, each with the reason it was picked (a
    comment in the Markdown, `reasons` in --json). See docs/context.md.

    \b
    Examples:
      agentkeep context --task 12
      agentkeep context --files src/auth/login.py src/auth/token.py
      agentkeep context --query "token refresh" --budget 4000
      agentkeep context --task 12 --files src/auth/login.py --json
    """
    fmt = fmt_of(as_json, nl)
    # Paths as the user typed them, from the current directory (the library takes them
    # relative to the project root, or absolute).
    paths = [os.path.abspath(path) for path in (*files, *more_files)]
    with state.open() as store:
        assembled = store.context.assemble(task=task_id, files=paths, query=query, budget=budget)
    if fmt == "table":
        text = assembled.markdown()
        click.echo(neutralize(text), nl=not text.endswith("\n"))
        return
    print_list(assembled.items, fmt, [])
