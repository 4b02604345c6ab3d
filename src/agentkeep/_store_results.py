"""The results of the store's less common calls (:func:`~agentkeep.store.init_store`,
:func:`~agentkeep.store.accept_database`, :meth:`Store.schema_status
<agentkeep.store.Store.schema_status>`, :meth:`Store.check <agentkeep.store.Store.check>`),
apart from :mod:`agentkeep.store` so that opening a store does not build their dataclasses
(~1-3 ms each of every command's start-up). :mod:`agentkeep.store` re-exports them."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentkeep.record import Record


@dataclass(frozen=True)
class InitResult(Record):
    store_dir: str
    root: str
    outcome: str  # created | already_exists


@dataclass(frozen=True)
class CheckReport(Record):
    ok: bool
    integrity: list[str]
    foreign_keys: list[str]
    journal_mode: str
    db_schema_version: int
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AcceptResult(Record):
    """What ``db accept`` decided: the database as it is now is the truth."""

    path: str
    db_event_seq: int  # the newest event the database holds
    mark_event_seq: int | None  # what the high-water mark said before (None: no mark)
    missing_events: int  # how many acknowledged events the database lacked
    damage_cleared: str | None  # the recorded damage that was cleared, if any


@dataclass(frozen=True)
class SchemaStatus(Record):
    path: str
    db_schema_version: int
    min_reader_version: int
    min_writer_version: int
    code_schema_version: int
    pending: list[str]
    writable: bool
    journal_mode: str
    synchronous: str
    page_size: int
    page_count: int
    freelist_count: int
    wal_bytes: int


@dataclass(frozen=True)
class SpoolSync(Record):
    """What :meth:`Store.sync_spool <agentkeep.store.Store.sync_spool>` (``agentkeep
    sync``) did with the hook deliveries waiting in the project's spool."""

    backend: str  # sqlite | postgres
    stored: int  # deliveries applied (found stored already included: each is stored once)
    quarantined: int  # records moved to spool-quarantine/ (doctor reports them)
    waiting: int  # records still in the spool (new arrivals, or the writer lock was busy)


__all__ = ["AcceptResult", "CheckReport", "InitResult", "SchemaStatus", "SpoolSync"]
