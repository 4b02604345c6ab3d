"""Schema migrations: registered, named, transactional, applied on open (DESIGN.md principle 8).

Each :class:`Migration` runs in one ``BEGIN IMMEDIATE … COMMIT`` together with the update of
the ``meta`` table, after re-reading the schema version inside the write lock, so two
processes opening an old database at once migrate it exactly once, and a crash at any step
leaves either the old schema or the new one. Before an *existing* database is migrated, a
consistent backup is written to ``.agentkeep/backups/``.

The registry is append-only: a released migration is never edited. Its SQL is annotated
with ``--`` comments saying why each table and column exists; ``docs/schema.md`` is
generated from this file (``scripts/gen_docs.py``) and a test fails if it drifts.

Compatibility (reliability.md §2.8): ``meta`` records ``schema_version`` and the lowest
schema version of agentkeep code that may read (``min_reader_version``) and write
(``min_writer_version``) the file. Code whose newest migration is older than
``min_writer_version`` refuses to write; older than ``min_reader_version`` refuses to open.
Neither changes a byte of the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentkeep.backends.sqlite.connection import (
    Connection,
    backup_to,
    ensure_wal,
    write_transaction,
)
from agentkeep.errors import AgentkeepError, Busy, Corrupt, SchemaTooNew, StorageError
from agentkeep.failpoints import failpoint
from agentkeep.timeutil import file_stamp, utc_now


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # The oldest code (by its newest migration) that may still read / write the result.
    min_reader_version: int = 1
    min_writer_version: int = 1
    # A table rebuild (SQLite's 12-step ALTER: create new, copy, drop old, rename) of a
    # table other tables reference must run with foreign keys off — the pragma cannot change
    # inside a transaction — and is checked with foreign_key_check before COMMIT instead.
    foreign_keys_off: bool = False
    # Switch the file to incremental auto-vacuum, which SQLite applies only through a full
    # VACUUM (it cannot run inside a transaction): done right after the step commits, still
    # under the writer lock. A crash in between leaves a correct store that simply does not
    # shrink yet; the next open finishes it (see ``_finish_vacuum_mode``).
    incremental_vacuum: bool = False


BASELINE = """
-- Key/value facts about the file itself: schema_version, min_reader_version,
-- min_writer_version (see "Compatibility"), created_at, created_by (agentkeep version).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The project this store belongs to: one row. uid is random and survives copying the
-- directory, so the per-user registry (global.db) can recognise a moved project.
CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Git worktrees agents work in. path is relative to the project root (never absolute, so
-- the store stays portable); a worktree beside the repository is stored as '../name'.
-- A lease (owner + expiry) says which agent may use it; leases are taken by
-- compare-and-set. Removed worktrees keep their row (history) with status 'removed'.
CREATE TABLE worktrees (
    id               INTEGER PRIMARY KEY,
    path             TEXT NOT NULL,
    branch           TEXT,
    base_commit      TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- At most one active worktree per path; removed ones may share it.
CREATE UNIQUE INDEX worktrees_active_path ON worktrees (path) WHERE status = 'active';

-- Running or past agents. name is the handle people and scripts use. pid and host are
-- machine-local (stripped from exports) and let `agents --mark-dead` find agents whose
-- process is gone. heartbeat_at is refreshed by long-running agents.
CREATE TABLE agents (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL DEFAULT 'custom',
    role         TEXT,
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'idle', 'done', 'dead')),
    pid          INTEGER,
    host         TEXT,
    worktree_id  INTEGER REFERENCES worktrees (id),
    heartbeat_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Units of work. status moves only along validated transitions (tasks.TRANSITIONS);
-- priority 0 is the most urgent. labels is a JSON array of strings. parent_id groups
-- sub-tasks under an epic; dependencies live in task_deps.
CREATE TABLE tasks (
    id         INTEGER PRIMARY KEY,
    title      TEXT NOT NULL CHECK (length(title) > 0),
    body       TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT 'open'
               CHECK (status IN ('open', 'in_progress', 'blocked', 'done', 'cancelled')),
    priority   INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    assignee   TEXT,
    labels     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(labels)),
    parent_id  INTEGER REFERENCES tasks (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at  TEXT
);
-- `tasks ready` and `tasks list --status` read this index in priority order.
CREATE INDEX tasks_status ON tasks (status, priority, id);

