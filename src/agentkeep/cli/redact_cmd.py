"""`agentkeep redact`: what the privacy boundary would remove from a text."""

from __future__ import annotations

import bisect
from typing import BinaryIO

import click

from agentkeep.cli.output import fmt_of, output_options, print_list


@click.command()
@click.argument("source", default="-", type=click.File("rb"))
@click.option("--text", "show_text", is_flag=True, help="Print the redacted text instead.")
@output_options
def redact(source: BinaryIO, show_text: bool, as_json: bool, nl: bool) -> None:
    """Show what would be redacted in FILE (or stdin). Nothing is stored.

    Prints one line per finding (line, column, rule); the secret itself is never printed.

    \b
    Examples:
      agentkeep redact .env
      cat transcript.jsonl | agentkeep redact --json
      agentkeep redact --text notes.md > notes.clean.md
    """
    from agentkeep.boundary import redact_text  # RedactionFailed when the redactor fails
    from agentkeep.redact import scan

    if show_text and (as_json or nl):
        raise click.UsageError("--text prints the redacted text itself; it has no JSON form")
    text = source.read().decode("utf-8", errors="replace")
    if show_text:
        click.echo(redact_text(text)[0], nl=False)
        return
    line_starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            line_starts.append(index + 1)
    findings = []
    for match in scan(text):
        line = bisect.bisect_right(line_starts, match.start)
        findings.append(
            {
                "line": line,
                "column": match.start - line_starts[line - 1] + 1,
                "rule": match.rule,
                "length": match.end - match.start,
            }
        )
    print_list(
        findings,
        fmt_of(as_json, nl),
        ["line", "column", "rule", "length"],
        empty="nothing to redact",
    )
