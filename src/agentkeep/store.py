"""The store facade: finding, creating and opening a project's store.

``agentkeep.open()`` returns a :class:`Store`, whose methods come from one module per noun
(tasks, notes, sessions, agents, worktrees, metrics, integrations, events). All of them
write through the same choke point (``_core.Tx``) inside ``BEGIN IMMEDIATE`` transactions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from agentkeep import lifecycle
from agentkeep._core import StoreBase, _Transaction
from agentkeep._version import __version__
from agentkeep.backends.sqlite import BACKEND as SQLITE
from agentkeep.backends.sqlite.connection import (
    Connection,
    check_mark,
    connect,
    ensure_wal,
    roll_back_hot_journal,
)
from agentkeep.config import Config, default_config_toml
from agentkeep.errors import (
    AgentkeepError,
    Corrupt,
    InvalidInput,
    ReadOnly,
    StorageError,
    StorageFull,
    StoreNotFound,
)
from agentkeep.files import RESERVE_NAME
from agentkeep.highwater import MARK_NAME, CommitGuard
from agentkeep.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    check_readable,
    migrate,
    pending,
    read_state,
    too_new_error,
)
from agentkeep.paths import DB_NAME, STORE_DIRNAME, find_store, main_worktree_root
from agentkeep.record import Record
from agentkeep.spool import pending as spool_pending
from agentkeep.spool import status as spool_status
from agentkeep.timeutil import file_stamp

# The services a store composes: attribute -> (module, class). A service's module is
# imported when the store first uses it (``store.tasks``, or a flat method such as
# ``store.add_task``), so a command pays only for the nouns it touches.
SERVICES: dict[str, tuple[str, str]] = {
    "tasks": ("agentkeep.services.tasks", "TaskService"),
    "notes": ("agentkeep.services.notes", "NoteService"),
    "sessions": ("agentkeep.services.sessions", "SessionService"),
    "agents": ("agentkeep.services.agents", "AgentService"),
    "worktrees": ("agentkeep.services.worktrees", "WorktreeService"),
    "metrics": ("agentkeep.services.metrics", "MetricService"),
    "integrations": ("agentkeep.services.integrations", "IntegrationService"),
    "ledger": ("agentkeep.services.events", "EventService"),
    "streams": ("agentkeep.services.streams", "StreamService"),
    "artifacts": ("agentkeep.services.artifacts", "ArtifactService"),
    "history": ("agentkeep.services.history", "HistoryService"),
    "transcripts": ("agentkeep.services.transcripts", "TranscriptService"),
    "finder": ("agentkeep.services.search", "SearchService"),
    "reports": ("agentkeep.services.stats", "StatsService"),
    "primer": ("agentkeep.services.prime", "PrimeService"),
    "docs": ("agentkeep.services.docs", "DocService"),
    "queues": ("agentkeep.services.queues", "QueueService"),
    "context": ("agentkeep.services.context", "ContextService"),
    "collections": ("agentkeep.services.collections", "CollectionService"),
    "mail": ("agentkeep.services.messages", "MessageService"),
}


class _Deferred:
    """A service class named before its module is imported: ``Cls.method`` gives a
    :class:`_DeferredMethod` that :func:`_delegate` resolves on first use."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __getattr__(self, method: str) -> _DeferredMethod:
        return _DeferredMethod(self, method)

    def resolve(self) -> type:
        import importlib

        cls: type = getattr(importlib.import_module(self.module), self.name)
        return cls


class _DeferredMethod:
    def __init__(self, owner: _Deferred, name: str) -> None:
        self.owner, self.name = owner, name

    def resolve(self) -> Callable[..., Any]:
        method: Callable[..., Any] = getattr(self.owner.resolve(), self.name)
        return method


if TYPE_CHECKING:
    from agentkeep._store_results import (
        AcceptResult,
        CheckReport,
        InitResult,
        SchemaStatus,
        SpoolSync,
    )
    from agentkeep.backends.base import Maintenance
    from agentkeep.hook import Drained
    from agentkeep.models import Project, Redaction
    from agentkeep.services.agents import AgentService
    from agentkeep.services.artifacts import ArtifactService
    from agentkeep.services.collections import CollectionService
    from agentkeep.services.context import ContextService
    from agentkeep.services.docs import DocService
    from agentkeep.services.events import EventService
    from agentkeep.services.history import HistoryService
    from agentkeep.services.integrations import IntegrationService
    from agentkeep.services.messages import MessageService
    from agentkeep.services.metrics import MetricService
    from agentkeep.services.notes import NoteService
    from agentkeep.services.prime import PrimeService
    from agentkeep.services.queues import QueueService
    from agentkeep.services.search import SearchService
    from agentkeep.services.sessions import SessionService
    from agentkeep.services.stats import StatsService
    from agentkeep.services.streams import StreamService
    from agentkeep.services.tasks import TaskService
    from agentkeep.services.transcripts import TranscriptService
    from agentkeep.services.worktrees import WorktreeService
else:  # the same names, imported on first use (SERVICES)
    globals().update({name: _Deferred(module, name) for module, name in SERVICES.values()})

P = ParamSpec("P")
R = TypeVar("R")

