"""`init`, `status` and `projects`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_list, print_object


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", help="Project name (default: the directory name).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the store already exists.")
@output_options
def init(path: Path | None, name: str | None, quiet: bool, as_json: bool, nl: bool) -> None:
    """Create the store (.agentkeep/) in this git repository, if it does not exist.

    \b
    Examples:
      agentkeep init              # at the root of the git repository around the cwd
      agentkeep init ~/src/app    # in a given project directory
    """
    from agentkeep.store import init_store

    fmt = fmt_of(as_json, nl)
    result = init_store(path, name=name)
    if fmt != "table":
        print_object(result, fmt)
    elif result.outcome == "created":
        click.echo(f"created {result.store_dir}")
    elif not quiet:
        click.echo(f"already initialised: {result.store_dir}")


def _human_status(data: dict[str, Any]) -> str:
    counts = data["counts"]
    by_status = data["tasks_by_status"]
    tasks = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
    size_kib = (data["db_bytes"] + data["wal_bytes"]) / 1024
    lines = [
        f"project   {data['project']}  ({data['root']})",
        f"store     {data['store_dir']}  schema v{data['db_schema_version']}, "
        f"{data['journal_mode']}, synchronous={data['synchronous']}, {size_kib:,.0f} KiB",
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
        lines.append(f"spool     {data['spooled']} hook delivery(ies) waiting for the writer lock")
    return "\n".join(lines)


@click.command()
@output_options
@click.pass_obj
def status(state: State, as_json: bool, nl: bool) -> None:
    """Show what is in the store: counts, ready tasks, running sessions, size.

    \b
    Examples:
      agentkeep status
      agentkeep status --json | jq .ready_tasks
    """
    with state.open() as store:
        print_object(store.status(), fmt_of(as_json, nl), human=_human_status)


@click.command()
@output_options
def projects(as_json: bool, nl: bool) -> None:
    """List the projects this user has initialised (from the per-user registry).

    \b
    Examples:
      agentkeep projects
      agentkeep projects --json
    """
    from agentkeep.registry import list_projects

    print_list(
        list_projects(),
        fmt_of(as_json, nl),
        ["name", "root", "exists", "last_seen_at"],
        empty="no projects registered yet (run `agentkeep init` in one)",
    )
