"""`agentkeep db …`: schema version, migrations, backups, integrity."""

from __future__ import annotations

from pathlib import Path

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_object


@click.group()
def db() -> None:
    """Inspect, migrate, back up and check the database.

    \b
    Examples:
      agentkeep db status
      agentkeep db migrate
      agentkeep db backup /tmp/state-copy.db
      agentkeep db check --json
      agentkeep db accept
    """


@db.command("status")
@output_options
@click.pass_obj
def status(state: State, as_json: bool, nl: bool) -> None:
    """Schema version, compatibility, pending migrations, journal and size."""
    with state.open(read_only=True) as store:
        print_object(store.schema_status(), fmt_of(as_json, nl))


@db.command("migrate")
@output_options
@click.pass_obj
def migrate(state: State, as_json: bool, nl: bool) -> None:
    """Apply pending migrations (opening the store does this too; a backup is taken first)."""
    with state.open() as store:
        print_object(store.schema_status(), fmt_of(as_json, nl))


@db.command("backup")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@output_options
@click.pass_obj
def backup(state: State, dest: Path | None, as_json: bool, nl: bool) -> None:
    """Write a consistent snapshot while writers keep writing.

    DEST defaults to .agentkeep/backups/state-<time>.db.
    """
    with state.open(read_only=True) as store:
        path = store.backup(dest)
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo(str(path))
    else:
        print_object({"path": str(path), "bytes": path.stat().st_size}, fmt)


@db.command("check")
@output_options
@click.pass_obj
def check(state: State, as_json: bool, nl: bool) -> None:
    """Full integrity and foreign-key check. Exit 8 if the database is damaged."""
    from agentkeep.errors import Corrupt

    with state.open(read_only=True) as store:
        report = store.check()
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo("ok" if report.ok else "problems: " + "; ".join(report.problems))
    else:
        print_object(report, fmt)
    if not report.ok:
        raise Corrupt(
            "the database check found problems: " + "; ".join(report.problems),
            hint="restore the newest good backup from .agentkeep/backups/",
        )


@db.command("accept")
@output_options
@click.pass_obj
def accept(state: State, as_json: bool, nl: bool) -> None:
    """Accept the database as it is after a detected rollback or recorded damage.

    When commits are missing (exit 8, rollback_detected) or damage was recorded, writes are
    refused until you decide: restore a backup (`agentkeep restore …`), or run this to
    keep the database as it is now. The full integrity check must pass; the high-water
    mark is then reset and writes resume. The missing commits stay lost.

    \b
    Examples:
      agentkeep db accept
      agentkeep db accept --json
    """
    from agentkeep.store import accept_database

    result = accept_database(state.store)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_object(result, fmt)
        return
    click.echo(f"accepted {result.path} as it is (newest event {result.db_event_seq})")
    if result.missing_events:
        click.echo(f"{result.missing_events} acknowledged event(s) are missing and stay lost")
    if result.damage_cleared:
        click.echo(f"cleared the damage note: {result.damage_cleared}")