GITIGNORE = """# Everything here is runtime state except what is meant for git: config.toml, the
# documents written through agentkeep (docs/), their types (schemas/) and the spec manifest.
*
!.gitignore
!config.toml
!specs.toml
!docs/
!docs/**
!schemas/
!schemas/**
*.tmp-*
"""
# What GITIGNORE said before documents (a store made then gets the new text on its first
# document write: services/docs.py).
OLD_GITIGNORES = (
    """# Everything here is runtime state except config.toml, which is meant for git.
*
!.gitignore
!config.toml
""",
)

COUNTED_TABLES = (
    "tasks",
    "notes",
    "sessions",
    "agents",
    "worktrees",
    "metrics",
    "integrations",
    "events",
    "redactions",
)
ROW_COUNTS_SINCE = 7  # the migration that keeps COUNTED_TABLES' rows in row_counts


def default_actor() -> str:
    actor = os.environ.get("AGENTKEEP_ACTOR")
    if actor:
        return actor
    import getpass  # imports kept off the start-up path of every command

    try:
        return f"{getpass.getuser()}@cli"
    except (KeyError, OSError):
        return "unknown@cli"


@dataclass(frozen=True)
class StoreStatus(Record):
    project: str
    root: str
    store_dir: str
    db_schema_version: int
    synchronous: str
    journal_mode: str
    db_bytes: int
    wal_bytes: int
    counts: dict[str, int]
    tasks_by_status: dict[str, int]
    ready_tasks: int
    running_sessions: int
    active_agents: int
    last_event_seq: int
    last_event_at: str | None
    idle_sessions: int = 0  # running sessions the idle rule calls idle (not running)
    spooled: int = 0  # hook deliveries waiting in .agentkeep/spool/ for the writer lock
    backend: str = "sqlite"  # or "postgres"
    database: str = ""  # the SQLite file, or the PostgreSQL URL (never with a password)


def resolve_store_dir(path: str | Path | None) -> Path:
    """The store directory for an explicit path (a project root or a store dir) or cwd."""
    if path is None:
        found = find_store()
        if found is None:
            here = Path.cwd().absolute()
            for directory in (here, *here.parents):  # a store whose database is gone
                if (directory / STORE_DIRNAME).is_dir():
                    refuse_fresh_store(directory / STORE_DIRNAME, "missing")
            raise StoreNotFound(
                "no agentkeep store here or in any parent directory",
                hint="run `agentkeep init` in your git repository, or pass --store",
            )
        return found
    candidate = Path(path).expanduser().absolute()
    if (candidate / STORE_DIRNAME).is_dir():
        return candidate / STORE_DIRNAME
    return candidate


def init_store(
    root: str | Path | None = None, *, name: str | None = None, url: str | None = None
) -> InitResult:
    """Create ``<root>/.agentkeep`` (config, .gitignore, database) if it does not exist.

    ``root`` defaults to the main worktree of the git repository around the working
    directory. Idempotent: a second call reports ``already_exists`` and changes nothing.
    ``url`` (``postgresql://…``) puts the database in a PostgreSQL shared by a team: it is
    written to the project's config.toml as ``store.url`` (never with a password).
    """
    if root is None:
        found = main_worktree_root(Path.cwd())
        if found is None:
            raise InvalidInput(
                "not inside a git repository",
                hint="run `agentkeep init` in a git repository, or pass the project directory",
            )
        root_path = found
    else:
        root_path = Path(root).expanduser().absolute()
        if not root_path.is_dir():
            raise InvalidInput(f"{root_path} is not a directory")
    store_dir = root_path / STORE_DIRNAME
    if url:
        from agentkeep.backends.postgres.url import check_storable

        check_storable(url)
        existed = _postgres_store_exists(url)
    else:
        existed = (store_dir / DB_NAME).exists()
        if not existed:
            refuse_fresh_store(store_dir, "missing")
    from agentkeep.files import PRIVATE_DIR, write_new_file

    try:
        store_dir.mkdir(exist_ok=True, mode=PRIVATE_DIR)
        for filename, text in (("config.toml", default_config_toml()), (".gitignore", GITIGNORE)):
            write_new_file(store_dir / filename, text.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"cannot create {store_dir}: {exc.strerror}") from exc
    if url:
        from agentkeep.config import set_in_file

        set_in_file(store_dir / "config.toml", "store.url", url)
    with open(store_dir, create=True) as store:
        project = store.project(name=name or root_path.name)
    from agentkeep.files import ensure_reserve

    ensure_reserve(store_dir)  # lets `gc` and a run's bookkeeping work on a full disk
    from agentkeep.registry import register_project

    register_project(root_path, uid=project.uid, name=project.name)
    from agentkeep._store_results import InitResult

    return InitResult(str(store_dir), str(root_path), "already_exists" if existed else "created")


def _postgres_store_exists(url: str) -> bool:
    from agentkeep.backends.postgres.connection import connect

    conn = connect(url)
    try:
        return read_state(conn) is not None
    finally:
        conn.close()


