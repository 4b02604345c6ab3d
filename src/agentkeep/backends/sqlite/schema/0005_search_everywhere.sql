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