-- task_id cannot start before depends_on is done. Cycles are refused by the code.
CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id != depends_on)
) WITHOUT ROWID;
CREATE INDEX task_deps_reverse ON task_deps (depends_on, task_id);

-- One agent conversation or recorded run. (source, external_id) identifies a session of
-- an outside tool (a Claude Code session id, a Codex rollout id) so re-imports update the
-- same row. cwd is relative to the project root. Token totals are running sums.
CREATE TABLE sessions (
    id                 INTEGER PRIMARY KEY,
    agent_id           INTEGER REFERENCES agents (id),
    task_id            INTEGER REFERENCES tasks (id),
    source             TEXT NOT NULL DEFAULT 'agentkeep',
    external_id        TEXT,
    status             TEXT NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'ended', 'failed', 'interrupted')),
    started_at         TEXT NOT NULL,
    ended_at           TEXT,
    exit_code          INTEGER,
    model              TEXT,
    cwd                TEXT,
    title              TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, external_id)
);
CREATE INDEX sessions_status ON sessions (status, id);
CREATE INDEX sessions_task ON sessions (task_id) WHERE task_id IS NOT NULL;

-- What agents leave for each other and for people. kind-specific fields live in data
-- (JSON): validation {command, exit_code, summary}; pointer {url, ref}; health
-- {subject, status}. Notes attach to a task, a session and/or an agent.
CREATE TABLE notes (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('handoff', 'decision', 'next_action',
                                             'validation', 'pointer', 'health', 'fact')),
    body       TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    task_id    INTEGER REFERENCES tasks (id),
    session_id INTEGER REFERENCES sessions (id),
    agent_id   INTEGER REFERENCES agents (id),
    author     TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_kind ON notes (kind, id);
CREATE INDEX notes_task ON notes (task_id, id) WHERE task_id IS NOT NULL;

-- Time series: one row per observation. labels is a JSON object of string values.
CREATE TABLE metrics (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    at         TEXT NOT NULL,
    session_id INTEGER REFERENCES sessions (id),
    agent_id   INTEGER REFERENCES agents (id)
);
CREATE INDEX metrics_name_at ON metrics (name, at);

-- External services the project talks to. settings holds non-secret options only;
-- credential_ref names where the credential lives ('env:NAME', 'keyring:service/user'),
-- never the credential itself.
CREATE TABLE integrations (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    settings       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    credential_ref TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- The ledger: every mutation writes one row here in the same transaction. seq is
-- strictly increasing and never reused (AUTOINCREMENT), so followers resume with
-- `seq > last_seen`. data is the created record, or {field: [old, new]} for updates.
-- undoes points at the event an undo reverted.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id INTEGER,
    kind      TEXT NOT NULL,
    data      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    undoes    INTEGER REFERENCES events (seq)
);
CREATE INDEX events_entity ON events (entity, entity_id, seq);
CREATE INDEX events_kind ON events (kind, seq);
CREATE INDEX events_undoes ON events (undoes) WHERE undoes IS NOT NULL;

-- Idempotency keys of writes that come from outside (hooks, importers, API retries): the
-- same key twice creates one record and the second call reports already_exists.
CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    entity     TEXT NOT NULL,
    entity_id  INTEGER NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

-- Audit of the privacy boundary: which rule fired where, how often. Never the value.
CREATE TABLE redactions (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    rule      TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id INTEGER,
    field     TEXT NOT NULL,
    count     INTEGER NOT NULL
);
"""

STREAMS_AND_ARTIFACTS = """
-- A session recorded by `agentkeep run` keeps what it ran and how it ended. pid and host
-- name the recording process, so `doctor` can tell a live recording from one whose
-- recorder died (pid is machine-local: exports strip it). pinned sessions are never
-- touched by retention.
ALTER TABLE sessions ADD COLUMN command TEXT CHECK (command IS NULL OR json_valid(command));
ALTER TABLE sessions ADD COLUMN signal INTEGER;
ALTER TABLE sessions ADD COLUMN duration_ms INTEGER;
ALTER TABLE sessions ADD COLUMN pid INTEGER;
ALTER TABLE sessions ADD COLUMN host TEXT;
ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;

