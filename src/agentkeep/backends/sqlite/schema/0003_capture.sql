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
