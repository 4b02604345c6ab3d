"""`agentkeep db …`: schema version, migrations, backups, integrity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
      agentkeep db copy --to 'postgresql://db.example/team?schema=myproject'
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


@db.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL|DIR",
    help="A PostgreSQL URL (postgresql://…?schema=NAME) or a project directory (SQLite).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per write transaction of the destination.",
)
@output_options
@click.pass_obj
def copy(state: State, target: str, batch: int, as_json: bool, nl: bool) -> None:
    """Copy the whole store into another backend, verified by counts and hashes.

    The destination is a PostgreSQL schema or a project directory that is empty (it is
    created) or holds an unfinished copy of this store: an interrupted copy is finished by
    running the same command again. Anything else is refused (exit 5). The source is read
    in one snapshot while writers keep writing; ids are kept. Every table's row count and
    hash are compared afterwards; a mismatch exits 8 and names the tables. Into a
    directory the stream and artifact files are copied too; into PostgreSQL they stay in
    this project's directory. Passwords come from PGPASSWORD or ~/.pgpass, never the URL.

    \b
    Examples:
      agentkeep db copy --to 'postgresql://db.example/team?schema=myproject'
      agentkeep db copy --to 'postgresql:///agentkeep?host=/run/postgresql' --json
      agentkeep --store ~/work/team-project db copy --to ./local-copy
    """
    from agentkeep.ops.copy import copy_store

    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        result = copy_store(store, target, batch=batch, progress=_progress())
    if fmt != "table":
        print_object(result, fmt)
        return
    verb = {"already_copied": "already copied", "resumed": "finished copying"}.get(
        result.outcome, "copied"
    )
    click.echo(f"{verb} {result.rows:,} rows to {result.destination} (verified)")
    for table in result.tables:
        if table["rows"]:
            click.echo(f"  {table['table']:<17} {table['rows']:>10,}  {table['hash'][:16]}")
    if result.files:
        click.echo(f"  {result.files:,} files ({result.file_bytes:,} bytes)")
    if result.files_left:
        click.echo(f"  {result.files_left:,} stream and artifact files stay in {store.store_dir}")
    if result.files_missing:
        click.echo(
            f"agentkeep: {result.files_missing:,} files named by the records are not in "
            f"{store.store_dir} and were not copied (first: {result.missing[0]})",
            err=True,
        )


def _progress() -> Any:
    """One line on stderr while a table is copied, when stderr is a terminal."""
    import sys

    if not sys.stderr.isatty():
        return None

    def show(table: str, done: int, total: int) -> None:
        text = f"\r  {table}: {done:,}/{total:,}"
        click.echo(f"{text:<60}", err=True, nl=done >= total)

    return show