-- An output stream of a session (stdout, stderr, pty). The bytes live in one file under
-- .agentkeep/streams/ (path is relative to the store directory): plain and append-only
-- while live, zstd frames with a seek table once sealed. length is the durable prefix:
-- every byte below it was written and fsynced before the row said so. lines counts the
-- newlines in that prefix. sha256 (of the uncompressed bytes) is set when sealed.
CREATE TABLE streams (
    id           INTEGER PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES sessions (id),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'closed', 'sealed')),
    path         TEXT NOT NULL UNIQUE,
    length       INTEGER NOT NULL DEFAULT 0,
    lines        INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sealed_at    TEXT,
    UNIQUE (session_id, name)
);
CREATE INDEX streams_status ON streams (status) WHERE status != 'sealed';

-- The sparse offset index of a stream: one row per progress commit (every 64 KiB or
-- 250 ms), mapping a byte offset to the number of lines before it, so a reader can start
-- at any line without scanning from the beginning.
CREATE TABLE stream_index (
    stream_id INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    offset    INTEGER NOT NULL,
    line      INTEGER NOT NULL,
    PRIMARY KEY (stream_id, offset)
) WITHOUT ROWID;

-- Content-addressed bulk bytes under .agentkeep/objects/sha256/<2 hex>/<sha256>[.zst]:
-- sha256 of the uncompressed (already redacted) bytes; stored zstd-compressed when that
-- saves more than ~10%. A file is written and made durable before its row commits, and
-- is deleted only after the row's deletion commits, so no row ever points at a missing
-- file; a crash can at worst leave an orphan file, which `doctor --fix` removes.
CREATE TABLE objects (
    sha256       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    encoding     TEXT NOT NULL CHECK (encoding IN ('identity', 'zstd')),
    created_at   TEXT NOT NULL
) WITHOUT ROWID;

