"""`agentkeep search` — a thin adapter over agentkeep.services.search."""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    fmt_of,
    output_options,
    print_list,
    render_table,
    since_option,
    table_time,
    use_color,
)
from agentkeep.services.search import HIGHLIGHT, KINDS, MAX_LIMIT

COLUMNS = ["kind", "id", "session_id", "task_id", "role", "label", "line", "at", "snippet"]
BOLD = ("\x1b[1m", "\x1b[22m")


@click.command()
@click.argument("query")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Only this kind (repeatable). Default: all of them.",
)
@click.option("--session", "session_id", type=int, help="Only this session's (tasks left out).")
@since_option("what was said, written, updated or stored")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=20,
    show_default=True,
    help="How many results.",
)
@output_options
@click.pass_obj
def search(
    state: State,
    query: str,
    kinds: tuple[str, ...],
    session_id: int | None,
    since: str | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """Search everything stored; best matches first.

    Kinds: message (transcripts), note, task, capture (what hooks recorded: prompts, tool
    inputs and outputs), artifact (names) and output (lines of `run` output; the newest
    2 MiB are scanned, narrow with --session for older runs).

    Words are AND-ed; "a quoted phrase" matches in order; migra* matches words starting
    with migra (two letters at least). Case and accents are ignored. Broad terms are
    ranked among their newest 5,000 matches, so the first keystrokes stay fast.
    Snippets mark each match with « » (bold on a terminal).

    \b
    Examples:
      agentkeep search "rate limiter"
      agentkeep search 'migra* "schema version"' --kind message --since 7d
      agentkeep search pytest --session 12 -n 5
      agentkeep search handoff --kind note --json
      agentkeep search AssertionError --kind output --kind capture
    """
    fmt = fmt_of(as_json, nl)
    tty = fmt == "table" and use_color()
    with state.open(read_only=True) as store:
        hits = store.search(
            query,
            kinds=kinds or KINDS,
            session=session_id,
            since=since,
            limit=limit,
            highlight=BOLD if tty else HIGHLIGHT,
        )
    if fmt != "table" or not hits:
        print_list(hits, fmt, COLUMNS, empty="no matches")
        return
    rows = [{**hit.to_dict(), "at": table_time(hit.at)} for hit in hits]
    table = render_table(
        [{k: v for k, v in row.items() if k != "snippet"} for row in rows], COLUMNS[:-1]
    )
    lines = table.splitlines()
    out = [lines[0]]
    for line, hit in zip(lines[1:], hits, strict=True):
        out += [line, f"    {hit.snippet}"]
    click.echo("\n".join(out))
