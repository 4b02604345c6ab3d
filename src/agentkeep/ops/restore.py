"""``agentkeep restore``: a backup becomes the store again (docs/design.md
"Backup, restore, bundles").

:func:`restore` verifies every hash before touching anything, builds the new store beside
the old one, moves an existing store aside to ``.agentkeep.replaced-<time>`` (never deletes
it), renames the new one into place, and checks that it opens and passes ``check()``.

Restore also accepts the single-file backups agentkeep writes itself — ``db backup``'s
``backups/state-<time>.db`` and a migration's ``backups/state.db.pre-v<N>-<time>`` — which
hold the database only. The file must pass ``integrity_check`` and have a schema this code
reads. The new store gets that database and a copy of every other file of the current
store (streams, objects, backups, config, docs; immutable files are hard-linked when the
file system allows): the files the backup's rows name are normally still there, and files
newer than the backup become orphans that ``doctor --fix`` quarantines, never deletes.
The high-water mark is not carried over: restoring is the user's decision about which
state is the truth.

A backup's database is a SQLite file whatever the store's backend: it is verified and
copied by ``backends.sqlite.maintenance`` (never as bytes). A backup is a portable
snapshot: restored into a new directory it is a SQLite store, even when it was taken from
a store on PostgreSQL (its config.toml has no ``store.url``; an older backup's is dropped,
and the result says so).

Into a project whose store is on PostgreSQL (``--force``), :func:`_restore_to_server`
copies the backup's database with ``db copy`` (:func:`agentkeep.ops.copy.copy_store`) into
a staging schema beside the store's, then swaps the schemas in one transaction
(:mod:`agentkeep.backends.postgres.schemas`): the store's schema is renamed to
``<schema>_replaced_<time>``, never dropped. A crash before the swap leaves the old schema
in place and the staging schema, which rerunning the same restore resumes; after it, the
restored store. The sealed streams' and objects' bytes are stored in the staging schema
(the team's shared copies, which ``db copy`` does not carry yet), and files the backup holds
and the project lacks are added to the project's directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agentkeep.backends.sqlite.maintenance import copy_database, inspect_file, read_file
from agentkeep.errors import Conflict, Corrupt, InvalidInput
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    fsync_path,
    make_dirs,
    temp_path,
    translate_os_error,
)
from agentkeep.models import Record
from agentkeep.ops.bundle_format import (
    BACKUP_FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SNAPSHOT_DB,
    check_versions,
    entry,
    file_chunks,
    fsync_dirs,
    loads_json,
    sha256_file,
    write_durably,
)
from agentkeep.paths import DB_NAME, STORE_DIRNAME, names_server
from agentkeep.services.artifacts import object_path
from agentkeep.timeutil import file_stamp

if TYPE_CHECKING:
    from agentkeep.backends.base import Snapshot
    from agentkeep.store import Store


@dataclass(frozen=True)
class RestoreResult(Record):
    store_dir: str
    source: str
    replaced: str | None
    files: int
    check_ok: bool
    backend: str = "sqlite"  # the restored store's
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know (moved-aside
    # schema and how to drop it, a server URL left out)


def read_backup_manifest(source: Path) -> dict[str, Any]:
    """The verified manifest of a backup directory: every file present with its hash."""
    path = source / MANIFEST
    if not path.is_file():
        raise InvalidInput(
            f"{source} is not a complete agentkeep backup (no {MANIFEST})",
            hint="an interrupted backup has no manifest; use another backup",
        )
    manifest = loads_json(path.read_bytes(), str(path))
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise InvalidInput(f"{source} is not an agentkeep backup")
    check_versions(manifest, str(source))
    files = manifest.get("files")
    if not isinstance(files, dict) or SNAPSHOT_DB not in files:
        raise Corrupt(f"the manifest of {source} lists no database")
    for relative, expected in sorted(files.items()):
        _check_relative(relative, source)
        try:
            got = entry(*sha256_file(source / relative))
        except FileNotFoundError:
            raise Corrupt(f"backup file {relative} is missing from {source}") from None
        if got != expected:
            raise Corrupt(
                f"backup file {relative} does not match its hash in the manifest",
                hint="the backup is damaged; use another one",
            )
    return manifest


def _check_relative(relative: str, source: Path) -> None:
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise Corrupt(f"the manifest of {source} names an unsafe path {relative!r}")


def store_dir_for(target: str | Path) -> Path:
    """The store directory to restore into: ``target`` itself if it is named .agentkeep,
    otherwise ``target/.agentkeep``."""
    path = Path(target).expanduser().absolute()
    return path if path.name == STORE_DIRNAME else path / STORE_DIRNAME


def restore(source: str | Path, target: str | Path, *, force: bool = False) -> RestoreResult:
    """Restore the backup directory ``source`` as the store at ``target`` (a project root
    or its .agentkeep directory).

    Hashes are verified first. A store holding a database is replaced only with ``force``,
    and then moved aside to ``.agentkeep.replaced-<time>`` beside it, never deleted. The
    new store is assembled in a temp directory and renamed into place, so a crash leaves
    either the old store or the new one (plus a leftover temp directory).
    """
    src = Path(source).expanduser().absolute()
    store_dir = store_dir_for(target)
    if names_server(str(store_dir)):
        return _restore_to_server(src, store_dir, force=force)
    if src.is_file():
        return _restore_database_file(src, store_dir, force=force)
    manifest = read_backup_manifest(src)
    notes: list[str] = []

    def assemble(staging: Path) -> int:
        _assemble(src, manifest, staging)
        if _drop_server_url(staging / "config.toml") or manifest.get("source_backend") not in (
            None,
            "sqlite",
        ):
            notes.append(
                f"restored as a SQLite store; the backup was taken from "
                f"{manifest.get('source_url') or 'a store on a server'} — copy it there with "
                "`agentkeep db copy --to URL`, or restore into that project with --force"
            )
        return len(manifest["files"])

    result = _swap_in(src, store_dir, assemble, force=force)
    return dataclasses.replace(result, notes=notes) if notes else result


def _drop_server_url(config: Path) -> bool:
    """Blank ``store.url`` in a restored config.toml (a backup made before backups left it
    out): the restored SQLite store must not silently open the live server's."""
    from agentkeep.config import read_toml, set_in_file

    if not config.is_file():
        return False
    if not read_toml(config).get("store.url"):
        return False
    set_in_file(config, "store.url", "")
    return True


