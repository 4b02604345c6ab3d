"""`agentkeep collection …` and `agentkeep records`: a project's own collections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    fetch,
    fmt_of,
    json_arg,
    limit_option,
    output_options,
    print_list,
    print_object,
)

COLUMNS = ["name", "types", "records", "invalid", "root"]
RECORD_COLUMNS = ["name", "type", "valid", "updated_at"]
FIELD_COLUMNS = 4  # a table shows a record's first fields; --json shows them all


@click.group()
def collection() -> None:
    """A project's own collections (campaigns, leads, rewards…): typed records as files.

    A collection is a document namespace with a JSON Schema; its records are the files of
    its directory (Markdown with front matter, or JSON), read one way into the index.

    \b
    Examples:
      agentkeep collection declare campaigns --schema campaign.schema.json --root input/campaigns
      agentkeep collection ls --json
      agentkeep collection records campaigns --where status=active --where budget>1000
      agentkeep collection validate campaigns
    """


@collection.command("ls")
@output_options
@click.pass_obj
def ls(state: State, as_json: bool, nl: bool) -> None:
    """List the declared collections: types, records, invalid records, root.

    \b
    Example:
      agentkeep collection ls --json
    """
    with state.open() as store:
        items = store.collections.collections()
    print_list(items, fmt_of(as_json, nl), COLUMNS, empty="no collections")


@collection.command("declare")
@click.argument("name")
@click.option(
    "--schema",
    "schema_file",
    required=True,
    help="The JSON Schema of its records' fields (a file, or '-' for stdin).",
)
@click.option("--type", "doc_type", help="The records' type name (default: NAME).")
@click.option(
    "--root",
    help="A project directory whose files are the records (added to docs.roots).",
)
@output_options
@click.pass_obj
def declare(
    state: State,
    name: str,
    schema_file: str,
    doc_type: str | None,
    root: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Declare collection NAME with a JSON Schema; with --root, read a directory as it.

    The schema goes to .agentkeep/schemas/NAME/TYPE.json (meant for git); --root adds
    "DIR:NAME" to docs.roots in .agentkeep/config.toml. Declaring again with the same
    schema reports already_exists.

    \b
    Examples:
      agentkeep collection declare campaigns --schema campaign.json --root input/campaigns
      cat lead.json | agentkeep collection declare leads --schema - --type lead
    """
    text = _read_schema(schema_file)
    schema = json_arg(text, "--schema")
    with state.open() as store:
        declared = store.collections.declare(name, schema, type=doc_type, root=root)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_object(declared, fmt)
        return
    found = declared.collection
    click.echo(
        f"{declared.outcome.replace('_', ' ')}: collection {found.name} "
        f"({found.records} records, {found.invalid} invalid) in {found.root}"
    )
    for problem in declared.problems[:20]:
        click.echo(f"  {problem}", err=True)


def _read_schema(value: str) -> str:
    if value == "-":
        return value
    from agentkeep.errors import InvalidInput

    try:
        return Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the schema {value}: {exc}") from exc


@collection.command("show")
@click.argument("name")
@output_options
@click.pass_obj
def show(state: State, name: str, as_json: bool, nl: bool) -> None:
    """Show one collection: where its files are, its counts and its schemas.

    \b
    Example:
      agentkeep collection show campaigns --json
    """
    with state.open() as store:
        found = store.collections.get(name)
        schemas = store.collections.schemas(name)
    data: dict[str, Any] = {**found.to_dict(), "schema": schemas}
    print_object(data, fmt_of(as_json, nl))


def _records_options(func: Any) -> Any:
    func = click.option(
        "-w",
        "--where",
        "where",
        multiple=True,
        metavar="COND",
        help="FIELD=V, FIELD!=V, FIELD>N, >=, <, <= or FIELD~TEXT (contains); repeatable.",
    )(func)
    func = click.option(
        "--sort", help="Sort by these fields (comma-separated; -FIELD: descending)."
    )(func)
    func = click.option(
        "--invalid/--valid",
        "invalid",
        default=None,
        help="Only the records that fail (pass) their schema.",
    )(func)
    return func


def _list_records(
    state: State,
    name: str,
    where: tuple[str, ...],
    sort: str | None,
    invalid: bool | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    with state.open() as store:
        items = store.collections.records(
            name, where=where, sort=sort, limit=fetch(limit), invalid=invalid
        )
    items = cut(items, limit)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_list(items, fmt, RECORD_COLUMNS)
        return
    shown: list[str] = []
    for item in items:
        for key in item.fields:
            if key not in shown and key not in RECORD_COLUMNS and key != "type":
                shown.append(key)
    columns = RECORD_COLUMNS[:1] + shown[:FIELD_COLUMNS] + RECORD_COLUMNS[1:]
    rows = [{**item.fields, **item.to_dict()} for item in items]
    print_list(rows, fmt, columns, empty=f"no records in {name}")


@collection.command("records")
@click.argument("name")
@_records_options
@limit_option(50)
@output_options
@click.pass_obj
def records(
    state: State,
    name: str,
    where: tuple[str, ...],
    sort: str | None,
    invalid: bool | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List the records of collection NAME, filtered, sorted and limited.

    Comparisons follow the type of the record's value: numbers as numbers, true/false as
    booleans, text (and ISO dates) as text; a list matches when one item does.

    \b
    Examples:
      agentkeep collection records campaigns --where status=active --sort -budget -n 10
      agentkeep collection records leads --where 'email~@example.com' --json
      agentkeep collection records campaigns --invalid
    """
    _list_records(state, name, where, sort, invalid, limit, as_json, nl)


@click.command("records")
@click.argument("name")
@_records_options
@limit_option(50)
@output_options
@click.pass_obj
def records_cmd(
    state: State,
    name: str,
    where: tuple[str, ...],
    sort: str | None,
    invalid: bool | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List the records of collection NAME (`agentkeep collection records`).

    \b
    Examples:
      agentkeep records campaigns --where status=active --where 'budget>=1000'
      agentkeep records sessions --sort -updated_at -n 5 --json
    """
    _list_records(state, name, where, sort, invalid, limit, as_json, nl)


@collection.command("validate")
@click.argument("name")
@output_options
@click.pass_obj
def validate(state: State, name: str, as_json: bool, nl: bool) -> None:
    """Check every record of NAME against its schema; exit 1 if one fails.

    Reads every file again (the schema may have changed since they were indexed).
    JSON: the invalid records ([] when all are valid).

    \b
    Example:
      agentkeep collection validate campaigns --json
    """
    with state.open() as store:
        bad = store.collections.validate(name)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_list(bad, fmt, RECORD_COLUMNS)
    elif not bad:
        click.echo(f"every record of {name} is valid")
    else:
        for item in bad:
            for problem in item.problems:
                click.echo(f"{item.path}: {problem}")
    if bad:
        click.get_current_context().exit(1)