def open(  # shadows the builtin on purpose: the entry point reads as agentkeep.open()
    path: str | Path | None = None,
    *,
    create: bool = False,
    actor: str | None = None,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    strict_config: bool = True,
    url: str | None = None,
) -> Store:
    """Open a project's store (found from the working directory when ``path`` is None).

    ``strict_config=False`` (the hook, which must keep capturing) uses the defaults for
    what a broken config file says instead of raising (``Config.load(strict=False)``).

    Pending migrations are applied (after a backup). A store written by a newer
    agentkeep is refused with :class:`SchemaTooNew` — or opened read-only if its
    ``min_writer_version`` is newer than this code but its ``min_reader_version`` is not.
    Versions are checked on a read-only connection, so a store this code may not write is
    never modified (not even by the checkpoint SQLite runs when a writer closes).

    ``url`` names the database whatever the settings say (``AGENTKEEP_URL``, ``store.url``):
    a PostgreSQL URL, or ``""`` for the directory's own SQLite (``db copy``'s destination).
    """
    store_dir = resolve_store_dir(path)
    try:
        return _open(
            store_dir, create, actor, read_only, config, strict_config=strict_config, url=url
        )
    except StorageFull as full:
        # A full disk, and no other process holds the store: SQLite cannot even create its
        # -shm (SQLITE_IOERR_SHMSIZE), so no command — `gc --apply` included — could run.
        # Take a little of the reserve (that is what it is for) and try once more.
        if make_room(store_dir):
            return _open(
                store_dir, create, actor, read_only, config, strict_config=strict_config, url=url
            )
        if _size(store_dir / (DB_NAME + "-wal")) == 0 and (store_dir / DB_NAME).exists():
            # No reserve left: read the file as it is, and refuse writes with the full
            # disk. SQLite could not create the -shm, so no process holds the store, and
            # with an empty WAL the main file is complete.
            store = _open(
                store_dir,
                False,
                actor,
                True,
                config,
                immutable=True,
                strict_config=strict_config,
                url=url,
            )
            if not read_only:
                store._refusal = full
            return store
        raise


ROOM_BYTES = 1 << 20  # what an open takes from the reserve on a full disk (-shm, WAL frames)


def make_room(store_dir: Path) -> bool:
    """Shrink the reserve file (files.ensure_reserve) by ``ROOM_BYTES``; whether it did."""
    reserve = store_dir / RESERVE_NAME
    try:
        size = reserve.stat().st_size
        if size == 0:
            return False
        os.truncate(reserve, max(0, size - ROOM_BYTES))
    except OSError:
        return False
    return True


def _open(
    store_dir: Path,
    create: bool,
    actor: str | None,
    read_only: bool,
    config: dict[str, Any] | None,
    *,
    immutable: bool = False,
    strict_config: bool = True,
    url: str | None = None,
) -> Store:
    settings = Config.load(
        project_file=store_dir / "config.toml", overrides=config, strict=strict_config
    )
    url = store_url(settings) if url is None else url
    if url:
        return _open_postgres(store_dir, url, create, actor, read_only, settings)
    db_path = store_dir / DB_NAME
    exists = db_path.exists()
    if not exists:
        refuse_fresh_store(store_dir, "missing")
    if not exists and (read_only or not create):
        raise StoreNotFound(
            f"no agentkeep store at {store_dir}",
            hint="run `agentkeep init` to create one",
        )
    options = {
        "synchronous": settings["store.synchronous"],
        "busy_timeout_ms": settings["store.busy_timeout_ms"],
    }
    refusal: AgentkeepError | None = None
    guard = CommitGuard(str(store_dir / MARK_NAME), synchronous=options["synchronous"])
    if exists and not immutable:
        roll_back_hot_journal(db_path, **options)
    if exists:
        probe = connect(db_path, read_only=True, immutable=immutable, **options)
        try:
            state = read_state(probe)
            if state is None:
                refuse_fresh_store(store_dir, "empty")
            else:
                check_readable(probe, state)
                probe.guard = guard
                if not state.writable_by(SCHEMA_VERSION):
                    refusal = too_new_error(probe, state, for_writing=True)
                else:
                    refusal = _damage(probe, guard)
            if read_only and refusal is None:
                refusal = ReadOnly(
                    "this store was opened read-only", hint="open it without read_only to write"
                )
            if refusal is None:
                refusal = _not_writable(store_dir, db_path)
        except BaseException:
            probe.close()
            raise
        if refusal is not None:
            return _store(probe, store_dir, settings, actor, refusal)
        probe.close()
    from agentkeep.files import secure_store

    secure_store(store_dir)  # no links among its entries; private (principle 5, docs/design.md)
    conn = connect(db_path, **options)
    try:
        migrate(conn, backup_dir=store_dir / "backups", app_version=__version__)
        ensure_wal(conn)
        conn.guard = guard
    except BaseException:
        conn.close()
        raise
    store = _store(conn, store_dir, settings, actor, None)
    store.drain_spool()
    return store


def store_url(settings: Config) -> str:
    """The PostgreSQL URL of the store, or "" for SQLite: ``AGENTKEEP_URL`` in the
    environment, else the ``store.url`` setting (docs/team.md)."""
    return os.environ.get("AGENTKEEP_URL") or str(settings["store.url"] or "")


