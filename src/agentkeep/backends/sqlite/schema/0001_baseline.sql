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
