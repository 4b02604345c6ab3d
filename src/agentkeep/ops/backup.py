"""``agentkeep backup``: a directory holding a consistent snapshot of the store
(docs/design.md "Backup, restore, bundles").

- the database, copied by the backend's online backup (``store.maintenance.backup_to``), so
  it is a state some commit left behind; writers keep writing (the writer lock is never
  held);
- the stream and object files *that snapshot* refers to. They are copied while holding the
  maintenance lock shared, taken *before* the snapshot, so ``gc`` (which unlinks files only
  under that lock, held exclusively) cannot delete a file the snapshot still names. Objects
  and sealed streams are immutable. A live or closed stream is copied up to the ``length``
  the snapshot records (every byte below it was durable when the row said so; the file
  may have grown since). If it was sealed meanwhile, its plain file is gone and the same
  prefix is read back from the sealed file;
- ``config.toml`` and ``.gitignore``, and last ``manifest.json``: the schema version and
  the size and sha256 of every file. A directory without a manifest is an unfinished backup.

The backup of a store on PostgreSQL is the same portable SQLite snapshot: its
``config.toml`` is written without ``store.url`` (restored into a new directory it is a
SQLite store, never a second way into the live server's), and the manifest records where
it came from (``source_backend``, ``source_url`` without any password).

Every file and directory is fsynced. The snapshot's rows are read back from the copy
(``backends.sqlite.maintenance.read_file``), never from the live database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep._version import __version__
from agentkeep.backends.sqlite.maintenance import read_file
from agentkeep.config import set_in_file
from agentkeep.errors import Corrupt, InvalidInput
from agentkeep.files import (
    maintenance_lock,
    make_dirs,
    remove_quietly,
    staged_file,
)
from agentkeep.models import Record
from agentkeep.ops.bundle_format import (
    BACKUP_FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SIDE_FILES,
    SNAPSHOT_DB,
    StreamRef,
    entry,
    file_chunks,
    fsync_dirs,
    sha256_file,
    stream_chunks,
    write_durably,
)
from agentkeep.services.artifacts import object_path
from agentkeep.timeutil import file_stamp, utc_now

if TYPE_CHECKING:
    from agentkeep.store import Store


@dataclass(frozen=True)
class BackupResult(Record):
    path: str
    schema_version: int
    created_at: str
    files: int
    bytes: int
    missing: list[str] = field(default_factory=list)


def _backup_target(store: Store, dest: str | Path | None) -> Path:
    if dest is None:
        return store.store_dir / "backups" / f"snapshot-{file_stamp()}"
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(
            f"{target} exists and is not an empty directory",
            hint="name a new directory for the backup",
        )
    return target


Chunks = Callable[[], Iterator[bytes]]  # how to read one file
REF_BATCH = 1000  # snapshot rows read at a time: a backup's memory does not grow with the store


def _snapshot_files(
    store_dir: Path, db: Path
) -> Iterator[tuple[str, Callable[[], Iterator[bytes]]]]:
    """Each file the snapshot database ``db`` refers to: its path relative to the store
    directory and how to read its bytes as the snapshot saw them. Streamed from the
    snapshot (a private copy, so its read transaction holds up no writer)."""
    with read_file(db) as snapshot:
        for batch in snapshot.batches(
            "SELECT id, session_id, name, status, path, length FROM streams ORDER BY id",
            size=REF_BATCH,
        ):
            for row in batch:
                ref = StreamRef(*row)
                yield ref.path, partial(stream_chunks, store_dir, ref)
        for batch in snapshot.batches(
            "SELECT sha256, encoding FROM objects ORDER BY sha256", size=REF_BATCH
        ):
            for sha, encoding in batch:
                source = object_path(store_dir, sha, encoding)
                yield source.relative_to(store_dir).as_posix(), partial(file_chunks, source)


def backup(
    store: Store,
    dest: str | Path | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> BackupResult:
    """Write a consistent snapshot of the store (database, streams, objects) to ``dest``.

    Default: ``.agentkeep/backups/snapshot-<UTC time>/``. Refuses a non-empty ``dest``.
    Never takes the writer lock; holds the maintenance lock shared from before the
    database snapshot until every file it names is copied. ``progress(done, total, phase)``
    is called after the database (phase ``database``) and each file (phase ``files``).
    """
    target = _backup_target(store, dest)
    make_dirs(target, within=store.store_dir if dest is None else None)
    files: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    dirs = {target}
    with maintenance_lock(store.store_dir, shared=True):
        if progress is not None:
            progress(0, 1, "database")
        store.maintenance.backup_to(target / SNAPSHOT_DB)
        files[SNAPSHOT_DB] = entry(*sha256_file(target / SNAPSHOT_DB))
        total = 0
        if progress is not None:
            progress(1, 1, "database")
            with read_file(target / SNAPSHOT_DB) as snapshot:
                total = snapshot.scalar(
                    "SELECT (SELECT count(*) FROM streams) + (SELECT count(*) FROM objects)"
                )
            progress(0, total, "files")
        for done, (relative, chunks) in enumerate(
            _snapshot_files(store.store_dir, target / SNAPSHOT_DB), 1
        ):
            _copy_into(target, relative, chunks, files, missing, dirs)
            if progress is not None:
                progress(done, total, "files")
    for name in SIDE_FILES:
        if (store.store_dir / name).is_file():
            _copy_into(
                target, name, partial(file_chunks, store.store_dir / name), files, missing, dirs
            )
    source = _source(store)
    if "source_url" in source and "config.toml" in files:
        set_in_file(target / "config.toml", "store.url", "")  # see the module doc
        files["config.toml"] = entry(*sha256_file(target / "config.toml"))
    created_at = utc_now()
    schema = _snapshot_schema(target / SNAPSHOT_DB)
    manifest = {
        "format": BACKUP_FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": schema,
        "created_at": created_at,
        "agentkeep_version": __version__,
        "database": SNAPSHOT_DB,
        "files": dict(sorted(files.items())),
        "missing": missing,
        **source,
    }
    _write_manifest(target, manifest)
    fsync_dirs(dirs)
    return BackupResult(
        path=str(target),
        schema_version=schema,
        created_at=created_at,
        files=len(files),
        bytes=sum(f["size"] for f in files.values()),
        missing=missing,
    )


def _source(store: Store) -> dict[str, str]:
    """The manifest's record of the store backed up: its backend, and a server's URL."""
    from agentkeep.backends.postgres.url import redacted
    from agentkeep.store import store_url

    url = store_url(store.config)
    if not url:
        return {"source_backend": store.backend.name}
    return {"source_backend": store.backend.name, "source_url": redacted(url)}


def _copy_into(
    target: Path,
    relative: str,
    chunks: Chunks,
    files: dict[str, dict[str, Any]],
    missing: list[str],
    dirs: set[Path],
) -> None:
    """Copy one file into the backup; a file the store lacks is listed as missing."""
    dest = target / relative
    make_dirs(dest.parent)
    dirs.add(dest.parent)
    try:
        files[relative] = entry(*write_durably(dest, chunks()))
    except (FileNotFoundError, Corrupt):
        remove_quietly(dest)
        missing.append(relative)


def _snapshot_schema(db: Path) -> int:
    with read_file(db) as snapshot:
        return snapshot.scalar("SELECT value FROM meta WHERE key = 'schema_version'")


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    with staged_file(directory / MANIFEST) as tmp:
        write_durably(tmp, [data])