def _open_postgres(
    store_dir: Path,
    url: str,
    create: bool,
    actor: str | None,
    read_only: bool,
    settings: Config,
) -> Store:
    """Open (or, with ``create``, make) the store in the PostgreSQL schema at ``url``; the
    project directory still holds its config, spool and live stream files."""
    from agentkeep.backends.postgres.connection import connect

    if not store_dir.is_dir() and not create:
        raise StoreNotFound(
            f"no agentkeep store at {store_dir}", hint="run `agentkeep init --url URL`"
        )
    conn = connect(url, busy_timeout_ms=settings["store.busy_timeout_ms"])
    refusal: AgentkeepError | None = None
    try:
        state = read_state(conn)
        if state is None and (read_only or not create):
            raise StoreNotFound(
                f"no agentkeep store at {conn.path}",
                hint=f"run `agentkeep init --url {conn.path}` to create one",
            )
        if state is not None:
            check_readable(conn, state)
            if not state.writable_by(SCHEMA_VERSION):
                refusal = too_new_error(conn, state, for_writing=True)
        if read_only and refusal is None:
            refusal = ReadOnly(
                "this store was opened read-only", hint="open it without read_only to write"
            )
        if refusal is None:
            migrate(conn, backup_dir=None, app_version=__version__)
    except BaseException:
        conn.close()
        raise
    store = _store(conn, store_dir, settings, actor, refusal)  # type: ignore[arg-type]
    if refusal is None:
        store.drain_spool()
    return store


def _not_writable(store_dir: Path, db_path: Path) -> ReadOnly | None:
    """A refusal when this user can read the store but not write it (another user's
    project, a read-only mount): such a store opens read-only instead of failing."""
    if all(os.access(p, os.W_OK) for p in (store_dir, db_path)):
        return None
    return ReadOnly(
        f"{store_dir} is readable but not writable by this user, so it was opened read-only",
        hint="reads work; to write, ask the store's owner or fix the permissions",
    )


def accept_database(path: str | Path | None = None) -> AcceptResult:
    """Accept the database as it is now after a rollback or recorded damage (the user's
    decision, ``agentkeep db accept``): the full ``integrity_check`` must pass, then the
    high-water mark is reset to the database's newest event and the damage note cleared.
    The commits the database lost stay lost; restoring a backup is the alternative."""
    store_dir = resolve_store_dir(path)
    db_path = store_dir / DB_NAME
    if not db_path.exists():
        refuse_fresh_store(store_dir, "missing")
        raise StoreNotFound(f"no agentkeep store at {store_dir}")
    settings = Config.load(project_file=store_dir / "config.toml")
    conn = connect(
        db_path,
        synchronous=settings["store.synchronous"],
        busy_timeout_ms=settings["store.busy_timeout_ms"],
    )
    guard = CommitGuard(str(store_dir / MARK_NAME), synchronous=settings["store.synchronous"])
    try:
        if read_state(conn) is None:
            refuse_fresh_store(store_dir, "empty")
        integrity = SQLITE.maintenance(conn).integrity(full=True)
        if integrity != ["ok"]:
            raise Corrupt(
                f"{db_path} fails integrity_check ({'; '.join(integrity[:3])}); a damaged "
                "database cannot be accepted",
                hint="restore a backup: `agentkeep restore .agentkeep/backups/<backup> --force`",
            )
        conn.lock_writers()
        try:
            before = guard.read()
            seq, at = guard.newest(conn.execute)
            guard.reset(seq, at)
        finally:
            conn.unlock_writers()
    except OSError as exc:
        from agentkeep.files import translate_os_error

        raise translate_os_error(exc, str(store_dir / MARK_NAME)) from exc
    finally:
        conn.close()
        guard.close()
    mark_seq = before.seq if before is not None else None
    from agentkeep._store_results import AcceptResult

    return AcceptResult(
        path=str(db_path),
        db_event_seq=seq,
        mark_event_seq=mark_seq,
        missing_events=max(0, (mark_seq or 0) - seq),
        damage_cleared=(before.damaged or {}).get("reason") if before is not None else None,
    )


def _damage(conn: Connection, guard: CommitGuard) -> AgentkeepError | None:
    """Why this database must not be written (lost commits, known damage), or None."""
    try:
        check_mark(conn, guard)
    except Corrupt as problem:
        return problem
    return None


# What only a store that held data leaves behind (config.toml, .gitignore and docs/ come
# with a clone of the project; the reserve and lock files are recreated by any open).
DATA_DIRS = ("streams", "objects", "backups", "spool")


def store_data(store_dir: Path) -> list[str]:
    """The data a store directory holds outside its database: non-empty data directories,
    and a high-water mark that names a commit. Empty for a new or cloned store."""
    found = []
    for name in DATA_DIRS:
        directory = store_dir / name
        if directory.is_dir() and any(p.is_file() for p in directory.rglob("*")):
            found.append(f"{name}/")
    mark = CommitGuard(str(store_dir / MARK_NAME)).read()
    if mark is not None and (mark.seq > 0 or mark.damaged):
        found.append(f"{MARK_NAME} (event {mark.seq})")
    return found


def newest_backup(store_dir: Path) -> Path | None:
    """The newest backup under ``.agentkeep/backups/`` (a snapshot directory or a file)."""
    directory = store_dir / "backups"
    try:
        entries = [p for p in directory.iterdir() if ".tmp-" not in p.name]
    except OSError:
        return None
    if not entries:
        return None
    return max(entries, key=lambda p: p.stat().st_mtime)


