"""`agentkeep doc …`: documents, files that stay the truth, indexed (docs/documents.md).

Each command parses, opens the store, makes one call to ``store.docs``
(:mod:`agentkeep.services.docs`) and renders. The exceptions are CLI matters: reading the
content to write (``--body``, ``--file``, stdin), and ``doc edit``'s round trip through
``$VISUAL``/``$EDITOR``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    SCHEMA_VERSION,
    cut,
    dumps,
    fmt_of,
    limit_option,
    neutralize,
    output_options,
    print_list,
    print_object,
    print_written,
    render_fields,
    text_or_stdin,
)
from agentkeep.errors import AgentkeepError, InvalidInput, StaleWrite

if TYPE_CHECKING:
    from agentkeep.models import Doc, Written
    from agentkeep.services.docs import DocContent, IndexReport
    from agentkeep.store import Store

LIST_COLUMNS = ["ref", "type", "title", "tags", "problems", "updated_at"]
HISTORY_COLUMNS = ["id", "change", "size", "etag", "actor", "created_at"]
LOCK_COLUMNS = ["path", "holder", "owner", "acquired_at", "expires_at"]
LINK_COLUMNS = ["relation", "target", "ref", "path"]
BACKLINK_COLUMNS = ["relation", "ref", "path"]
DEFAULT_RELATION = "links_to"


@click.group()
def doc() -> None:
    """Documents: one file per document, typed and namespaced, indexed for search.

    A document is a Markdown file with front matter (or a JSON file) under
    .agentkeep/docs/NAMESPACE/, or in a project directory named by the docs.roots
    setting. It is named by its ref, NAMESPACE/NAME (or its path). The files are the
    truth: edit them with any editor; reads re-check changed files, `doc watch` (and
    `agentkeep serve`) index edits within a second. Writes through agentkeep are atomic,
    redacted, checked against the namespace's schema (.agentkeep/schemas/NAMESPACE/),
    keep every earlier version, and refuse to overwrite a change made since you read the
    document (--if-match ETAG) or a document another live process has locked.

    \b
    Examples:
      agentkeep doc new decisions/0001-storage --type decision --title "SQLite" --body "…"
      agentkeep doc ls decisions --json
      agentkeep doc show decisions/0001-storage
      agentkeep doc edit decisions/0001-storage --set status=accepted
      agentkeep doc history decisions/0001-storage
      agentkeep search "storage" --kind doc
    """


# -- reading what to write ---------------------------------------------------------------


def _assignments(items: Sequence[str], option: str) -> dict[str, Any]:
    """``k=v`` pairs: ``v`` as JSON when it parses (``priority=2``, ``owners=["a"]``,
    ``done=true``), else as text."""
    found: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise InvalidInput(
                f"{option} {item!r} is not KEY=VALUE",
                hint=f"e.g. {option} priority=2 or {option} 'owners=[\"ana\"]'",
            )
        try:
            value: Any = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            value = text
        found[key] = value
    return found


def _no_constant(constant: str) -> Any:
    raise ValueError(constant)  # NaN and Infinity are text, not numbers JSON cannot hold


def _content(body: str | None, file: str | None, dash: str | None) -> str | None:
    """The text given by ``--body TEXT``, ``--file PATH`` or ``-`` (stdin), or None."""
    if dash is not None and dash != "-":
        raise click.UsageError(f"unexpected argument {dash!r} (only '-', to read stdin)")
    given = [name for name, value in (("--body", body), ("--file", file), ("-", dash)) if value]
    if len(given) > 1:
        raise click.UsageError(f"give one of --body, --file and -, not {' and '.join(given)}")
    if dash is not None:
        return text_or_stdin("-", "the document")
    if file is not None:
        if file == "-":
            return text_or_stdin("-", "the document")
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {file}: {exc.strerror}") from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{file} is not valid UTF-8 (byte {exc.start})") from exc
    if body is not None and body != "-" and body and not body.endswith("\n"):
        return body + "\n"  # a text file ends with a newline
    return text_or_stdin(body, "the document")


def _parse_content(text: str, fmt: str) -> tuple[dict[str, Any] | None, str | None]:
    """What a given text sets: for a JSON document its object's members are the fields;
    for Markdown a text that begins with front matter sets the fields and the body, any
    other text the body alone. ``(fields or None, body or None)``."""
    from agentkeep.documents import format as docformat

    if fmt == "json":
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            raise InvalidInput(f"a JSON document's content is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise InvalidInput("a JSON document's content must be a JSON object")
        return value, None
    if fmt == "text" or text.partition("\n")[0].rstrip() not in ("---", "---json"):
        return None, text
    parsed = docformat.parse(text, ".md")
    if parsed.problems:
        raise InvalidInput(f"the given text's {'; '.join(parsed.problems)}")
    return parsed.fields, parsed.body


def _with_tags(fields: dict[str, Any], tags: Sequence[str]) -> None:
    if not tags:
        return
    current = fields.get("tags")
    if isinstance(current, str):
        current = [part.strip() for part in current.split(",") if part.strip()]
    merged = list(current) if isinstance(current, list) else []
    merged += [tag for tag in tags if tag not in merged]
    fields["tags"] = merged


def content_options(func: Any) -> Any:
    """``--body``, ``--file`` and a trailing ``-`` (stdin)."""
    func = click.argument("dash", metavar="[-]", required=False)(func)
    func = click.option(
        "--file", "file", metavar="PATH", help="Read the content from PATH ('-': stdin)."
    )(func)
    return click.option("--body", help="The content as text ('-': stdin).")(func)


# -- rendering ---------------------------------------------------------------------------


def _print_written(written: Written[Doc], fmt: str) -> None:
    doc = written.item
    if fmt in ("json", "nl"):
        print_written("doc", doc, written.outcome, fmt)
        return
    line = f"{written.outcome.replace('_', ' ')}: {doc.ref} ({doc.path}) etag {doc.etag[:12]}"
    click.echo(neutralize(line))


def _doc_row(doc: Doc) -> dict[str, Any]:
    row = doc.to_dict()
    row["tags"] = ", ".join(doc.tags)
    row["problems"] = len(doc.problems) or ""
    return row


def _on_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- commands ----------------------------------------------------------------------------


@doc.command("new")
@click.argument("ref")
@click.option("--type", "doc_type", help="The document's type (front matter `type`).")
@click.option("--title", help="Its title (front matter `title`).")
@click.option("--field", "field_items", multiple=True, metavar="K=V", help="A front matter field.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--json-doc", is_flag=True, help="Write a JSON document (.json) instead.")
@content_options
@output_options
@click.pass_obj
def new(
    state: State,
    ref: str,
    doc_type: str | None,
    title: str | None,
    field_items: tuple[str, ...],
    tags: tuple[str, ...],
    json_doc: bool,
    body: str | None,
    file: str | None,
    dash: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Create a document, REF (NAMESPACE/NAME); refused if it exists.

    The content comes from --body, --file or - (stdin); a text that begins with front
    matter (--- … ---) sets the fields too. --field K=V takes V as JSON when it parses
    (2, true, ["a","b"]), else as text. For --json-doc the content is a JSON object.
    Writing the same content again reports already_exists.

    \b
    Examples:
      agentkeep doc new decisions/0002-queues --type decision --title "Queues as files"
      agentkeep doc new tasks/login --field priority=2 --field 'owners=["ana"]' --tag auth
      cat spec.md | agentkeep doc new specs/login -
      agentkeep doc new campaigns/spring --json-doc --body '{"budget": 500}' --json
    """
    fmt = fmt_of(as_json, nl)
    text = _content(body, file, dash)
    fields: dict[str, Any] = {}
    new_body = ""
    if text is not None:
        given_fields, given_body = _parse_content(text, "json" if json_doc else "markdown")
        fields.update(given_fields or {})
        new_body = given_body or ""
    fields.update(_assignments(field_items, "--field"))
    named = {"type": doc_type, "title": title}
    first = {key: value for key, value in named.items() if value is not None}
    fields = {**first, **{k: v for k, v in fields.items() if k not in first}}
    _with_tags(fields, tags)
    with state.open() as store:
        written = store.docs.write_doc(
            ref, fields=fields, body=new_body, fmt="json" if json_doc else None, create=True
        )
    _print_written(written, fmt)


