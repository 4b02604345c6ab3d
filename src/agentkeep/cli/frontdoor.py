"""The front door: the commands run most often, served without importing click.

``agentkeep --help`` (``-h``, bare ``agentkeep``) prints click's own rendering, generated
into :mod:`agentkeep._cli_help` by scripts/gen_docs.py and checked for drift, at the
widths a pipe or an 80-column terminal (78) and a wide terminal (98) give. ``agentkeep
status [--json | --nl]`` opens the store and renders its status with the same functions
as the click command (:func:`open_store`, :func:`~agentkeep.cli.output.render_object`,
:func:`human_status`). Failures are reported by :func:`agentkeep.cli.main.failure_exit`,
as under click.

Anything else — other arguments or options, ``AGENTKEEP_DIR`` set (click validates it),
shell completion, another width, a stdout that is not UTF-8 (click.echo would re-wrap it) —
returns None and goes to click, so output and exit codes are the same either way
(tests/test_startup.py compares them byte for byte).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

STATUS_FORMATS = {("status",): "table", ("status", "--json"): "json", ("status", "--nl"): "nl"}


def serve(args: list[str]) -> int | None:
    """Run ``args`` here and return the exit code, or None when click must run them."""
    if "_AGENTKEEP_COMPLETE" in os.environ or not _utf8_stdout():
        return None
    if args in ([], ["--help"], ["-h"]):
        text = top_level_help()
        return None if text is None else _print(text)
    fmt = STATUS_FORMATS.get(tuple(args))
    if fmt is not None and not os.environ.get("AGENTKEEP_DIR"):
        return _status(fmt)
    return None


def top_level_help() -> str | None:
    """``agentkeep --help`` as click would print it here, or None for a width not
    generated."""
    from agentkeep._cli_help import HELP

    return HELP.get(help_width())


def help_width() -> int:
    """The width click's HelpFormatter uses: ``max(min(columns, 100) - 2, 50)``, with the
    columns ``shutil.get_terminal_size()`` gives (COLUMNS, else the terminal on
    ``sys.__stdout__``, else 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stream = sys.__stdout__
        try:
            columns = os.get_terminal_size(stream.fileno()).columns if stream else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, 100) - 2, 50)


def open_store(path: Path | None, actor: str | None, *, read_only: bool = False) -> Any:
    """Open the store for a command (``State.open``): settings that were ignored and a
    store made private on open are told on stderr."""
    import agentkeep
    from agentkeep.files import tightened_on_open

    store = agentkeep.open(path, actor=actor, read_only=read_only)
    if store.config.warnings:
        from agentkeep.cli.main import warn_about_config

        warn_about_config(store.config)
    if "." in tightened_on_open(store.store_dir, forget=False):  # doctor reports it too
        import click

        click.echo(
            "agentkeep: other users could read this store; it is private now (0700/0600)",
            err=True,
        )
    return store


def human_status(data: dict[str, Any]) -> str:
    counts = data["counts"]
    by_status = data["tasks_by_status"]
    tasks = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
    size_kib = (data["db_bytes"] + data["wal_bytes"]) / 1024
    lines = [f"project   {data['project']}  ({data['root']})"]
    if data.get("backend") == "postgres":
        lines += [
            f"store     {data['store_dir']}  schema v{data['db_schema_version']}",
            f"database  PostgreSQL {data['database']}, synchronous={data['synchronous']}, "
            f"{size_kib:,.0f} KiB",
        ]
    else:
        lines.append(
            f"store     {data['store_dir']}  schema v{data['db_schema_version']}, "
            f"{data['journal_mode']}, synchronous={data['synchronous']}, {size_kib:,.0f} KiB"
        )
    lines += [
        f"tasks     {counts['tasks']} ({tasks}); {data['ready_tasks']} ready",
        f"sessions  {counts['sessions']} ({data['running_sessions']} running,"
        f" {data['idle_sessions']} idle)",
        f"agents    {counts['agents']} ({data['active_agents']} active)",
        f"notes     {counts['notes']}    worktrees {counts['worktrees']}    "
        f"metrics {counts['metrics']}",
        f"events    {counts['events']} (last #{data['last_event_seq']} "
        f"at {data['last_event_at'] or '-'})",
        f"redacted  {counts['redactions']} value(s) kept off disk",
    ]
    if data.get("spooled"):
        lines.append(
            f"spool     {data['spooled']} hook delivery(ies) waiting"
            " (the next write or `agentkeep sync` stores them)"
        )
    return "\n".join(lines)


def _status(fmt: str) -> int:
    """``agentkeep status``, as the click command runs it (cli/setup_cmds.py)."""
    from agentkeep.cli.output import render_object

    failure: BaseException
    try:
        with open_store(None, os.environ.get("AGENTKEEP_ACTOR") or None) as store:
            _print(render_object(store.status(), fmt, human=human_status))
        return 0
    except (EOFError, KeyboardInterrupt):
        import click

        # What click's main does with these: a blank line that closes the terminal's ^C
        # echo, then Abort (reported as "aborted", exit 130).
        click.echo(file=sys.stderr)
        failure = click.exceptions.Abort()
    except Exception as error:
        failure = error
    from agentkeep.cli.main import failure_exit

    return failure_exit(failure, as_json=fmt != "table")


def _utf8_stdout() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "").replace("_", "") == "utf8"


def _print(text: str) -> int:
    """``click.echo(text)`` for text without ANSI sequences, on a UTF-8 stdout: the text and
    a newline, flushed. A reader that went away (``agentkeep --help | head -1``) is no
    error, as in :func:`agentkeep.cli.main.failure_exit`."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0
