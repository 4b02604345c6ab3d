"""`agentkeep run` and `agentkeep logs`."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    dumps,
    fmt_of,
    neutralize_output,
    output_options,
    print_object,
    use_color,
)

if TYPE_CHECKING:
    from agentkeep.services.streams import Line


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--agent", help="Record the run under this agent name (created if new).")
@click.option("--task", "task_id", type=int, help="Attach the session to this task.")
@click.option("--title", help="A title for the session (default: the command line).")
@click.option(
    "--pty",
    "use_pty",
    is_flag=True,
    help="Run the command on a pseudo-terminal (colours, progress bars); one 'pty' stream.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the session summary as JSON.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def run(
    state: State,
    agent: str | None,
    task_id: int | None,
    title: str | None,
    use_pty: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run a command as a recorded session.

    Its output is shown as usual and written, redacted, to the session's streams
    (stdout and stderr, or one pty stream). Exit code, signal, duration and events are
    recorded; SIGTERM/SIGHUP are passed on to the command. agentkeep exits with the
    command's exit code (128 + N when it was killed by signal N). Put `--` before the
    command so its own options are not read as agentkeep's.

    \b
    Examples:
      agentkeep run -- pytest -x
      agentkeep run --agent builder --task 12 -- make build
      agentkeep run --pty -- npm test        # keep colours and progress bars
      agentkeep logs 7 -f                    # follow it from another terminal
    """
    from agentkeep.errors import StorageFull
    from agentkeep.ops.runner import SEAL_INLINE_BYTES, record_command, run_unrecorded

    def announce(session_id: int) -> None:
        if not as_json:
            click.echo(f"agentkeep: recording session {session_id}", err=True)

    try:
        opened = state.open()
    except StorageFull as exc:  # the command runs even when recording cannot
        code = run_unrecorded(list(command), reason=exc.message, use_pty=use_pty)
        click.get_current_context().exit(128 - code if code < 0 else code)
    with opened as store:
        result, pending = record_command(
            store,
            list(command),
            agent=agent,
            task_id=task_id,
            title=title,
            use_pty=use_pty,
            on_start=announce,
            # The exit status is not kept waiting for large output to be compressed; with
            # --json the summary reports the streams sealed, as documented.
            seal_later_over=None if as_json else SEAL_INLINE_BYTES,
        )
    if pending is not None:  # the store is closed: the sealer opens its own
        pending.start()
    for problem in result.recording_errors:
        click.echo(f"agentkeep: {problem}", err=True)
    if as_json:
        print_object(result, "json")
    elif result.session_id is not None:
        how = f"signal {result.signal}" if result.signal else f"exit {result.exit_code}"
        click.echo(
            f"agentkeep: session {result.session_id} {result.status} ({how}, "
            f"{result.duration_ms / 1000:.1f} s); `agentkeep logs {result.session_id}`",
            err=True,
        )
    click.get_current_context().exit(result.shell_status)


@click.command()
@click.argument("session_id", type=int)
@click.option("-n", "--lines", "last", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until it ends.")
@click.option("--stream", "name", help="Only this stream (stdout, stderr or pty).")
@click.option(
    "--grep",
    help="Only lines matching this regular expression (Python syntax without "
    "backreferences or lookaround; matched in linear time by RE2).",
)
@output_options
@click.pass_obj
def logs(
    state: State,
    session_id: int,
    last: int | None,
    follow: bool,
    name: str | None,
    grep: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Show a session's recorded output, live or finished alike.

    Lines of stdout and stderr come in the order they were written, live or after the
    fact; -n N shows the last N lines in all. With -f, new output appears as it is
    written (within ~0.3 s) until the session ends and its streams are closed. --json
    prints an array of {stream, line, offset, text}; --nl one such object per line (and
    works with -f).

    \b
    Examples:
      agentkeep logs 7
      agentkeep logs 7 -n 50 --stream stderr
      agentkeep logs 7 -f --grep 'FAILED|Error'
      agentkeep logs 7 --nl | jq -r .text
    """
    fmt = fmt_of(as_json, nl)
    if follow and fmt == "json":
        raise click.UsageError("-f prints lines as they come: use --nl instead of --json")
    with state.open(read_only=True) as store:
        lines: Iterable[Line]
        if follow:
            lines = store.follow_stream(session_id, name=name, last=last, grep=grep)
        else:
            lines = store.session_lines(session_id, name, last=last, grep=grep)
        _print_lines(lines, fmt)


def _print_lines(lines: Iterable[Line], fmt: str) -> None:
    out = sys.stdout
    if fmt == "json":
        out.write("[" + ", ".join(dumps(line.to_dict()) for line in lines) + "]\n")
        return
    colours = use_color()
    for line in lines:
        text = (
            dumps(line.to_dict()) if fmt == "nl" else neutralize_output(line.text, colours=colours)
        )
        out.write(text + "\n")
        out.flush()