def refuse_fresh_store(store_dir: Path, why: str) -> None:
    """A missing or empty database beside data files is damage to report, never a new store
    (principle 10 of docs/design.md): raise Corrupt naming what is there and how to
    restore."""
    data = store_data(store_dir)
    if not data:
        return
    backup = newest_backup(store_dir)
    if backup is not None:
        hint = f"restore the newest backup: `agentkeep restore {backup} --force`"
    else:
        hint = "restore a backup of the store: `agentkeep restore <backup> --force`"
    raise Corrupt(
        f"the database {store_dir / DB_NAME} is {why}, but the store holds data "
        f"({', '.join(data)}); it was not re-created, so that nothing is lost",
        hint=hint + " (the current directory is moved aside, never deleted); to start a "
        "new store on purpose, move .agentkeep/ aside first",
    )


def _store(
    conn: Connection,
    store_dir: Path,
    settings: Config,
    actor: str | None,
    refusal: AgentkeepError | None,
) -> Store:
    return Store(
        conn,
        store_dir=store_dir,
        config=settings,
        actor=actor or settings["actor"] or default_actor(),
        refusal=refusal,
    )


def _delegate(
    service: str, method: Callable[Concatenate[Any, P], R]
) -> Callable[Concatenate[Store, P], R]:
    """A flat ``Store`` method that calls ``method`` on the service ``store.<service>``,
    with the service method's name, docstring and signature (``inspect`` and ``help()``
    show the real thing)."""
    if not TYPE_CHECKING and isinstance(method, _DeferredMethod):
        return _LazyDelegate(service, method)  # its module is imported on first use
    name = method.__name__

    def call(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = getattr(getattr(self, service), name)(*args, **kwargs)
        return result

    functools.update_wrapper(call, method)
    return call


class _LazyDelegate:
    """A flat ``Store`` method whose service module is not imported yet: on first access
    it imports it and puts the real delegate (:func:`_delegate`) in its place."""

    def __init__(self, service: str, method: _DeferredMethod) -> None:
        self.service, self.method = service, method
        self.owner: type | None = None
        self.name = method.name

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name

    def resolve(self) -> Callable[..., Any]:
        real = _delegate(self.service, self.method.resolve())
        if self.owner is not None:
            setattr(self.owner, self.name, real)
        return real

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self.resolve().__get__(obj, objtype)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


class Store(StoreBase):
    """A project's store. Use as a context manager, or call :meth:`close`.

    The nouns are services the store composes, one module each: ``store.tasks``,
    ``store.notes``, ``store.sessions``, ``store.agents``, ``store.worktrees``,
    ``store.metrics``, ``store.integrations``, ``store.ledger`` (events),
    ``store.streams``, ``store.artifacts``, ``store.history`` (imports),
    ``store.transcripts``, ``store.finder`` (search), ``store.reports`` (stats) and
    ``store.primer`` (prime). Each service method is also a flat method of the store
    (``store.add_task(…)`` is ``store.tasks.add_task(…)``): one name per operation,
    whichever way it is reached.

    Safe to use from many processes at once; one ``Store`` object is meant for one thread
    at a time (open one per thread).
    """

    def __init__(
        self,
        conn: Connection,
        *,
        store_dir: Path,
        config: Config,
        actor: str,
        refusal: AgentkeepError | None = None,
    ) -> None:
        super().__init__(conn, store_dir=store_dir, config=config, actor=actor, refusal=refusal)

    # The services (SERVICES), each made on first use by __getattr__.
    tasks: TaskService
    notes: NoteService
    sessions: SessionService
    agents: AgentService
    worktrees: WorktreeService
    metrics: MetricService
    integrations: IntegrationService
    ledger: EventService
    streams: StreamService
    artifacts: ArtifactService
    history: HistoryService
    transcripts: TranscriptService
    finder: SearchService
    reports: StatsService
    primer: PrimeService
    docs: DocService
    queues: QueueService
    context: ContextService
    collections: CollectionService
    mail: MessageService

    if not TYPE_CHECKING:  # hidden from mypy, which still flags a misspelt attribute

        def __getattr__(self, name: str) -> Any:
            """A service, made (and its module imported) the first time it is used; then
            an ordinary attribute of this store."""
            spec = SERVICES.get(name)
            if spec is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            service = _Deferred(*spec).resolve()(self)
            setattr(self, name, service)
            return service

    def __dir__(self) -> list[str]:
        """The services too, made or not (REPL completion, ``inspect.getmembers``)."""
        return sorted({*super().__dir__(), *SERVICES})

    add_task = _delegate("tasks", TaskService.add_task)
    get_task = _delegate("tasks", TaskService.get_task)
    list_tasks = _delegate("tasks", TaskService.list_tasks)
    update_task = _delegate("tasks", TaskService.update_task)
    claim_task = _delegate("tasks", TaskService.claim_task)
    ready_tasks = _delegate("tasks", TaskService.ready_tasks)
    add_dependency = _delegate("tasks", TaskService.add_dependency)
    remove_dependency = _delegate("tasks", TaskService.remove_dependency)

    add_note = _delegate("notes", NoteService.add_note)
    get_note = _delegate("notes", NoteService.get_note)
    list_notes = _delegate("notes", NoteService.list_notes)
    latest_note = _delegate("notes", NoteService.latest_note)

    start_session = _delegate("sessions", SessionService.start_session)
    end_session = _delegate("sessions", SessionService.end_session)
    end_idle_sessions = _delegate("sessions", SessionService.end_idle_sessions)
    add_session_tokens = _delegate("sessions", SessionService.add_session_tokens)
    get_session = _delegate("sessions", SessionService.get_session)
    imported_files = _delegate("sessions", SessionService.imported_files)
    resume_plan = _delegate("sessions", SessionService.resume_plan)
    list_sessions = _delegate("sessions", SessionService.list_sessions)

    register_agent = _delegate("agents", AgentService.register_agent)
    update_agent = _delegate("agents", AgentService.update_agent)
    get_agent = _delegate("agents", AgentService.get_agent)
    list_agents = _delegate("agents", AgentService.list_agents)
    mark_dead_agents = _delegate("agents", AgentService.mark_dead_agents)

    add_worktree = _delegate("worktrees", WorktreeService.add_worktree)
    lease_worktree = _delegate("worktrees", WorktreeService.lease_worktree)
    release_worktree = _delegate("worktrees", WorktreeService.release_worktree)
    remove_worktree = _delegate("worktrees", WorktreeService.remove_worktree)
    get_worktree = _delegate("worktrees", WorktreeService.get_worktree)
    list_worktrees = _delegate("worktrees", WorktreeService.list_worktrees)

    record_metric = _delegate("metrics", MetricService.record_metric)
    list_metrics = _delegate("metrics", MetricService.list_metrics)

    set_integration = _delegate("integrations", IntegrationService.set_integration)
    list_integrations = _delegate("integrations", IntegrationService.list_integrations)

    record_event = _delegate("ledger", EventService.record_event)
    record_events = _delegate("ledger", EventService.record_events)
    events = _delegate("ledger", EventService.events)
    last_seq = _delegate("ledger", EventService.last_seq)
    follow = _delegate("ledger", EventService.follow)
    undo = _delegate("ledger", EventService.undo)

    open_stream = _delegate("streams", StreamService.open_stream)
    record_progress = _delegate("streams", StreamService.record_progress)
    close_stream = _delegate("streams", StreamService.close_stream)
    get_stream = _delegate("streams", StreamService.get_stream)
    list_streams = _delegate("streams", StreamService.list_streams)
    session_streams = _delegate("streams", StreamService.session_streams)
    seal_stream = _delegate("streams", StreamService.seal_stream)
    open_stream_reader = _delegate("streams", StreamService.open_stream_reader)
    read_stream = _delegate("streams", StreamService.read_stream)
    stream_lines = _delegate("streams", StreamService.stream_lines)
    session_lines = _delegate("streams", StreamService.session_lines)
    follow_stream = _delegate("streams", StreamService.follow_stream)
    sealed_file = _delegate("streams", StreamService.sealed_file)

    add_artifact = _delegate("artifacts", ArtifactService.add_artifact)
    add_git_diff = _delegate("artifacts", ArtifactService.add_git_diff)
    spill_payload = _delegate("artifacts", ArtifactService.spill_payload)
    get_artifact = _delegate("artifacts", ArtifactService.get_artifact)
    list_artifacts = _delegate("artifacts", ArtifactService.list_artifacts)
    artifact_chunks = _delegate("artifacts", ArtifactService.artifact_chunks)
    read_artifact = _delegate("artifacts", ArtifactService.read_artifact)
    object_bytes = _delegate("artifacts", ArtifactService.object_bytes)
    artifact_file = _delegate("artifacts", ArtifactService.artifact_file)
    export_artifact = _delegate("artifacts", ArtifactService.export_artifact)
    verify_artifact = _delegate("artifacts", ArtifactService.verify_artifact)
    object_file = _delegate("artifacts", ArtifactService.object_file)
    share_bytes = _delegate("artifacts", ArtifactService.share_bytes)
    unshare_bytes = _delegate("artifacts", ArtifactService.unshare_bytes)
    shared_bytes = _delegate("artifacts", ArtifactService.shared_bytes)

    project_dirs = _delegate("history", HistoryService.project_dirs)
    import_history = _delegate("history", HistoryService.import_history)
    watch_history = _delegate("history", HistoryService.watch_history)

    transcript = _delegate("transcripts", TranscriptService.transcript)
    session_record = _delegate("transcripts", TranscriptService.session_record)
    transcript_size = _delegate("transcripts", TranscriptService.transcript_size)
    transcript_chunk = _delegate("transcripts", TranscriptService.transcript_chunk)

    search = _delegate("finder", SearchService.search)
    catch_up_search = _delegate("finder", SearchService.catch_up_search)

    stats = _delegate("reports", StatsService.stats)

    prime = _delegate("primer", PrimeService.prime)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def maintenance(self) -> Maintenance:
        """Checks, sizes, space reclamation, online backups, read snapshots and the writer
        lock (:class:`agentkeep.backends.base.Maintenance`): what operations such as gc,
        doctor, backup and export use instead of the connection."""
        return self.backend.maintenance(self._conn)

    def integrity_problem(self) -> Corrupt | None:
        """Why this database must not be written although its schema allows it: damage
        met on this connection or recorded in the high-water mark, or commits missing
        from it (:class:`~agentkeep.errors.RollbackDetected`). None when there is none."""
        if self._conn.damage is not None:
            return self._conn.damage
        if self._conn.guard is None:
            return None
        try:
            check_mark(self._conn, self._conn.guard)
        except Corrupt as problem:
            return problem
        return None

    # -- the hook spool (principle 3 of docs/design.md) ------------------------------------

    def transaction(self, *, actor: str | None = None) -> _Transaction:
        """A write transaction (see :meth:`StoreBase.transaction`); the hook deliveries
        waiting in the spool are stored first (one ``stat`` when there are none)."""
        if self._refusal is None and self._joined is None and spool_pending(str(self.store_dir)):
            self.drain_spool()
        return super().transaction(actor=actor)

    def drain_spool(self) -> Drained | None:
        """Store the hook deliveries waiting in ``.agentkeep/spool/``, in order (each is
        stored once however many writers drain at a time). Supplementary work: when the
        writer lock stays busy for ``hook.lock_wait_ms`` the deliveries are left for the
        next writer, and a failure is written to the hook log, never raised."""
        store_dir = str(self.store_dir)
        if self._refusal is not None or not spool_pending(store_dir):
            return None
        try:
            return self._drain_spool()
        except Exception as exc:  # the records stay; doctor reports them
            from agentkeep import hook

            hook.log_failure(store_dir, "spool", exc)
            return None

    _spool_unreported = 0  # deliveries drained (at open, before writes) not yet reported

    def _drain_spool(self, *, wait_ms: int | None = None) -> Drained:
        from agentkeep import hook

        store_dir = str(self.store_dir)
        settings = {key: self.config[key] for key in hook.SETTING_KEYS}
        if self.backend.name == "postgres":  # the hook never connects: drain through ours
            done = hook.drain_spool_on(self._conn, store_dir, settings)
        else:
            done = hook.drain_spool(store_dir, settings, wait_ms=wait_ms)
        self._spool_unreported += done.applied
        return done

    def sync_spool(self) -> SpoolSync:
        """Store the hook deliveries waiting in ``.agentkeep/spool/`` now and say what was
        done (``agentkeep sync``): on a PostgreSQL project the hook only spools, and this,
        any write, or ``agentkeep serve`` sends them. Counts what this store drained since
        it was opened or last asked. Unlike :meth:`drain_spool`, a failure raises (the
        server unreachable: :class:`~agentkeep.errors.Busy`); the records stay."""
        from agentkeep._store_results import SpoolSync

        self.check_writable()
        store_dir = str(self.store_dir)
        quarantined = 0
        if spool_pending(store_dir):
            # An explicit sync waits for the writer lock as any write does.
            quarantined = self._drain_spool(
                wait_ms=self.config["store.busy_timeout_ms"]
            ).quarantined
        stored, self._spool_unreported = self._spool_unreported, 0
        return SpoolSync(
            backend=self.backend.name,
            stored=stored,
            quarantined=quarantined,
            waiting=spool_status(store_dir).waiting,
        )

    def project(self, *, name: str | None = None) -> Project:
        """This store's project row (created on first use)."""
        from agentkeep.models import Project  # the nouns' module is imported when one is built

        row = self._row("SELECT * FROM projects ORDER BY id LIMIT 1")
        if row is not None:
            return Project.from_row(row)  # type: ignore[no-any-return]
        import secrets

        with self.transaction() as tx:
            row = tx.one("SELECT * FROM projects ORDER BY id LIMIT 1")
            if row is None:
                project_name = name or self.root.name
                project_id = tx.insert(
                    "projects",
                    {"uid": secrets.token_hex(16), "name": project_name, "created_at": tx.now},
                )
                row = tx.row("projects", project_id)
                tx.emit("project", project_id, "project.created", dict(row))
        return Project.from_row(row)  # type: ignore[no-any-return]

    def status(self) -> StoreStatus:
        cutoff = lifecycle.idle_cutoff(int(self.config["sessions.idle_minutes"]))
        schema_version = self._db_schema_version()
        counts, by_status = self._row_counts(schema_version)
        last = self._row("SELECT seq, at FROM events ORDER BY seq DESC LIMIT 1")
        project = self._row("SELECT name FROM projects ORDER BY id LIMIT 1")
        maintenance = self.maintenance
        db_bytes, wal_bytes = maintenance.file_bytes()
        return StoreStatus(
            project=project[0] if project else self.root.name,
            root=str(self.root),
            store_dir=str(self.store_dir),
            db_schema_version=schema_version,
            # What is in force: the setting on SQLite, the server's own on PostgreSQL.
            synchronous=(
                self.config["store.synchronous"]
                if self.backend.name == "sqlite"
                else maintenance.synchronous()
            ),
            journal_mode=maintenance.journal_mode(),
            db_bytes=db_bytes,
            wal_bytes=wal_bytes,
            counts=counts,
            tasks_by_status=by_status,
            ready_tasks=self._count(lifecycle.READY_COUNT_SQL),
            # The lifecycle rule: an idle session is not running, and an agent whose
            # sessions all ended or went idle is not active (even before a writer says so).
            running_sessions=self._count(lifecycle.RUNNING_SESSIONS_SQL, (cutoff,)),
            idle_sessions=self._count(lifecycle.IDLE_SESSIONS_SQL, (cutoff,)),
            active_agents=self._count(lifecycle.ACTIVE_AGENTS_SQL, (cutoff,)),
            last_event_seq=last[0] if last else 0,
            last_event_at=last[1] if last else None,
            spooled=spool_status(str(self.store_dir)).waiting,
            backend=self.backend.name,
            database=str(self.db_path),
        )

    def _row_counts(self, schema_version: int) -> tuple[dict[str, int], dict[str, int]]:
        """The rows of each counted table and the tasks per status: kept by triggers in
        every writing transaction since migration 7 (a few rows read, not whole tables
        counted); counted on a store opened read-only before that migration."""
        if schema_version < ROW_COUNTS_SINCE:
            counts = {t: self._count(f"SELECT count(*) FROM {t}") for t in COUNTED_TABLES}
            grouped = self._rows("SELECT status, count(*) FROM tasks GROUP BY status")
            return counts, {row[0]: row[1] for row in grouped}
        kept = {str(row[0]): int(row[1]) for row in self._rows("SELECT name, n FROM row_counts")}
        counts = {table: kept.get(table, 0) for table in COUNTED_TABLES}
        by_status = {
            name.removeprefix("tasks."): n
            for name, n in sorted(kept.items())
            if name.startswith("tasks.") and n > 0
        }
        return counts, by_status

    def _db_schema_version(self) -> int:
        state = read_state(self._conn)
        return state.schema_version if state else 0

    def schema_status(self) -> SchemaStatus:
        state = read_state(self._conn)
        if state is None:  # an empty database opened read-only
            raise StorageError(
                f"{self.db_path} holds no agentkeep schema",
                hint="restore a backup, or move .agentkeep/ aside and run `agentkeep init`",
            )
        maintenance = self.maintenance
        page_size, page_count, freelist_count = maintenance.pages()
        from agentkeep._store_results import SchemaStatus

        return SchemaStatus(
            path=str(self.db_path),
            db_schema_version=state.schema_version,
            min_reader_version=state.min_reader_version,
            min_writer_version=state.min_writer_version,
            code_schema_version=SCHEMA_VERSION,
            pending=[f"{m.version} {m.name}" for m in pending(state, MIGRATIONS)],
            writable=state.writable_by(SCHEMA_VERSION),
            journal_mode=maintenance.journal_mode(),
            synchronous=maintenance.synchronous(),
            page_size=page_size,
            page_count=page_count,
            freelist_count=freelist_count,
            wal_bytes=maintenance.file_bytes()[1],
        )

    def check(self) -> CheckReport:
        """Full ``integrity_check`` and ``foreign_key_check`` (O(size); not run at open)."""
        maintenance = self.maintenance
        integrity = maintenance.integrity(full=True)  # a check that fails says so here
        fk = [
            f"{table} row {row} references missing {parent}"
            for table, row, parent in maintenance.foreign_key_violations()
        ]
        mode = maintenance.journal_mode()
        problems = []
        if integrity != ["ok"]:
            problems.append("integrity_check failed")
            # Known damage: every later open refuses writes until the user decides.
            maintenance.note_damage(Corrupt("integrity_check: " + "; ".join(integrity[:3])))
        recorded = self.integrity_problem()
        if recorded is not None and integrity == ["ok"]:
            problems.append(recorded.message)
        if fk:
            problems.append(f"{len(fk)} foreign key violation(s)")
        if mode != "wal":
            problems.append(f"journal_mode is {mode}, not wal")
        from agentkeep._store_results import CheckReport

        return CheckReport(
            ok=not problems,
            integrity=integrity,
            foreign_keys=fk,
            journal_mode=mode,
            db_schema_version=self._db_schema_version(),
            problems=problems,
        )

    def backup(self, dest: str | Path | None = None) -> Path:
        """Write a consistent snapshot of the database (online; writers keep writing).

        Default destination: ``.agentkeep/backups/state-<UTC time>.db``.
        """
        target = self.store_dir / "backups" if dest is None else Path(dest).expanduser().absolute()
        if target.is_dir() or dest is None:
            target = target / f"state-{file_stamp()}.db"
        elif target.exists():
            raise InvalidInput(
                f"{target} already exists", hint="choose a new file name for the backup"
            )
        self.maintenance.backup_to(target)
        return target

    def redactions(self, *, limit: int | None = None) -> list[Redaction]:
        from agentkeep.models import Redaction

        sql = "SELECT * FROM redactions ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [Redaction.from_row(row) for row in self._rows(sql)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


_RESULTS = ("AcceptResult", "CheckReport", "InitResult", "SchemaStatus", "SpoolSync")


def __getattr__(name: str) -> Any:
    """The results defined in :mod:`agentkeep._store_results` (imported on first use)."""
    if name in _RESULTS:
        from agentkeep import _store_results

        value = getattr(_store_results, name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AcceptResult",
    "CheckReport",
    "InitResult",
    "SchemaStatus",
    "Store",
    "StoreStatus",
    "accept_database",
    "init_store",
    "open",
]