@doc.command("show")
@click.argument("ref")
@click.option("--version", "version", type=int, help="A stored version (`doc history` ids).")
@click.option("--fields", "only_fields", is_flag=True, help="Only the front matter fields.")
@output_options
@click.pass_obj
def show(
    state: State, ref: str, version: int | None, only_fields: bool, as_json: bool, nl: bool
) -> None:
    """Print a document: its file's text, or a stored --version.

    --json prints {doc, fields, body, text, etag, version}: send the etag back with
    `doc edit --if-match` to write only if nobody changed it since. --fields --json
    prints {ref, etag, fields}.

    \b
    Examples:
      agentkeep doc show decisions/0001-storage
      agentkeep doc show decisions/0001-storage --version 3
      agentkeep doc show tasks/login --fields --json
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        content = store.docs.read_doc(ref, version=version)
    if only_fields:
        data = {"ref": content.doc.ref if content.doc else ref, "etag": content.etag}
        if fmt != "table":
            click.echo(dumps({"schema_version": SCHEMA_VERSION, **data, "fields": content.fields}))
        elif content.fields:
            click.echo(render_fields(content.fields))
        return
    if fmt != "table":
        print_object(content, fmt)
        return
    text = neutralize(content.text) if _on_terminal(sys.stdout) else content.text
    click.echo(text, nl=not text.endswith("\n"))


@doc.command("edit")
@click.argument("ref")
@click.option("--set", "set_items", multiple=True, metavar="K=V", help="Set a field.")
@click.option("--unset", "unset_keys", multiple=True, metavar="K", help="Remove a field.")
@content_options
@click.option("--if-match", "if_match", metavar="ETAG", help="Write only if the etag is this.")
@click.option("--force", is_flag=True, help="Overwrite another's change or lock.")
@output_options
@click.pass_obj
def edit(
    state: State,
    ref: str,
    set_items: tuple[str, ...],
    unset_keys: tuple[str, ...],
    body: str | None,
    file: str | None,
    dash: str | None,
    if_match: str | None,
    force: bool,
    as_json: bool,
    nl: bool,
) -> None:
    """Change a document's fields or content, or open it in $EDITOR.

    Fields with --set/--unset, the content with --body, --file or - (stdin); with none
    of these, on a terminal, $VISUAL (else $EDITOR) opens a private copy of it.
    A content that begins with front matter replaces the fields too; otherwise only the
    body. Changing fields reads the document and writes only if it is still what was
    read; --if-match ETAG (from `doc show --json`) says which version you started from.
    A document changed since is refused with exit 5 (stale_write, saying what changed;
    --json: on stderr with its details); --force overwrites. In the editor a stale write
    keeps your text in a file the message names.

    \b
    Examples:
      agentkeep doc edit tasks/login --set status=done --unset blocked_by
      agentkeep doc edit specs/login --file spec.md --if-match 3f2a…
      agentkeep doc edit decisions/0001-storage          # opens $EDITOR
    """
    fmt = fmt_of(as_json, nl)
    text = _content(body, file, dash)
    sets = _assignments(set_items, "--set")
    with state.open() as store:
        if text is None and not sets and not unset_keys:
            if not _on_terminal(sys.stdin):
                raise InvalidInput(
                    "nothing to change",
                    hint="give --set, --unset, --body, --file or - (stdin); on a terminal "
                    "without them, $EDITOR opens the document",
                )
            written = _edit_in_editor(store, ref, if_match=if_match, force=force)
        else:
            current = store.docs.read_doc(ref)
            doc = current.doc
            fields, new_body = (
                (None, None) if text is None else _parse_content(text, _format_of(doc))
            )
            expect = if_match
            if sets or unset_keys:
                fields = dict(current.fields if fields is None else fields)
                fields.update(sets)
                for key in unset_keys:
                    fields.pop(key, None)
                expect = expect or current.etag  # a read-modify-write: never over a change
            written = store.docs.write_doc(
                ref, fields=fields, body=new_body, expect=expect, force=force, create=False
            )
    _print_written(written, fmt)


def _format_of(doc: Doc | None) -> str:
    return doc.format if doc is not None else "markdown"


def _edit_in_editor(store: Store, ref: str, *, if_match: str | None, force: bool) -> Written[Doc]:
    """Open a private temp copy of the document in $VISUAL/$EDITOR; write back what was
    saved, only over the content that was read (or ``if_match``). When the write is
    refused the edited text stays in the temp file, which the error names."""
    from agentkeep.documents import format as docformat
    from agentkeep.models import Written

    current = store.docs.read_doc(ref)
    assert current.doc is not None  # read from its file, so indexed
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    directory = Path(tempfile.mkdtemp(prefix="agentkeep-edit-"))  # 0700
    copy = directory / Path(current.doc.path).name
    copy.write_text(current.text, encoding="utf-8")
    copy.chmod(0o600)
    try:
        done = subprocess.run([*shlex.split(editor), str(copy)], check=False)
    except OSError as exc:
        raise InvalidInput(
            f"cannot run the editor {editor!r}: {exc.strerror}",
            hint="set VISUAL or EDITOR, or change the document with --set/--body/--file",
        ) from exc
    if done.returncode != 0:
        raise InvalidInput(
            f"the editor exited with {done.returncode}; nothing was written",
            hint=f"your text is kept in {copy}",
        )
    try:
        edited = copy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot read back the edited {copy}: {exc}; nothing was written",
            hint="save the document as UTF-8 text in the same file",
        ) from exc
    if edited == current.text:
        _discard(directory)
        return Written(current.doc, "unchanged")
    parsed = docformat.parse(edited, copy.suffix)
    try:
        if parsed.problems:
            raise InvalidInput(f"the edited document is not valid: {'; '.join(parsed.problems)}")
        written = store.docs.write_doc(
            ref,
            fields=parsed.fields,
            body=parsed.body,
            expect=if_match or current.etag,
            force=force,
            create=False,
        )
    except StaleWrite as exc:
        raise StaleWrite(
            f"{exc.message}; your edited text is kept in {copy}",
            hint=f"merge it into the current document and write it with `agentkeep doc edit "
            f"{ref} --file {copy} --if-match <etag>` (`doc show --json` gives the etag), "
            "or --force to overwrite",
            details={**exc.details, "kept": str(copy)},
        ) from None
    except AgentkeepError as exc:
        exc.hint = f"{exc.hint + '; ' if exc.hint else ''}your text is kept in {copy}"
        raise
    _discard(directory)
    return written


def _discard(directory: Path) -> None:
    """The temp directory, with whatever the editor left in it (backups, swap files)."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


