"""`agentkeep prime` — a thin adapter over agentkeep.services.prime."""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, neutralize, output_options, print_object
from agentkeep.services.prime import MAX_CHARS


@click.command("prime")
@click.option(
    "--hook-json",
    is_flag=True,
    help="Print the SessionStart hook envelope (one JSON object); always exit 0.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=200, clamp=True),
    default=MAX_CHARS,
    show_default=True,
    help="Longest text to print (agents cap injected context at 10,000).",
)
@output_options
@click.pass_obj
def prime(state: State, hook_json: bool, max_chars: int, as_json: bool, nl: bool) -> None:
    """What a new agent session should know: handoffs, ready tasks, failures, worktrees.

    Prints compact Markdown: the latest handoff notes and next actions, the tasks ready
    to claim, failed sessions and tool calls of the last 24 hours, and the active
    worktrees with their lease owners — at most --max-chars characters, each section
    saying how many items it left out.

    With --hook-json it prints the envelope Claude Code and Codex read from a
    SessionStart hook ({"hookSpecificOutput": {"hookEventName": "SessionStart",
    "additionalContext": ...}}) and always exits 0: without a store, or on any error,
    it prints {} (errors are logged to .agentkeep/hook-errors.log, which `agentkeep
    doctor` reports). `agentkeep setup claude` installs it.

    \b
    Examples:
      agentkeep prime                       # read it yourself
      agentkeep prime --max-chars 4000
      agentkeep prime --json                # the text and the parts it was made of
      agentkeep prime --hook-json < /dev/null
    """
    if hook_json:
        from agentkeep.services.prime import hook_json as render_hook_json

        click.echo(render_hook_json(state.store, max_chars=max_chars))
        return
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        record = store.prime(max_chars=max_chars)
    if fmt == "table":
        click.echo(neutralize(record.text), nl=not record.text.endswith("\n"))
        return
    print_object(record, fmt)
