-- Transcript messages are indexed for search after they are stored, not row by row inside
-- the import: FTS5 fed one row per trigger call costs an import ~6× what one INSERT …
-- SELECT of the same rows costs afterwards (bench/bench_import.py). `search_index` holds
-- the watermark: every message whose id is at or below `indexed_to` is in messages_fts,
-- none above it is. A catch-up (backends/sqlite/search.py) indexes the rows above it and
-- moves it, 5,000 rows a write transaction (writers never wait for the index of a whole
-- large import): at the end of each import run (each pass of
-- `import --watch`) and before a search on a writable store. A search that cannot write (a
-- read-only store) searches the rows above the watermark directly, so none is missed.
CREATE TABLE search_index (
    name       TEXT PRIMARY KEY,  -- the indexed table ('messages')
    indexed_to INTEGER NOT NULL   -- its highest id the full-text index is complete up to
) WITHOUT ROWID;
-- Everything already stored is already indexed (the triggers of schema 5 kept it).
INSERT INTO search_index (name, indexed_to)
    SELECT 'messages', coalesce(max(id), 0) FROM messages;

-- The triggers now keep only the indexed part in step. A row inserted at or below the
-- watermark (an id freed by deleting the newest row, reused by SQLite) is indexed at
-- once; above it, the catch-up indexes it. Deleting or rewriting (redaction) a row above
-- the watermark touches nothing: it is not in the index yet, and an FTS5 'delete' of a
-- row that is not there would corrupt it.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.text IS NOT NULL
    AND new.id <= (SELECT indexed_to FROM search_index WHERE name = 'messages') BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.text IS NOT NULL
    AND old.id <= (SELECT indexed_to FROM search_index WHERE name = 'messages') BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.id <= (SELECT indexed_to FROM search_index WHERE name = 'messages') BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;
    INSERT INTO messages_fts (rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;
END;
