"""`agentkeep sessions …`"""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_list, print_object, print_written
from agentkeep.sessions import STATUSES

COLUMNS = [
    "id",
    "status",
    "source",
    "agent_id",
    "task_id",
    "started_at",
    "ended_at",
    "exit_code",
    "title",
]


@click.group(invoke_without_command=True)
@click.option("-s", "--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--agent", "agent_id", type=int, help="Only this agent's sessions.")
@click.option("--task", "task_id", type=int, help="Only sessions on this task.")
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="0: all.")
@output_options
@click.pass_context
def sessions(
    ctx: click.Context,
    status: str | None,
    agent_id: int | None,
    task_id: int | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List sessions (newest first), or start/end/show one.

    \b
    Examples:
      agentkeep sessions -s running
      agentkeep sessions start --source ci --title "nightly" --json
      agentkeep sessions end 4 --exit-code 0
    """
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    with state.open() as store:
        items = store.list_sessions(status=status, agent_id=agent_id, task_id=task_id, limit=limit)
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no sessions")


@sessions.command("show")
@click.argument("session_id", type=int)
@click.option(
    "--no-transcript", is_flag=True, help="Only the session's fields, not its conversation."
)
@output_options
@click.pass_obj
def show(state: State, session_id: int, no_transcript: bool, as_json: bool, nl: bool) -> None:
    """Show one session and its conversation (tool calls folded, failures marked ✗).

    --json gives the session's fields plus "entries" (how many transcript entries it
    has); `agentkeep transcript ID --format json` exports the entries themselves.

    \b
    Examples:
      agentkeep sessions show 12
      agentkeep sessions show 12 --no-transcript
      agentkeep sessions show 12 --json
    """
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        session = store.get_session(session_id).to_dict()
        entries = store.transcript_size(session_id)
        if fmt != "table":
            print_object({**session, "entries": entries}, fmt)
            return
        # People also see the capture counters (parent_id, prompts, tool_calls…).
        record = store.session_record(session_id)
        found = None if no_transcript else store.transcript(session_id)
    print_object({**session, **record, "entries": entries}, fmt)
    if found is not None:
        from agentkeep.transcripts import render_markdown

        click.echo("")
        click.echo(render_markdown(found, header=False, terminal=True), nl=False)


@sessions.command("start")
@click.option(
    "--source",
    default="agentkeep",
    show_default=True,
    help="Where the session comes from (claude, codex, run, ci…).",
)
@click.option("--external-id", help="The outside tool's id; starting it twice is a no-op.")
@click.option("--agent", "agent_id", type=int)
@click.option("--task", "task_id", type=int)
@click.option("--model")
@click.option("--title")
@output_options
@click.pass_obj
def start(
    state: State,
    source: str,
    external_id: str | None,
    agent_id: int | None,
    task_id: int | None,
    model: str | None,
    title: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Record the start of a session."""
    import os

    with state.open() as store:
        written = store.start_session(
            source=source,
            external_id=external_id,
            agent_id=agent_id,
            task_id=task_id,
            model=model,
            cwd=os.getcwd(),
            title=title,
        )
    print_written("session", written.item, written.outcome, fmt_of(as_json, nl))


@sessions.command("end")
@click.argument("session_id", type=int)
@click.option(
    "-s",
    "--status",
    type=click.Choice(["ended", "failed", "interrupted"]),
    default="ended",
    show_default=True,
)
@click.option("--exit-code", type=int)
@output_options
@click.pass_obj
def end(
    state: State, session_id: int, status: str, exit_code: int | None, as_json: bool, nl: bool
) -> None:
    """Record the end of a session."""
    with state.open() as store:
        session = store.end_session(session_id, status=status, exit_code=exit_code)
    print_written("session", session, "updated", fmt_of(as_json, nl))
