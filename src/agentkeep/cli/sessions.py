"""`agentkeep sessions …`"""

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
    since_option,
)
from agentkeep.services.sessions import LIST_STATUSES

COLUMNS = [
    "id",
    "status",
    "source",
    "agent_id",
    "task_id",
    "started_at",
    "ended_at",
    "exit_code",
    "resumable",
    "title",
]


def _list_options(func: Any) -> Any:
    """The filters `sessions` and `sessions list` share (the shape of `tasks list`)."""
    func = output_options(func)
    for option in reversed(
        [
            click.option(
                "-s",
                "--status",
                type=click.Choice(LIST_STATUSES),
                help="Only this status (running leaves out idle sessions; idle: only them).",
            ),
            click.option("--agent", "agent_id", type=int, help="Only this agent's sessions."),
            click.option("--task", "task_id", type=int, help="Only sessions on this task."),
            click.option("--source", help="Only sessions from this source (claude, codex, run…)."),
            since_option("sessions started"),
            limit_option(20),
        ]
    ):
        func = option(func)
    return func


def _list(
    state: State,
    *,
    status: str | None,
    agent_id: int | None,
    task_id: int | None,
    source: str | None,
    since: str | None,
    limit: int,
    fmt: str,
) -> None:
    with state.open(read_only=True) as store:
        items = store.list_sessions(
            status=status,
            agent_id=agent_id,
            task_id=task_id,
            source=source,
            since=since,
            limit=fetch(limit),
            resumable=True,
        )
    items = cut(items, limit)
    if fmt == "table":  # people read "idle" where the idle rule applies
        rows = [{**s.to_dict(), "status": "idle" if s.idle else s.status} for s in items]
        print_list(rows, fmt, COLUMNS, empty="no sessions")
    else:
        print_list(items, fmt, COLUMNS, empty="no sessions")


@click.group(invoke_without_command=True)
@_list_options
@click.pass_context
def sessions(ctx: click.Context, /, as_json: bool, nl: bool, **filters: Any) -> None:
    """List sessions (newest first), or start/end/show/resume one.

    Without a subcommand, the same as `sessions list`.

    \b
    Examples:
      agentkeep sessions list -s running
      agentkeep sessions start --source ci --title "nightly" --json
      agentkeep sessions end 4 --exit-code 0
      agentkeep sessions resume 12
    """
    if ctx.invoked_subcommand is None:
        _list(ctx.obj, **filters, fmt=fmt_of(as_json, nl))


@sessions.command("list")
@_list_options
@click.pass_obj
def list_cmd(state: State, /, as_json: bool, nl: bool, **filters: Any) -> None:
    """List sessions, newest first.

    A running session that the idle rule (`sessions.idle_minutes`) calls idle shows as
    idle in the table; in JSON its status stays running with "idle": true. --json
    records also say whether each session is displayable (agentkeep holds its history)
    and resumable (the agent's own files still exist).

    \b
    Examples:
      agentkeep sessions list
      agentkeep sessions list -s running --source claude
      agentkeep sessions list --since 2d -n 0 --json
    """
    _list(state, **filters, fmt=fmt_of(as_json, nl))


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
    has) and "resume_reason" (why it is not resumable, or null);
    `agentkeep transcript ID --format json` exports the entries themselves.

    \b
    Examples:
      agentkeep sessions show 12
      agentkeep sessions show 12 --no-transcript
      agentkeep sessions show 12 --json
    """
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        plan = store.resume_plan(session_id)
        session = {
            **store.get_session(session_id).to_dict(),
            "resumable": plan.resumable,
            "resume_reason": plan.reason,
        }
        entries = store.transcript_size(session_id)
        if fmt != "table":
            print_object({**session, "entries": entries}, fmt)
            return
        # People also see the capture counters (parent_id, prompts, tool_calls…).
        record = store.session_record(session_id)
        found = None if no_transcript else store.transcript(session_id)
    print_object({**record, **session, "entries": entries}, fmt)
    if found is not None:
        from agentkeep.services.transcripts import render_markdown

        click.echo("")
        click.echo(render_markdown(found, header=False, terminal=True), nl=False)


@sessions.command("resume")
@click.argument("session_id", type=int)
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the command (and its directory) instead of running it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the resume plan as JSON; run nothing.")
@click.pass_obj
def resume(state: State, session_id: int, print_only: bool, as_json: bool) -> None:
    """Continue a session in the agent that ran it.

    Runs the agent's own resume command in the session's directory (`claude --resume
    ID`, `codex resume ID`) when the agent's files still exist. Otherwise exits 5
    saying why the session is displayable but not resumable (the upstream file is gone,
    the agent's retention passed, an archived Codex thread, a source agentkeep cannot
    resume); `sessions show` still shows what agentkeep kept.

    \b
    Examples:
      agentkeep sessions resume 12
      agentkeep sessions resume 12 --print
      agentkeep sessions resume 12 --json
    """
    import os
    import shlex
    import shutil

    from agentkeep.errors import Conflict, InvalidInput

    with state.open(read_only=True) as store:
        plan = store.resume_plan(session_id)
    if as_json:
        print_object(plan, "json")
        return
    if not plan.resumable or plan.command is None or plan.cwd is None:
        held = "displayable" if plan.displayable else "not displayable (agentkeep holds no history)"
        raise Conflict(
            f"session {session_id} is {held}, not resumable: {plan.reason}",
            hint=f"`agentkeep sessions show {session_id}` shows what agentkeep kept"
            if plan.displayable
            else None,
        )
    if print_only:
        click.echo(f"cd {shlex.quote(plan.cwd)} && {shlex.join(plan.command)}")
        return
    if shutil.which(plan.command[0]) is None:
        raise InvalidInput(
            f"session {session_id} is resumable, but {plan.command[0]} is not on PATH",
            hint=f"install it, or run: cd {shlex.quote(plan.cwd)} && {shlex.join(plan.command)}",
        )
    os.chdir(plan.cwd)
    os.execvp(plan.command[0], plan.command)  # the agent takes over this process


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
