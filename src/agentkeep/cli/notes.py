"""`agentkeep notes …`"""

from __future__ import annotations

from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    fetch,
    fmt_of,
    json_arg,
    limit_option,
    output_options,
    print_list,
    print_object,
    print_written,
    text_or_stdin,
)
from agentkeep.services.notes import KINDS

COLUMNS = ["id", "kind", "created_at", "author", "task_id", "body", "data"]


@click.group()
def notes() -> None:
    """Handoffs, decisions, next actions, validation results, pointers, health, facts.

    \b
    Examples:
      agentkeep notes add handoff "Parser half-done; test_nested fails" --task 12
      agentkeep notes add validation --command "make test" --exit-code 0 "all green"
      agentkeep notes add pointer --url https://github.com/o/r/pull/7 --ref pr
      agentkeep notes latest handoff --json
    """


@notes.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("body", required=False, default="")
@click.option("--task", "task_id", type=int, help="Attach to this task.")
@click.option("--session", "session_id", type=int, help="Attach to this session.")
@click.option("--agent", "agent_id", type=int, help="Attach to this agent.")
@click.option("--command", help="validation: the command that was run.")
@click.option("--exit-code", type=int, help="validation: its exit code.")
@click.option("--url", help="pointer: the URL of the repo, fork, PR or issue.")
@click.option("--ref", help="pointer: repo, fork, pr, issue, commit, doc or other.")
@click.option("--subject", help="health: what was checked (a model, an upstream API…).")
@click.option("--health-status", help="health: its status (ok, degraded, rate_limited…).")
@click.option("--data", "data_json", help="Extra fields as a JSON object ('-' reads stdin).")
@click.option("--idempotency-key", help="Retry-safe key: the same key creates one note.")
@output_options
@click.pass_obj
def add(
    state: State,
    kind: str,
    body: str,
    task_id: int | None,
    session_id: int | None,
    agent_id: int | None,
    command: str | None,
    exit_code: int | None,
    url: str | None,
    ref: str | None,
    subject: str | None,
    health_status: str | None,
    data_json: str | None,
    idempotency_key: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Add a note of KIND. BODY '-' reads the text from stdin.

    \b
    Examples:
      agentkeep notes add decision "Use WAL + FULL; NORMAL lost writes on power cut"
      pytest 2>&1 | tail -5 | agentkeep notes add validation - --command pytest --exit-code 1
    """
    from agentkeep.errors import InvalidInput

    data: dict[str, Any] = {}
    if data_json is not None:
        extra = json_arg(data_json, "--data")
        if not isinstance(extra, dict):
            raise InvalidInput("--data must be a JSON object")
        data.update(extra)
    named = {
        "command": command,
        "exit_code": exit_code,
        "url": url,
        "ref": ref,
        "subject": subject,
        "status": health_status,
    }
    data.update({k: v for k, v in named.items() if v is not None})
    text = text_or_stdin(body, "the note text") or ""
    with state.open() as store:
        written = store.add_note(
            kind,
            text,
            data=data,
            task_id=task_id,
            session_id=session_id,
            agent_id=agent_id,
            idempotency_key=idempotency_key,
        )
    print_written("note", written.item, written.outcome, fmt_of(as_json, nl))


@notes.command("list")
@click.option("-k", "--kind", type=click.Choice(KINDS), help="Only notes of this kind.")
@click.option("--task", "task_id", type=int, help="Only notes on this task.")
@click.option("--session", "session_id", type=int, help="Only notes on this session.")
@limit_option(20)
@output_options
@click.pass_obj
def list_(
    state: State,
    kind: str | None,
    task_id: int | None,
    session_id: int | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List notes, newest first.

    \b
    Example:
      agentkeep notes list -k decision -n 0 --json
    """
    with state.open() as store:
        items = store.list_notes(
            kind=kind, task_id=task_id, session_id=session_id, limit=fetch(limit)
        )
    print_list(cut(items, limit), fmt_of(as_json, nl), COLUMNS, empty="no notes")


@notes.command("show")
@click.argument("note_id", type=int)
@output_options
@click.pass_obj
def show(state: State, note_id: int, as_json: bool, nl: bool) -> None:
    """Show one note."""
    with state.open() as store:
        note = store.get_note(note_id)
    print_object(note, fmt_of(as_json, nl))


@notes.command("latest")
@click.argument("kind", type=click.Choice(KINDS), default="handoff")
@click.option("--task", "task_id", type=int, help="The latest on this task.")
@output_options
@click.pass_obj
def latest(state: State, kind: str, task_id: int | None, as_json: bool, nl: bool) -> None:
    """Show the newest note of KIND (default: handoff). JSON: an array of 0 or 1 notes.

    \b
    Example:
      agentkeep notes latest handoff --task 12
    """
    with state.open() as store:
        note = store.latest_note(kind, task_id=task_id)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_list([note] if note else [], fmt, COLUMNS)
    elif note is None:
        click.echo(f"no {kind} notes", err=True)
    else:
        print_object(note, fmt)