-- An artifact: a named, typed reference to an object, attached to a session, task and/or
-- agent. Many artifacts may share one object (deduplication). data holds kind-specific
-- facts (for a git diff: the revision; for a spilled payload: where it came from).
CREATE TABLE artifacts (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL REFERENCES objects (sha256),
    kind         TEXT NOT NULL CHECK (kind IN ('diff', 'log', 'file', 'bundle', 'payload')),
    name         TEXT,
    content_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    size         INTEGER NOT NULL,
    session_id   INTEGER REFERENCES sessions (id),
    task_id      INTEGER REFERENCES tasks (id),
    agent_id     INTEGER REFERENCES agents (id),
    pinned       INTEGER NOT NULL DEFAULT 0,
    data         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    created_at   TEXT NOT NULL
);
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
CREATE INDEX artifacts_session ON artifacts (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX artifacts_task ON artifacts (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX artifacts_kind ON artifacts (kind, id);
"""

CAPTURE = """
-- What agent tools report about their sessions. A session may be fed by hooks (live) and
-- by an importer (the tool's own transcript) at once; both find it by (source,
-- external_id). Counters take the larger of the two views, so they converge instead of
-- double counting. parent_id links a subagent's session to the session that spawned it.
-- capture is the policy the session was captured under ('full' or 'metadata').
ALTER TABLE sessions ADD COLUMN parent_id INTEGER REFERENCES sessions (id);
ALTER TABLE sessions ADD COLUMN prompts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_seen_at TEXT;
ALTER TABLE sessions ADD COLUMN capture TEXT CHECK (capture IN ('full', 'metadata'));
CREATE INDEX sessions_parent ON sessions (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX sessions_started ON sessions (started_at);

-- One hook delivery: the normalized columns plus the raw payload (redacted JSON; NULL
-- under the metadata policy). A payload larger than capture.spill_bytes is kept as a
-- 'payload' artifact and payload holds a preview. event is the normalized kind
-- (session_start, prompt, tool_pre, tool_post, tool_fail, turn_end, subagent_end,
-- compact, session_end, notification, other); vendor_event is the tool's own name.
-- dedupe_key makes a repeated delivery a no-op: (source, session, event, tool_use_id)
-- where a tool_use_id exists, else a hash of the payload.
CREATE TABLE captures (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    source       TEXT NOT NULL,
    event        TEXT NOT NULL,
    vendor_event TEXT,
    session_id   INTEGER REFERENCES sessions (id),
    turn_id      TEXT,
    tool_name    TEXT,
    tool_use_id  TEXT,
    cwd          TEXT,
    exit_code    INTEGER,
    duration_ms  INTEGER,
    payload      TEXT CHECK (payload IS NULL OR json_valid(payload)),
    artifact_id  INTEGER REFERENCES artifacts (id),
    dedupe_key   TEXT NOT NULL UNIQUE
);
CREATE INDEX captures_session ON captures (session_id, id);
CREATE INDEX captures_event ON captures (event, id);

-- A transcript entry, from an importer (or a hook that carries text). One row per content
-- block: role user/assistant/system/tool; kind text, thinking, tool_use, tool_result,
-- summary (compaction summaries, titles), event, raw (a line type agentkeep does not know,
-- kept whole in raw). text is redacted and NULL under the metadata policy. seq orders
-- rows within a session (the byte offset of the source line, so re-imports keep order);
-- external_id is stable across re-imports and makes them idempotent. message_key groups
-- the blocks of one model response (Claude writes one block per line); its token usage is
-- counted once, on the first block. source_ref is "<cursor id>:<byte offset>".
CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY,
    session_id         INTEGER NOT NULL REFERENCES sessions (id),
    seq                INTEGER NOT NULL,
    at                 TEXT,
    role               TEXT NOT NULL,
    kind               TEXT NOT NULL,
    text               TEXT,
    tool_name          TEXT,
    tool_use_id        TEXT,
    is_error           INTEGER NOT NULL DEFAULT 0,
    model              TEXT,
    message_key        TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    external_id        TEXT NOT NULL,
    parent_external_id TEXT,
    raw                TEXT CHECK (raw IS NULL OR json_valid(raw)),
    source_ref         TEXT,
    UNIQUE (session_id, external_id)
);
CREATE INDEX messages_session_seq ON messages (session_id, seq, id);
CREATE INDEX messages_tool_use ON messages (tool_use_id) WHERE tool_use_id IS NOT NULL;
-- `search --since` with a common word narrows by time here before ranking.
CREATE INDEX messages_at ON messages (at);
-- The first block of a response, whose usage later lines of the response raise.
CREATE INDEX messages_key ON messages (session_id, message_key) WHERE message_key IS NOT NULL;

-- Where each importer stopped in each source file. file_key names the file relative to
-- the tool's own root (never an absolute path). offset counts the bytes (decompressed,
-- for .zst) consumed through the last complete line; head_sha/tail_sha hash the first
-- 4 KiB and the 4 KiB before offset, so a rewritten, truncated or rotated file is noticed
-- and read again from the start (message external ids keep that idempotent). status:
-- 'imported', 'foreign' (belongs to another project), 'error'. state is importer-specific.
CREATE TABLE import_cursors (
    id         INTEGER PRIMARY KEY,
    source     TEXT NOT NULL,
    file_key   TEXT NOT NULL,
    offset     INTEGER NOT NULL DEFAULT 0,
    head_sha   TEXT,
    tail_sha   TEXT,
    size       INTEGER,
    mtime_ns   INTEGER,
    status     TEXT NOT NULL DEFAULT 'imported' CHECK (status IN ('imported', 'foreign', 'error')),
    session_id INTEGER REFERENCES sessions (id),
    state      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(state)),
    updated_at TEXT NOT NULL,
    UNIQUE (source, file_key)
);

