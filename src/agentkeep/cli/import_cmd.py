"""`agentkeep import …`: the agent tools' own histories into this project's store."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from agentkeep import tools
from agentkeep.cli import State
from agentkeep.cli.output import dumps, fmt_of, output_options
from agentkeep.timeutil import parse_since

AGENT_SOURCES = tools.NAMES  # the agent tools (agentkeep/tools.py), in order


def _progress(enabled: bool) -> Any:
    """A one-line progress display on a terminal (stderr), nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        return None

    def show(number: int, total: int, key: str) -> None:
        text = f"\r  {number}/{total} {key[-60:]}"
        click.echo(f"{text:<80}", err=True, nl=number == total)

    return show


def _summary(result: dict[str, Any]) -> str:
    text = (
        f"{result['source']}: {result['messages']:,} new entries in {result['sessions']:,} "
        f"sessions from {result['imported']:,} files ({result['bytes'] / 1e6:.1f} MB, "
        f"{result['seconds']:.1f} s); {result['unchanged']:,} unchanged, "
        f"{result['foreign']:,} of other projects"
    )
    if result["failed"]:
        text += f", {result['failed']:,} failed"
    return text


def _report(results: list[Any], fmt: str) -> None:
    rows = [r.to_dict() for r in results]
    if fmt == "json":
        click.echo(dumps(rows))
        return
    if fmt == "nl":
        for row in rows:
            click.echo(dumps(row))
        return
    for row in rows:
        click.echo(_summary(row))
        for error in row["errors"][:10]:
            click.echo(f"  failed: {error}", err=True)


def _run(
    state: State,
    sources: list[str],
    *,
    path: Path | None,
    since: str | None,
    watch: bool,
    fmt: str,
    options: dict[str, Any] | None = None,
) -> None:
    since_iso = parse_since(since)
    with state.open() as store:
        results = [
            store.import_history(
                name,
                path=path,
                since=since_iso,
                options=options,
                progress=_progress(fmt == "table"),
            )
            for name in sources
        ]
        _report(results, fmt)
        if not watch:
            if any(r.failed for r in results):
                raise click.exceptions.Exit(1)
            return
        stopping: list[int] = []

        def stop_on(signum: int, _frame: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop_on)
        signal.signal(signal.SIGINT, stop_on)
        if fmt == "table":
            click.echo("watching for new lines (Ctrl-C to stop)…", err=True)

        def on_pass(pass_results: list[Any]) -> None:
            changed = [r for r in pass_results if r.messages or r.failed]
            if changed:
                _report(changed, fmt)

        store.watch_history(
            sources, path=path, options=options, on_pass=on_pass, stop=lambda: bool(stopping)
        )


_WATCH = click.option(
    "--watch", is_flag=True, help="Keep running; import new lines within ~2 s of being written."
)
_SINCE = click.option("--since", help="Skip files and entries older than 7d / 2026-11-01 / ISO.")


@click.group("import")
def import_() -> None:
    """Import the agent tools' own histories for this project (capture before deletion).

    Claude Code deletes transcripts after 30 days; Codex and OpenCode change their
    formats. Importing keeps this project's sessions — redacted, under the capture
    policy, searchable — after the tool forgets them. Re-running imports only what is
    new; nothing is imported twice.

    \b
    Examples:
      agentkeep import all                        # Claude Code, Codex and OpenCode
      agentkeep import claude --since 7d
      agentkeep import codex ~/backup/codex-sessions
      agentkeep import claude --watch             # keep importing as agents write
      agentkeep import jsonl usage.jsonl --as metric
    """


@import_.command("all")
@_SINCE
@_WATCH
@output_options
@click.pass_obj
def import_all(state: State, since: str | None, watch: bool, as_json: bool, nl: bool) -> None:
    """Import whatever Claude Code, Codex and OpenCode have for this project.

    \b
    Examples:
      agentkeep import all
      agentkeep import all --json
    """
    _run(state, list(AGENT_SOURCES), path=None, since=since, watch=watch, fmt=fmt_of(as_json, nl))


def _agent_command(source: str, where: str) -> click.Command:
    @click.argument("path", required=False, type=click.Path(path_type=Path, exists=True))
    @_SINCE
    @_WATCH
    @output_options
    @click.pass_obj
    def command(
        state: State, path: Path | None, since: str | None, watch: bool, as_json: bool, nl: bool
    ) -> None:
        _run(state, [source], path=path, since=since, watch=watch, fmt=fmt_of(as_json, nl))

    command.__doc__ = f"""Import {where}

    PATH replaces the default location (a directory, or one file).

    \b
    Examples:
      agentkeep import {source}
      agentkeep import {source} --since 2026-11-01 --json
      agentkeep import {source} --watch
    """
    return import_.command(source)(command)


for _tool in tools.TOOLS.values():
    _agent_command(_tool.name, _tool.import_help)


@import_.command("jsonl")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--as",
    "kind",
    required=True,
    type=click.Choice(["metric", "event", "message"]),
    help="What each record becomes.",
)
@click.option("--name", help="Names the import (the session or metric prefix; default: file).")
@_SINCE
@_WATCH
@output_options
@click.pass_obj
def import_jsonl(
    state: State,
    path: Path,
    kind: str,
    name: str | None,
    since: str | None,
    watch: bool,
    as_json: bool,
    nl: bool,
) -> None:
    """Import generic JSONL (one JSON object per line), or a directory of JSON snapshots.

    \b
    --as metric   numeric fields become metrics (a proxy's usage.jsonl: tokens, cost),
                  labelled by its text fields (model, provider...)
    --as event    each record is kept whole as a captured event
    --as message  records with role and content/text become a session's transcript

    \b
    Examples:
      agentkeep import jsonl ~/.proxy/usage.jsonl --as metric
      agentkeep import jsonl ./state-snapshots/ --as event --name squad
      agentkeep import jsonl chat.jsonl --as message --name review-bot
    """
    _run(
        state,
        ["jsonl"],
        path=path,
        since=since,
        watch=watch,
        fmt=fmt_of(as_json, nl),
        options={"kind": kind, "name": name},
    )
