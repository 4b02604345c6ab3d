"""The ``agentkeep`` command line: the click group, its root options and error rendering.

Each command parses its arguments, opens the store, calls one library function and renders
the result (cli/output.py). Subcommand modules are imported lazily, so ``agentkeep status``
does not pay for the others. Errors become one sentence plus a hint on stderr (JSON under
``--json``), with the exit code of their class (errors.py); never a traceback for bad input.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from agentkeep._version import __version__
from agentkeep.cli.frontdoor import open_store
from agentkeep.errors import WITHHELD, AgentkeepError, shown_text

# command name -> "module:attribute", imported on first use.
COMMANDS: dict[str, str] = {
    "init": "agentkeep.cli.setup_cmds:init",
    "status": "agentkeep.cli.setup_cmds:status",
    "projects": "agentkeep.cli.setup_cmds:projects",
    "tasks": "agentkeep.cli.tasks:tasks",
    "notes": "agentkeep.cli.notes:notes",
    "sessions": "agentkeep.cli.sessions:sessions",
    "agents": "agentkeep.cli.agents:agents",
    "worktrees": "agentkeep.cli.worktrees:worktrees",
    "events": "agentkeep.cli.events:events",
    "metrics": "agentkeep.cli.metrics:metrics",
    "undo": "agentkeep.cli.events:undo",
    "db": "agentkeep.cli.db:db",
    "config": "agentkeep.cli.config_cmd:config",
    "redact": "agentkeep.cli.redact_cmd:redact",
    "run": "agentkeep.cli.run_cmd:run",
    "logs": "agentkeep.cli.run_cmd:logs",
    "artifacts": "agentkeep.cli.artifacts:artifacts",
    "artifact": "agentkeep.cli.artifacts:artifact",  # hidden alias of `artifacts`
    "gc": "agentkeep.cli.retention_cmds:gc",
    "usage": "agentkeep.cli.retention_cmds:usage",
    "pin": "agentkeep.cli.retention_cmds:pin",
    "unpin": "agentkeep.cli.retention_cmds:unpin",
    "doctor": "agentkeep.cli.doctor_cmd:doctor",
    "backup": "agentkeep.cli.bundle_cmds:backup",
    "restore": "agentkeep.cli.bundle_cmds:restore",
    "export": "agentkeep.cli.bundle_cmds:export",
    "import-bundle": "agentkeep.cli.bundle_cmds:import_bundle",
    "hook": "agentkeep.cli.hook_cmd:hook",
    "setup": "agentkeep.cli.agent_setup:setup",
    "prime": "agentkeep.cli.prime_cmd:prime",
    "context": "agentkeep.cli.context_cmd:context",
    "import": "agentkeep.cli.import_cmd:import_",
    "transcript": "agentkeep.cli.transcript_cmd:transcript",
    "search": "agentkeep.cli.search_cmd:search",
    "stats": "agentkeep.cli.stats_cmd:stats",
    "serve": "agentkeep.cli.serve_cmd:serve",
    "server": "agentkeep.cli.serve_cmd:server",
    "mcp": "agentkeep.cli.mcp_cmd:mcp",
    "sync": "agentkeep.cli.sync_cmd:sync",
    "queue": "agentkeep.cli.queue_cmd:queue",
    "collection": "agentkeep.cli.collection_cmd:collection",
    "records": "agentkeep.cli.collection_cmd:records_cmd",
    "doc": "agentkeep.cli.doc_cmd:doc",
    "msg": "agentkeep.cli.msg_cmd:msg",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when they run (or for help)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        return super().get_command(ctx, cmd_name)


class State:
    """What the root options hand to every command."""

    def __init__(self, store: Path | None, actor: str | None) -> None:
        self.store = store
        self.actor = actor

    def open(self, *, read_only: bool = False) -> Any:
        return open_store(self.store, self.actor, read_only=read_only)


def warn_about_config(config: Any) -> None:
    """Tell (on stderr) about settings that were ignored: unknown keys in config files."""
    for warning in config.warnings:
        click.echo(f"agentkeep: warning: {warning}", err=True)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="AGENTKEEP_DIR",
    help="The .agentkeep directory (or project root) to use. Default: found from the cwd.",
)
@click.option("--actor", envvar="AGENTKEEP_ACTOR", help="Who is recorded as making changes.")
@click.version_option(__version__, prog_name="agentkeep")
@click.pass_context
def cli(ctx: click.Context, store: Path | None, actor: str | None) -> None:
    """agentkeep: durable, local-first state for coding-agent work.

    \b
    Examples:
      agentkeep init                       # create .agentkeep/ in this git repository
      agentkeep status                     # what is in the store
      agentkeep tasks add "Fix login" -p 1 # record a task
      agentkeep tasks ready --json         # what an agent can pick up next
      agentkeep notes add handoff "Left the parser half-done; see test_x"
      agentkeep events -f                  # follow changes live

    Every read command prints a table, or JSON with --json (arrays; [] when empty) or
    --nl (one object per line). Exit codes: 0 ok, 1 error, 2 usage, 3 invalid input,
    4 not found, 5 conflict, 6 schema too new, 7 busy, 8 corrupt, 9 disk full,
    10 redaction failed, 11 used across fork, 12 storage error, 13 read-only.

    Tables use no colour when NO_COLOR is set or TERM=dumb. Shell completion:
    eval "$(_AGENTKEEP_COMPLETE=bash_source agentkeep)" (zsh_source, fish_source too).
    """
    ctx.obj = State(store, actor)


class _UsageError(AgentkeepError):
    code = "usage"
    exit_code = 2


def _report(error: AgentkeepError, *, as_json: bool) -> None:
    # Nothing here raises, so no chained traceback can show the original text either.
    payload = error.shown()
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False), err=True)
        return
    click.echo(f"error: {payload['error']}", err=True)
    if "hint" in payload:
        click.echo(f"hint: {payload['hint']}", err=True)


def _show_click_error(error: click.ClickException, *, as_json: bool) -> None:
    """Click's own rendering (or the JSON error shape), except that the message — which can
    echo an argument — is redacted first."""
    ctx = getattr(error, "ctx", None)
    if as_json:
        hint = f"see `{ctx.command_path} --help`" if ctx is not None else None
        _report(_UsageError(error.format_message(), hint=hint), as_json=True)
        return
    if isinstance(error, click.UsageError) and ctx is not None:
        click.echo(ctx.get_usage(), err=True)
        click.echo(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n", err=True)
    message = shown_text(error.format_message())
    click.echo(f"Error: {WITHHELD if message is None else message}", err=True)


def run(argv: Sequence[str]) -> int:
    """Run the CLI and return its exit code (used by the console script and the tests)."""
    # Options after `--` belong to a command `agentkeep run` runs, not to us.
    ours = list(argv[: list(argv).index("--")] if "--" in argv else argv)
    wants_json = any(arg in ("--json", "--nl") for arg in ours)
    try:
        # standalone_mode=False returns ctx.exit()'s code (e.g. --version) instead of exiting.
        result = cli.main(args=list(argv), prog_name="agentkeep", standalone_mode=False)
    except (Exception, KeyboardInterrupt) as exc:
        return failure_exit(exc, as_json=wants_json)
    return result if isinstance(result, int) else 0


def failure_exit(failure: BaseException, *, as_json: bool) -> int:
    """Report a command's failure the one way (stderr; JSON under ``--json``/``--nl``) and
    return its exit code; used by :func:`run` and the front door (cli/frontdoor.py)."""
    try:
        raise failure
    except AgentkeepError as error:
        _report(error, as_json=as_json)
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as bare:
        click.echo(bare.ctx.get_help() if bare.ctx else cli.get_help(click.Context(cli)))
        return 0
    except click.ClickException as usage:
        _show_click_error(usage, as_json=as_json)
        return usage.exit_code
    except BrokenPipeError:
        # `agentkeep events list | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback opt-in
        if os.environ.get("AGENTKEEP_DEBUG"):
            raise
        bug = AgentkeepError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in agentkeep; rerun with AGENTKEEP_DEBUG=1 for a traceback",
        )
        _report(bug, as_json=as_json)
        return 1
