"""`agentkeep doctor`: check the store (database, files ↔ rows) and repair with --fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from agentkeep.cli import State
from agentkeep.cli.output import SCHEMA_VERSION, dumps, fmt_of, output_options

if TYPE_CHECKING:
    from agentkeep.ops.doctor import Report

MARKS = {"error": "✗", "warning": "✗", "info": "·"}


@click.command()
@click.option("--fix", is_flag=True, help="Repair what is safe to repair; never deletes a row.")
@click.option(
    "--full",
    is_flag=True,
    help="Re-hash every file, not only those new or changed since doctor last verified them, "
    "and run the full integrity check.",
)
@output_options
@click.pass_context
def doctor(ctx: click.Context, fix: bool, full: bool, as_json: bool, nl: bool) -> None:
    """Check the database and that files and rows agree. Read-only unless --fix.

    Finds: database damage, rows whose file is missing, orphan files, hash
    mismatches, sessions whose recorder died, unsealed streams, temp files left by
    a crash, the hook failure log, hook deliveries left in the spool, moved aside or
    lost, and document files the index does not match. --fix stores what waits in the
    spool, quarantines orphans, removes dead processes' temp files, seals abandoned
    streams, marks dead sessions interrupted and rescans the documents; it
    never deletes a row and never touches a live writer's files. Orphans are moved to
    .agentkeep/quarantine/, and only when the database is proven healthy (integrity,
    schema, no rollback). Exit 8 when the database is damaged or lost commits, 1 when
    other problems remain. JSON: {"ok", "fix", "findings": [{check, severity, subject,
    message, fixed, hint}]}.

    A file is re-hashed only when it is new or changed (size, times, inode) since
    doctor last verified it; --full re-hashes every file (bit rot) and runs the full
    integrity check, as --fix does for the database.

    \b
    Examples:
      agentkeep doctor
      agentkeep doctor --full
      agentkeep doctor --fix
      agentkeep doctor --json
    """
    from agentkeep.ops.doctor import doctor as run_doctor

    state: State = ctx.obj
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=not fix) as store:
        report = run_doctor(store, fix=fix, full=full)
    if fmt == "json":
        click.echo(dumps({"schema_version": SCHEMA_VERSION, **report.to_dict()}))
    elif fmt == "nl":
        for finding in report.findings:
            click.echo(dumps(finding.to_dict()))
    else:
        _print_human(report)
    if not report.ok:
        from agentkeep.errors import Corrupt

        ctx.exit(Corrupt.exit_code if report.database_damaged else 1)


def _print_human(report: Report) -> None:
    for f in report.findings:
        mark = "✓" if f.fixed else MARKS.get(f.severity, "✗")
        label = "fixed" if f.fixed else f.severity
        click.echo(f"{mark} {label:<7} {f.check:<15} {f.subject}: {f.message}")
        if f.hint and f.problem:
            click.echo(f"  hint: {f.hint}")
    fixed = sum(f.fixed for f in report.findings)
    remaining = len(report.problems)
    if remaining:
        click.echo(f"✗ {remaining} problem(s) remain" + (f", {fixed} fixed" if fixed else ""))
    elif fixed:
        click.echo(f"✓ {fixed} problem(s) fixed; none remain")
    else:
        click.echo("✓ no problems found")
