"""`agentkeep transcript` — a thin adapter over agentkeep.services.transcripts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from agentkeep.cli import State
from agentkeep.errors import InvalidInput

FORMATS = ("md", "json", "jsonl")


@click.command()
@click.argument("session_id", type=int)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="md",
    show_default=True,
    help="Markdown for people; JSON (one object) or JSONL (one entry per line) for programs.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of stdout.",
)
@click.pass_obj
def transcript(state: State, session_id: int, fmt: str, output: Path | None) -> None:
    """Export a session's conversation, from any source (hooks or imported transcripts).

    Only this store is read: a session whose upstream file was deleted exports in full.
    Markdown folds tool calls to one line with their result's first line, marks failures
    with ✗ and folds thinking; JSON and JSONL carry every stored field.

    \b
    Examples:
      agentkeep transcript 12                     # Markdown on stdout
      agentkeep transcript 12 --format json | jq '.entries | length'
      agentkeep transcript 12 --format jsonl -o session-12.jsonl
    """
    from agentkeep.services.transcripts import render_json, render_jsonl, render_markdown

    with state.open(read_only=True) as store:
        found = store.transcript(session_id)
    if fmt == "md":
        text = render_markdown(found)
    elif fmt == "json":
        text = render_json(found) + "\n"
    else:
        text = "".join(line + "\n" for line in render_jsonl(found))
    if output is None:
        click.echo(text, nl=False)
        return
    try:  # an export: private to the user (0600) when it creates the file
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    click.echo(f"wrote {len(found.entries):,} entries to {output}", err=True)
    sys.stderr.flush()
