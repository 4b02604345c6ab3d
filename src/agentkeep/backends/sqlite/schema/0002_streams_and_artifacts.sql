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