@doc.command("ls")
@click.argument("namespace", required=False)
@click.option("--type", "doc_type", help="Only documents of this type.")
@click.option("--tag", help="Only documents with this tag.")
@click.option("--where", "where_items", multiple=True, metavar="K=V", help="Field K is V.")
@click.option("--problems", is_flag=True, help="Only documents with problems.")
@limit_option(100)
@output_options
@click.pass_obj
def ls(
    state: State,
    namespace: str | None,
    doc_type: str | None,
    tag: str | None,
    where_items: tuple[str, ...],
    problems: bool,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List documents (of NAMESPACE), by ref.

    --where K=V keeps those whose field K is the text V (a list field: holds V).

    \b
    Examples:
      agentkeep doc ls
      agentkeep doc ls decisions --where status=accepted --json
      agentkeep doc ls --tag auth --type spec
      agentkeep doc ls --problems
    """
    where: dict[str, str] = {}
    for item in where_items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InvalidInput(f"--where {item!r} is not KEY=VALUE")
        where[key.strip()] = value
    with state.open() as store:
        docs = store.docs.list_docs(
            namespace=namespace,
            type=doc_type,
            tag=tag,
            where=where,
            problems=True if problems else None,
            limit=limit + 1 if limit else None,
        )
    fmt = fmt_of(as_json, nl)
    kept = cut(docs, limit)
    rows = kept if fmt != "table" else [_doc_row(d) for d in kept]
    print_list(rows, fmt, LIST_COLUMNS, empty="no documents")


@doc.command("validate")
@click.argument("ref", required=False)
@output_options
@click.pass_context
def validate(ctx: click.Context, ref: str | None, as_json: bool, nl: bool) -> None:
    """Check documents against their schemas; exit 1 on problems.

    REF, or all. JSON: the documents with problems (each with `problems`).

    \b
    Examples:
      agentkeep doc validate
      agentkeep doc validate tasks/login --json
    """
    fmt = fmt_of(as_json, nl)
    state: State = ctx.obj
    with state.open() as store:
        bad = store.docs.validate(ref)
    if fmt != "table":
        print_list(bad, fmt, LIST_COLUMNS)
    elif not bad:
        click.echo("no problems")
    else:
        for item in bad:
            click.echo(neutralize(f"{item.ref} ({item.path}):"))
            for problem in item.problems:
                click.echo(neutralize(f"  - {problem}"))
    if bad:
        ctx.exit(1)


@doc.command("link")
@click.argument("ref")
@click.argument("target")
@click.option(
    "--relation",
    default=DEFAULT_RELATION,
    show_default=True,
    help="The kind of link (supersedes, depends_on, implements…).",
)
@click.option("--if-match", "if_match", metavar="ETAG", help="Write only if the etag is this.")
@output_options
@click.pass_obj
def link(
    state: State,
    ref: str,
    target: str,
    relation: str,
    if_match: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Link a document to another, in its front matter `links`.

    TARGET is a ref, a path or a title. Linking twice changes nothing (unchanged).

    \b
    Examples:
      agentkeep doc link decisions/0002-queues decisions/0001-storage --relation supersedes
      agentkeep doc links decisions/0001-storage --back
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        current = store.docs.read_doc(ref)
        links = _with_link(current.fields.get("links"), relation, target)
        if links is None:
            written: Written[Doc] = _unchanged(current)
        else:
            written = store.docs.write_doc(
                ref,
                fields={**current.fields, "links": links},
                expect=if_match or current.etag,
                create=False,
            )
        resolved = [x for x in store.docs.links(ref) if x["target"] == target]
    if resolved and all(x["ref"] is None for x in resolved):
        click.echo(f"note: {target} names no document (yet)", err=True)
    _print_written(written, fmt)


def _unchanged(content: DocContent) -> Written[Doc]:
    from agentkeep.models import Written

    assert content.doc is not None
    return Written(content.doc, "unchanged")


def _with_link(links: Any, relation: str, target: str) -> Any:
    """The front matter ``links`` with ``relation → target`` added (a list stays a list
    for plain links), or None when it is there already."""
    if links is None or links == [] or links == "":
        return [target] if relation == DEFAULT_RELATION else {relation: [target]}
    if isinstance(links, str | list):
        plain = [links] if isinstance(links, str) else list(links)
        if relation == DEFAULT_RELATION:
            return None if target in plain else [*plain, target]
        links = {DEFAULT_RELATION: plain}
    if not isinstance(links, dict):
        raise InvalidInput(
            "the document's `links` field is neither a list nor a mapping",
            hint="fix it with `agentkeep doc edit`",
        )
    targets = links.get(relation)
    targets = [targets] if isinstance(targets, str) else list(targets or [])
    if target in targets:
        return None
    return {**links, relation: [*targets, target]}


@doc.command("links")
@click.argument("ref")
@click.option("--back", is_flag=True, help="The documents that link to REF instead.")
@output_options
@click.pass_obj
def links_(state: State, ref: str, back: bool, as_json: bool, nl: bool) -> None:
    """List a document's links (--back: the links to it).

    Each link: relation, target (as written), and the ref and path it resolves to
    (empty when no document matches).

    \b
    Examples:
      agentkeep doc links specs/login
      agentkeep doc links decisions/0001-storage --back --json
    """
    with state.open() as store:
        found = store.docs.backlinks(ref) if back else store.docs.links(ref)
    columns = BACKLINK_COLUMNS if back else LINK_COLUMNS
    print_list(found, fmt_of(as_json, nl), columns, empty="no links")


@doc.command("history")
@click.argument("ref")
@output_options
@click.pass_obj
def history(state: State, ref: str, as_json: bool, nl: bool) -> None:
    """List a document's versions, oldest first.

    A deleted document's too: `doc show --version ID` prints one, `doc restore
    --version ID` brings it back.

    change: created, edited, outside (a content changed by another program, kept before
    agentkeep replaced it), deleted, restored.

    \b
    Example:
      agentkeep doc history decisions/0001-storage
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        versions = store.docs.history(ref)
    rows: list[Any] = versions
    if fmt == "table":
        rows = [{**v.to_dict(), "etag": (v.etag or "")[:12]} for v in versions]
    print_list(rows, fmt, HISTORY_COLUMNS, empty="no versions")


@doc.command("rm")
@click.argument("ref")
@click.option("--if-match", "if_match", metavar="ETAG", help="Delete only if the etag is this.")
@click.option("--force", is_flag=True, help="Delete despite another's lock.")
@output_options
@click.pass_obj
def rm(state: State, ref: str, if_match: str | None, force: bool, as_json: bool, nl: bool) -> None:
    """Delete a document's file, recoverably.

    Its content stays a version, and `doc restore REF` brings it back. JSON:
    {outcome: deleted, doc}.

    \b
    Examples:
      agentkeep doc rm notes/draft
      agentkeep doc restore notes/draft
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        gone = store.docs.remove_doc(ref, expect=if_match, force=force)
    if fmt != "table":
        click.echo(
            dumps({"schema_version": SCHEMA_VERSION, "outcome": "deleted", "doc": gone.to_dict()})
        )
        return
    click.echo(neutralize(f"deleted: {gone.ref} ({gone.path}); `agentkeep doc restore {gone.ref}`"))


@doc.command("restore")
@click.argument("ref")
@click.option("--version", "version", type=int, help="Which version (default: the last).")
@click.option("--force", is_flag=True, help="Restore despite another's lock.")
@output_options
@click.pass_obj
def restore(
    state: State, ref: str, version: int | None, force: bool, as_json: bool, nl: bool
) -> None:
    """Bring back a deleted document, or an earlier version of one.

    The restored content is a new version; the current one is kept as a version too.

    \b
    Examples:
      agentkeep doc restore notes/draft
      agentkeep doc restore decisions/0001-storage --version 3
    """
    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        written = store.docs.restore_doc(ref, version=version, force=force)
    _print_written(written, fmt)


@doc.command("lock")
@click.argument("ref")
@click.option(
    "--lease",
    "lease_s",
    type=click.FloatRange(1, 7 * 86400),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="How long another machine's writers wait for it (renew by locking again).",
)
@output_options
@click.pass_obj
def lock(state: State, ref: str, lease_s: float, as_json: bool, nl: bool) -> None:
    """Lock a document for the caller of this command.

    The holder is the process that runs `agentkeep doc lock`: your shell, or the agent
    (docs/documents.md says how shells differ). Other processes' writes are refused
    (exit 5) while it runs; writes from it (and the commands it runs) go through. A
    holder on this machine keeps the lock while its process lives, and a dead one's
    lock is taken over at once (never judged by file times); for writers on other
    machines it lasts the lease. Locking again renews it.

    \b
    Examples:
      agentkeep doc lock specs/login && agentkeep doc edit specs/login --set owner=me
      agentkeep doc unlock specs/login
    """
    from agentkeep.documents.leases import Holder

    fmt = fmt_of(as_json, nl)
    holder = Holder.parent()
    with state.open() as store:
        held = {(x.path, x.holder) for x in store.docs.locks()}
        taken = store.docs.lock(ref, lease_s=lease_s, holder=holder)
    outcome = "updated" if (taken.path, taken.holder) in held else "created"
    if fmt != "table":
        click.echo(
            dumps({"schema_version": SCHEMA_VERSION, "outcome": outcome, "lock": taken.to_dict()})
        )
        return
    verb = "renewed" if outcome == "updated" else "locked"
    click.echo(
        neutralize(f"{verb}: {taken.path} for {taken.holder} (lease until {taken.expires_at})")
    )


@doc.command("unlock")
@click.argument("ref")
@click.option("--force", is_flag=True, help="Release another holder's lock.")
@output_options
@click.pass_obj
def unlock(state: State, ref: str, force: bool, as_json: bool, nl: bool) -> None:
    """Release a document's lock (the caller's; --force: anyone's).

    JSON: {outcome: updated (released) | unchanged (none was held), ref}.

    \b
    Example:
      agentkeep doc unlock specs/login
    """
    from agentkeep.documents.leases import Holder

    fmt = fmt_of(as_json, nl)
    with state.open() as store:
        released = store.docs.unlock(ref, holder=Holder.parent(), force=force)
    outcome = "updated" if released else "unchanged"
    if fmt != "table":
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "outcome": outcome, "ref": ref}))
    else:
        click.echo(neutralize(f"unlocked {ref}" if released else f"{ref} was not locked"))


@doc.command("locks")
@output_options
@click.pass_obj
def locks(state: State, as_json: bool, nl: bool) -> None:
    """List the documents' advisory locks.

    Each: path, holder (host:pid:start), owner (the actor), acquired_at, expires_at.

    \b
    Example:
      agentkeep doc locks --json
    """
    with state.open() as store:
        found = store.docs.locks()
    print_list(found, fmt_of(as_json, nl), LOCK_COLUMNS, empty="no locks")


def _summary(report: IndexReport) -> str:
    text = (
        f"{report.files:,} files: {report.added:,} added, {report.updated:,} updated, "
        f"{report.removed:,} removed, {report.unchanged:,} unchanged"
    )
    if report.problems:
        text += f"; {len(report.problems):,} problems (`agentkeep doc validate` lists them)"
    return text


@doc.command("reindex")
@click.option("--rebuild", is_flag=True, help="Empty the index and read every file again.")
@output_options
@click.pass_obj
def reindex(state: State, rebuild: bool, as_json: bool, nl: bool) -> None:
    """Bring the document index up to date with the files now.

    Reads do it too, at most once a second. --rebuild rebuilds it from the files alone.

    JSON: {added, updated, removed, unchanged, files, rebuilt, problems [str]}.

    \b
    Examples:
      agentkeep doc reindex
      agentkeep doc reindex --rebuild --json
    """
    fmt = fmt_of(as_json, nl)

    def progress(done: int, total: int) -> None:
        click.echo(f"\r  indexed {done:,}/{total:,} files", err=True, nl=done >= total)

    with state.open() as store:
        report = store.docs.refresh(
            rebuild=rebuild, progress=progress if _on_terminal(sys.stderr) else None
        )
    if fmt != "table":
        print_object(report, fmt)
    else:
        click.echo(_summary(report))


@doc.command("watch")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(0.05, 3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for changed files.",
)
@output_options
@click.pass_obj
def watch(state: State, interval_s: float, as_json: bool, nl: bool) -> None:
    """Keep the document index fresh until interrupted.

    Files added, edited (with any editor) or removed are indexed within about a
    second (in a project of thousands of documents, within a few: idle rescans take
    at most a fifth of the time). `agentkeep serve` does the same while it runs.

    Prints one line per rescan that changed something (--json: one object per line, as
    `doc reindex --json`). Ctrl-C (or SIGTERM) ends it with exit 0.

    \b
    Examples:
      agentkeep doc watch &
      agentkeep doc watch --json | jq .updated
    """
    from agentkeep.ops.docwatch import watch_docs

    fmt = fmt_of(as_json, nl)
    stop = threading.Event()

    def on_change(report: IndexReport) -> None:
        click.echo(_summary(report) if fmt == "table" else dumps(report.to_dict()))

    def on_trouble(error: AgentkeepError) -> None:
        shown = error.shown()
        click.echo(f"agentkeep doc watch: {shown['error']}; trying again", err=True)

    if _on_terminal(sys.stderr):
        click.echo("watching the documents; Ctrl-C stops", err=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watch_docs(
            state.open, on_change=on_change, on_trouble=on_trouble, stop=stop, interval_s=interval_s
        )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
