"""`init`, `status` and `projects`."""

from __future__ import annotations

from pathlib import Path

import click

from agentkeep.cli import State
from agentkeep.cli.frontdoor import human_status
from agentkeep.cli.output import fmt_of, output_options, print_list, print_object


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", help="Project name (default: the directory name).")
@click.option(
    "--url",
    metavar="URL",
    help="Keep the database in a team's PostgreSQL: postgresql://[user@]host[:port]/db"
    "[?schema=NAME] (written to config.toml as store.url; never with a password).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the store already exists.")
@output_options
def init(
    path: Path | None, name: str | None, url: str | None, quiet: bool, as_json: bool, nl: bool
) -> None:
    """Create the store (.agentkeep/) in this git repository, if it does not exist.

    \b
    Examples:
      agentkeep init              # at the root of the git repository around the cwd
      agentkeep init ~/src/app    # in a given project directory
      agentkeep init --url postgresql://db.internal/agents?schema=webapp
    """
    from agentkeep.store import init_store

    fmt = fmt_of(as_json, nl)
    result = init_store(path, name=name, url=url)
    if fmt != "table":
        print_object(result, fmt)
    elif result.outcome == "created":
        click.echo(f"created {result.store_dir}")
    elif not quiet:
        click.echo(f"already initialised: {result.store_dir}")


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
        print_object(store.status(), fmt_of(as_json, nl), human=human_status)


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