-- Full-text indexes (FTS5, external content: the text is stored once, in its table).
-- Triggers keep them in step with every insert, update and delete. prefix='2 3' indexes
-- 2- and 3-character prefixes, which a search box's first keystrokes hit.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text, content = 'messages', content_rowid = 'id',
    prefix = '2 3', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text IS NOT NULL BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text IS NOT NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;
    INSERT INTO messages_fts (rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;
END;

CREATE VIRTUAL TABLE notes_fts USING fts5 (
    body, content = 'notes', content_rowid = 'id',
    prefix = '2 3', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER notes_fts_update AFTER UPDATE OF body ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO notes_fts (rowid, body) VALUES (new.id, new.body);
END;
INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE tasks_fts USING fts5 (
    title, body, content = 'tasks', content_rowid = 'id',
    prefix = '2 3', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER tasks_fts_update AFTER UPDATE OF title, body ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO tasks_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');
"""

IMPORT_TRUTH = """
-- Where a session's title came from, so a later title replaces an older one by one rule
-- (capture.Writer.set_title): 'user' (a name the user gave it) beats 'agent' (the tool's
-- generated title) beats 'summary' (an older version's summary line); among equals the
-- title read last wins. NULL: the first title a hook or `run` reported (any of the three
-- replaces it).
ALTER TABLE sessions ADD COLUMN title_source TEXT
    CHECK (title_source IN ('user', 'agent', 'summary'));

-- A title waiting for its conversation. Claude Code's summary lines name the last message
-- of the conversation they title (leafUuid), which may sit in another file imported
-- later; the title is kept here until that message is imported, then moves to its
-- session and the row is deleted.
CREATE TABLE pending_titles (
    source       TEXT NOT NULL,
    leaf         TEXT NOT NULL,
    title        TEXT NOT NULL,
    title_source TEXT NOT NULL CHECK (title_source IN ('user', 'agent', 'summary')),
    at           TEXT NOT NULL,
    PRIMARY KEY (source, leaf)
) WITHOUT ROWID;
"""

SEARCH_EVERYWHERE = """
-- Search covers what hooks captured and artifact names, and Datasette's search box finds
-- every FTS table: it looks for an FTS5 table whose CREATE statement says
-- content="<table>" (double quotes, no spaces), so the three indexes of schema 3 are
-- recreated in that spelling and refilled from their tables.
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text, content="messages", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE text IS NOT NULL;

DROP TABLE notes_fts;
CREATE VIRTUAL TABLE notes_fts USING fts5 (
    body, content="notes", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');

DROP TABLE tasks_fts;
CREATE VIRTUAL TABLE tasks_fts USING fts5 (
    title, body, content="tasks", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');

-- The searchable text of a hook delivery, computed from its (redacted) payload when read
-- (a VIRTUAL generated column: nothing more is stored): the prompt, the tool's input and
-- response, an error, the assistant's last message, a notification, a compaction summary.
-- NULL when the payload holds none of them (or is NULL: the metadata policy).
ALTER TABLE captures ADD COLUMN search_text TEXT GENERATED ALWAYS AS (nullif(
    coalesce(json_extract(payload, '$.prompt') || char(10), '')
    || coalesce(json_extract(payload, '$.tool_input') || char(10), '')
    || coalesce(json_extract(payload, '$.tool_response') || char(10), '')
    || coalesce(json_extract(payload, '$.error') || char(10), '')
    || coalesce(json_extract(payload, '$.last_assistant_message') || char(10), '')
    || coalesce(json_extract(payload, '$."last-assistant-message"') || char(10), '')
    || coalesce(json_extract(payload, '$."input-messages"') || char(10), '')
    || coalesce(json_extract(payload, '$.compact_summary') || char(10), '')
    || coalesce(json_extract(payload, '$.message') || char(10), ''),
    '')) VIRTUAL;

CREATE VIRTUAL TABLE captures_fts USING fts5 (
    search_text, content="captures", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER captures_fts_insert AFTER INSERT ON captures
WHEN new.search_text IS NOT NULL BEGIN
    INSERT INTO captures_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
CREATE TRIGGER captures_fts_delete AFTER DELETE ON captures
WHEN old.search_text IS NOT NULL BEGIN
    INSERT INTO captures_fts (captures_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
END;
CREATE TRIGGER captures_fts_update AFTER UPDATE OF payload ON captures BEGIN
    INSERT INTO captures_fts (captures_fts, rowid, search_text)
        SELECT 'delete', old.id, old.search_text WHERE old.search_text IS NOT NULL;
    INSERT INTO captures_fts (rowid, search_text)
        SELECT new.id, new.search_text WHERE new.search_text IS NOT NULL;
END;
INSERT INTO captures_fts (rowid, search_text)
    SELECT id, search_text FROM captures WHERE search_text IS NOT NULL;
-- `search --since` narrows the captures index to the ids delivered in the window.
CREATE INDEX captures_at ON captures (at);

CREATE VIRTUAL TABLE artifacts_fts USING fts5 (
    name, content="artifacts", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER artifacts_fts_insert AFTER INSERT ON artifacts WHEN new.name IS NOT NULL BEGIN
    INSERT INTO artifacts_fts (rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER artifacts_fts_delete AFTER DELETE ON artifacts WHEN old.name IS NOT NULL BEGIN
    INSERT INTO artifacts_fts (artifacts_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
CREATE TRIGGER artifacts_fts_update AFTER UPDATE OF name ON artifacts BEGIN
    INSERT INTO artifacts_fts (artifacts_fts, rowid, name)
        SELECT 'delete', old.id, old.name WHERE old.name IS NOT NULL;
    INSERT INTO artifacts_fts (rowid, name) SELECT new.id, new.name WHERE new.name IS NOT NULL;
END;
INSERT INTO artifacts_fts (rowid, name) SELECT id, name FROM artifacts WHERE name IS NOT NULL;

-- When the bytes of a stream were written, where the session's writer switched streams:
-- the bytes of stream_id from offset on were written at t (nanoseconds since the epoch,
-- strictly increasing across the streams of one recorder). `logs` orders the lines of a
-- session's streams by the mark at or before each line's start; a stream with no marks
-- (recorded before schema 4, or imported from a bundle) keeps its own order.
CREATE TABLE stream_marks (
    stream_id INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    offset    INTEGER NOT NULL,
    t         INTEGER NOT NULL,
    PRIMARY KEY (stream_id, offset)
) WITHOUT ROWID;
"""

SESSIONS_BY_AGENT = """
-- An agent's sessions by status: "does this agent still have a running session?" (asked
-- each time one of its sessions ends, lifecycle.agent_settled) and the agent status
-- readers derive from the idle rule are index lookups, not a walk over every running
-- session (which made ending N idle sessions take N x N steps).
CREATE INDEX sessions_agent ON sessions (agent_id, status) WHERE agent_id IS NOT NULL;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline", BASELINE),
    Migration(2, "streams_and_artifacts", STREAMS_AND_ARTIFACTS, incremental_vacuum=True),
    Migration(3, "capture", CAPTURE),
    Migration(4, "import_truth", IMPORT_TRUTH),
    Migration(5, "search_everywhere", SEARCH_EVERYWHERE),
    Migration(6, "sessions_by_agent", SESSIONS_BY_AGENT),
)

# The newest schema this code knows; it is also "this code's version" in the checks.
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class SchemaState:
    schema_version: int
    min_reader_version: int
    min_writer_version: int

    def readable_by(self, code_version: int) -> bool:
        return self.min_reader_version <= code_version

    def writable_by(self, code_version: int) -> bool:
        return self.min_writer_version <= code_version


def read_state(conn: Connection) -> SchemaState | None:
    """The file's schema state, or None for an empty (new) database."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise Corrupt(
                f"{conn.path} has tables but no agentkeep meta table",
                hint="this file is not an agentkeep store; pass the right --store",
            )
        return None
    values = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    try:
        return SchemaState(
            int(values["schema_version"]),
            int(values["min_reader_version"]),
            int(values["min_writer_version"]),
        )
    except (KeyError, ValueError) as exc:
        raise Corrupt(f"{conn.path} has an unreadable meta table ({exc!r})") from exc


def too_new_error(conn: Connection, state: SchemaState, *, for_writing: bool) -> SchemaTooNew:
    action = "write to" if for_writing else "read"
    return SchemaTooNew(
        f"{conn.path} has schema version {state.schema_version}, written by a newer agentkeep; "
        f"this agentkeep (schema {SCHEMA_VERSION}) cannot {action} it",
        hint="upgrade agentkeep (pip install -U agentkeep); the file was not changed",
    )


def check_readable(conn: Connection, state: SchemaState) -> None:
    """Raise SchemaTooNew when this code may not even read the file."""
    if not state.readable_by(SCHEMA_VERSION):
        raise too_new_error(conn, state, for_writing=False)


def split_statements(sql: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT our transaction)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        statements.append(current.strip())
    return statements


def pending(state: SchemaState | None, migrations: Sequence[Migration]) -> list[Migration]:
    current = state.schema_version if state else 0
    return [m for m in migrations if m.version > current]


def migrate(
    conn: Connection,
    *,
    backup_dir: Path | None,
    app_version: str,
    migrations: Sequence[Migration] | None = None,
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns those applied.

    A backup of an existing database is written to ``backup_dir`` first. ``migrations``
    defaults to this module's :data:`MIGRATIONS`, looked up at call time.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    if not pending(read_state(conn), migrations):
        if _vacuum_mode_unfinished(conn, migrations):
            conn.lock_writers()
            try:
                _finish_vacuum_mode(conn, migrations)
            finally:
                conn.unlock_writers()
        return []  # the common case: no lock taken
    # Hold the writer lock across the backup and every step, so a second process opening
    # the same old store waits, then finds nothing left to do (and takes no backup).
    conn.lock_writers()
    try:
        state = read_state(conn)
        todo = pending(state, migrations)
        if not todo:
            return []
        if state is None:
            # An empty file: auto_vacuum can still be chosen without a VACUUM.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        ensure_wal(conn)
        if state is not None and backup_dir is not None:
            backup_to(conn, backup_dir / f"state.db.pre-v{todo[0].version}-{file_stamp()}")
        applied = []
        for migration in todo:
            if _apply_one(conn, migration, app_version):
                applied.append(migration)
        _finish_vacuum_mode(conn, migrations)
        return applied
    finally:
        conn.unlock_writers()


def _vacuum_mode_unfinished(conn: Connection, migrations: Sequence[Migration]) -> bool:
    wanted = any(m.incremental_vacuum for m in migrations)
    return wanted and conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2


def _finish_vacuum_mode(conn: Connection, migrations: Sequence[Migration]) -> None:
    """Apply incremental auto-vacuum to a file that predates it (one full VACUUM)."""
    if not _vacuum_mode_unfinished(conn, migrations):
        return
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("VACUUM")


def _apply_one(conn: Connection, migration: Migration, app_version: str) -> bool:
    if migration.foreign_keys_off:
        conn.execute("PRAGMA foreign_keys=OFF")
    try:
        return _apply_in_transaction(conn, migration, app_version)
    except (SchemaTooNew, Busy):
        raise
    except AgentkeepError as exc:
        raise StorageError(
            f"migration {migration.version} ({migration.name}) failed and was rolled back: "
            f"{exc.message}",
            hint="the store is unchanged; please report this with `agentkeep db status`",
        ) from exc
    finally:
        if migration.foreign_keys_off:
            conn.execute("PRAGMA foreign_keys=ON")


def _apply_in_transaction(conn: Connection, migration: Migration, app_version: str) -> bool:
    with write_transaction(conn):
        # Re-read inside the write lock: another process may have migrated meanwhile.
        state = read_state(conn)
        current = state.schema_version if state else 0
        if current >= migration.version:
            return False
        if current != migration.version - 1:
            raise Corrupt(f"{conn.path} is at schema {current}; cannot apply {migration.version}")
        failpoint("migrate:begin")
        for statement in split_statements(migration.sql):
            conn.execute(statement)
            failpoint("migrate:statement")
        if migration.foreign_keys_off:
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise Corrupt(f"the migration left {len(broken)} dangling reference(s)")
        now = utc_now()
        rows = {
            "schema_version": str(migration.version),
            "min_reader_version": str(migration.min_reader_version),
            "min_writer_version": str(migration.min_writer_version),
            f"migration.{migration.version}": f"{migration.name} applied {now} by {app_version}",
        }
        if state is None:
            rows["created_at"] = now
            rows["created_by"] = app_version
        conn.raw.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(rows.items()),
        )
        failpoint("migrate:before_commit")
    failpoint("migrate:after_commit")
    return True