def _swap_in(
    src: Path, store_dir: Path, assemble: Callable[[Path], int], *, force: bool
) -> RestoreResult:
    """The one way a restore replaces a store: ``assemble`` fills a temp directory beside
    it (returning how many files it holds), the old store is moved aside (never deleted),
    and the temp directory is renamed into place; a failure removes only our own copy."""
    if (store_dir / DB_NAME).exists() and not force:
        raise Conflict(
            f"{store_dir} already holds a store",
            hint="pass --force to move it aside (to .agentkeep.replaced-<time>) and restore",
        )
    if not store_dir.parent.is_dir():
        raise InvalidInput(f"{store_dir.parent} is not a directory")
    staging = store_dir.with_name(f"{STORE_DIRNAME}.restoring-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        files = assemble(staging)
        replaced = _move_aside(store_dir)
        os.rename(staging, store_dir)
        fsync_path(store_dir.parent, directory=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)  # our own unfinished copy
        raise translate_os_error(exc, str(store_dir)) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _check_restored(store_dir, src, replaced, files)


def _assemble(src: Path, manifest: Mapping[str, Any], staging: Path) -> None:
    """Build the restored store directory: files copied and fsynced, database copied by
    SQLite (never by a file copy) and put back in WAL mode."""
    make_dirs(staging)
    dirs = {staging}
    for relative in sorted(manifest["files"]):
        if relative == SNAPSHOT_DB:
            continue
        dest = staging / relative
        make_dirs(dest.parent)
        dirs.add(dest.parent)
        write_durably(dest, file_chunks(src / relative))
    gitignore = staging / ".gitignore"
    if not gitignore.exists():
        from agentkeep.store import GITIGNORE

        write_durably(gitignore, [GITIGNORE.encode("utf-8")])
    _install_database(src / SNAPSHOT_DB, staging)
    fsync_dirs(dirs)


# Files of a store that are not carried into a store restored from a database file: the
# live database and SQLite's side files, locks, the high-water mark and the disk reserve.
_NOT_CARRIED = frozenset(
    {
        DB_NAME,
        f"{DB_NAME}-wal",
        f"{DB_NAME}-shm",
        f"{DB_NAME}-journal",
        f"{DB_NAME}.lock",
        "maintenance.lock",
        "high-water-mark",
        "reserve",
        "doctor-verified.json",  # what doctor and usage recorded: caches (ops/verified.py)
        "usage-tables.json",
    }
)
_IMMUTABLE_DIRS = ("objects", "backups")


def check_database_file(path: Path) -> int:
    """A single-file backup's schema version, once it passes ``integrity_check`` and this
    code can read it; Corrupt or InvalidInput otherwise."""
    try:
        integrity, schema = inspect_file(path)
    except Corrupt as exc:
        raise Corrupt(
            f"the backup {path} is damaged ({exc.message})", hint="use another backup"
        ) from exc
    except InvalidInput as exc:
        raise InvalidInput(
            f"{path} is not an agentkeep backup ({exc.message})",
            hint="pass a backup directory (`agentkeep backup`) or a database file from "
            ".agentkeep/backups/",
        ) from exc
    if integrity != ["ok"]:
        raise Corrupt(
            f"the backup {path} is damaged: " + "; ".join(integrity[:3]),
            hint="use another backup",
        )
    if schema is None:
        raise InvalidInput(f"{path} is not an agentkeep database (no schema version)")
    check_versions({"format_version": FORMAT_VERSION, "schema_version": schema}, str(path))
    return schema


def _restore_database_file(src: Path, store_dir: Path, *, force: bool) -> RestoreResult:
    check_database_file(src)

    def assemble(staging: Path) -> int:
        files = _carry_files(store_dir, staging)
        _install_database(src, staging)
        return files + 1

    return _swap_in(src, store_dir, assemble, force=force)


def _carry_files(store_dir: Path, staging: Path) -> int:
    """Copy (or hard-link, for immutable files) every file of the current store but the
    ones in ``_NOT_CARRIED`` and temp files into ``staging``; returns how many."""
    make_dirs(staging)
    dirs = {staging}
    count = 0
    if store_dir.is_dir():
        for root, dirnames, names in os.walk(store_dir):
            here = Path(root)
            dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
            relative_dir = here.relative_to(store_dir)
            for name in names:
                source = here / name
                relative = relative_dir / name
                if (
                    (relative_dir == Path(".") and name in _NOT_CARRIED)
                    or ".tmp-" in name
                    or source.is_symlink()
                    or not source.is_file()
                ):
                    continue
                dest = staging / relative
                make_dirs(dest.parent)
                dirs.add(dest.parent)
                immutable = relative.parts[0] in _IMMUTABLE_DIRS or name.endswith(".zst")
                try:
                    if not immutable:
                        raise OSError("copy")
                    os.link(source, dest)
                except OSError:
                    write_durably(dest, file_chunks(source))
                count += 1
    gitignore = staging / ".gitignore"
    if not gitignore.exists():
        from agentkeep.store import GITIGNORE

        write_durably(gitignore, [GITIGNORE.encode("utf-8")])
    fsync_dirs(dirs)
    return count


def _install_database(src: Path, staging: Path) -> None:
    """Copy the database file ``src`` into ``staging`` through SQLite, in WAL mode."""
    tmp = temp_path(staging / "restored.db")
    copy_database(src, tmp)
    os.replace(tmp, staging / DB_NAME)
    fsync_path(staging, directory=True)


def _move_aside(store_dir: Path) -> Path | None:
    if not store_dir.exists():
        return None
    aside = store_dir.with_name(f"{STORE_DIRNAME}.replaced-{file_stamp()}")
    os.rename(store_dir, aside)
    fsync_path(store_dir.parent, directory=True)
    return aside


def _check_restored(
    store_dir: Path, src: Path, replaced: Path | str | None, files: int
) -> RestoreResult:
    import agentkeep

    with agentkeep.open(store_dir) as restored:
        report = restored.check()
        problems = list(report.problems) + _missing_files(restored)
        project = restored.project()
        backend = restored.backend.name
    with contextlib.suppress(Exception):  # the registry is a convenience, not the store
        from agentkeep.registry import register_project

        register_project(store_dir.parent, uid=project.uid, name=project.name)
    return RestoreResult(
        store_dir=str(store_dir),
        source=str(src),
        replaced=None if replaced is None else str(replaced),
        files=files,
        check_ok=not problems,
        backend=backend,
        problems=problems,
    )


def _missing_files(store: Store) -> list[str]:
    problems = []
    with store.maintenance.snapshot() as read:
        for batch in read.batches("SELECT path FROM streams", size=1000):
            for (path,) in batch:
                if not (store.store_dir / path).exists():
                    problems.append(f"stream file {path} is missing")
        for batch in read.batches("SELECT sha256, encoding FROM objects", size=1000):
            for sha, encoding in batch:
                if not object_path(store.store_dir, sha, encoding).exists():
                    problems.append(f"object file {sha[:12]} is missing")
    return problems


# -- into a store on PostgreSQL ----------------------------------------------------------


def _restore_to_server(src: Path, store_dir: Path, *, force: bool) -> RestoreResult:
    """Replace the content of the store on PostgreSQL that ``store_dir``'s project names
    with the backup ``src`` (a backup directory or a database file); see the module doc."""
    from agentkeep.backends.postgres import schemas
    from agentkeep.backends.postgres.url import redacted, split_url
    from agentkeep.config import Config
    from agentkeep.ops.copy import copy_store
    from agentkeep.store import store_url

    if src.is_file():
        check_database_file(src)
        database, manifest = src, None
    else:
        manifest = read_backup_manifest(src)
        database = src / SNAPSHOT_DB
    url = store_url(Config.load(project_file=store_dir / "config.toml"))
    _, schema = split_url(url)
    if schemas.schema_exists(url) and not force:
        raise Conflict(
            f"{store_dir} already holds a store (schema {schema} on {redacted(url)})",
            hint="pass --force to move its schema aside (to <schema>_replaced_<time>) and restore",
        )
    digest, _ = sha256_file(database)
    staging = schemas.staging_name(schema, digest)
    # The backup's database is read in place (read-only): copy_store's source is a store,
    # and that is all it reads of one.
    files_dir = store_dir if manifest is None else src
    source = cast("Store", _DatabaseFile(database, files_dir))
    # copy_store puts the sealed streams' and objects' bytes into the staging schema's
    # shared storage from files_dir, so every machine can fetch them once it is swapped in.
    copied = copy_store(source, schemas.with_schema(url, staging))
    failpoint("restore:copied")
    files = 1 + (_add_missing_files(src, manifest, store_dir) if manifest is not None else 0)
    aside = schemas.replaced_name(schema, file_stamp().lower())
    replaced = schemas.swap_in(url, staging, aside)
    failpoint("restore:swapped")
    result = _check_restored(store_dir, src, replaced, files)
    notes = [f"restored into schema {schema} on {redacted(url)} ({copied.rows} rows, verified)"]
    if replaced is not None:
        notes.append(
            f"the previous store is schema {replaced} on the same database (read it with "
            f"`agentkeep --store '{redacted(schemas.with_schema(url, replaced))}' …`); "
            f'once you no longer need it: DROP SCHEMA "{replaced}" CASCADE'
        )
    notes.append(
        "other machines' agentkeep processes see the restored store from their next "
        "statement; restart `agentkeep serve` and followers there"
    )
    return dataclasses.replace(result, notes=notes)


class _DatabaseFile:
    """A backup's database file as :func:`~agentkeep.ops.copy.copy_store`'s source: its
    read snapshot, its path, and the directory holding the files its rows name."""

    def __init__(self, db_path: Path, store_dir: Path) -> None:
        self.db_path = db_path
        self.store_dir = store_dir
        self.maintenance = self

    def snapshot(self) -> contextlib.AbstractContextManager[Snapshot]:
        return read_file(self.db_path)


def _add_missing_files(src: Path, manifest: Mapping[str, Any], store_dir: Path) -> int:
    """Copy the backup's stream and object files the project's directory lacks into it
    (a file already there is kept: objects are named by their hash, and a stream file
    holds at least the prefix its row's length covers). Returns how many were added."""
    added = 0
    dirs: set[Path] = set()
    for relative in sorted(manifest["files"]):
        if relative == SNAPSHOT_DB or len(Path(relative).parts) < 2:
            continue  # the database, and config.toml/.gitignore: the project keeps its own
        dest = store_dir / relative
        if dest.exists():
            continue
        make_dirs(dest.parent)
        dirs.add(dest.parent)
        tmp = temp_path(dest)
        try:
            write_durably(tmp, file_chunks(src / relative))
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        added += 1
    fsync_dirs(dirs)
    return added
