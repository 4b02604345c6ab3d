-- Documents (issue 13): files are the truth, these tables only index them. Every table
-- here but doc_versions and doc_locks is derived: `agentkeep doc reindex --rebuild`
-- (services/docs.py) empties and refills it from the files alone, and `doctor` compares
-- it with the files. A document is one file under a root: `.agentkeep/docs/<namespace>/…`
-- (written through agentkeep), a project directory named in the `docs.roots` setting, or
-- a spec file found by its layout (spec-kit, Kiro, Agent OS, OpenSpec, ADRs, AGENTS.md).

-- One row per indexed file. `etag` is the sha256 of the file's bytes as read: a write
-- through agentkeep names the etag it started from, and a different one is a conflict.
-- `size` and `mtime_ns` make the rescan cheap: a file whose size and mtime are unchanged
-- is not read again. `fields` is the front matter (a JSON document's object), redacted;
-- `problems` what indexing or validation found wrong (a bad front matter, a schema
-- violation), shown by `doc validate` and `doctor`.
CREATE TABLE docs (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,    -- relative to the project root, '/'-separated
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,           -- the path inside its namespace, without extension
    origin     TEXT NOT NULL CHECK (origin IN ('store', 'project', 'spec')),
    format     TEXT NOT NULL CHECK (format IN ('markdown', 'json', 'text')),
    type       TEXT,                    -- the front matter's `type` (a schema of the namespace)
    title      TEXT,
    convention TEXT,                    -- the spec layout it was found by, if any
    fields     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(fields)),
    tags       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    problems   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(problems)),
    etag       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    updated_at TEXT NOT NULL,           -- the file's modification time
    indexed_at TEXT NOT NULL,
    UNIQUE (namespace, name)
);
CREATE INDEX docs_type ON docs (namespace, type);

-- Links: `links:` in the front matter (relation → targets) and `[[target]]` in the text
-- (relation 'links_to'). A target is a reference as written (`namespace/name` or a path);
-- it is resolved when read, so a link may name a document that does not exist yet.
CREATE TABLE doc_links (
    doc_id   INTEGER NOT NULL REFERENCES docs (id) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    target   TEXT NOT NULL,
    PRIMARY KEY (doc_id, relation, target)
);
CREATE INDEX doc_links_target ON doc_links (target);

-- A document's text cut at its headings (a JSON document is one chunk): what search and
-- `agentkeep context` rank. `heading` is the section's heading path ("Design › Storage").
CREATE TABLE doc_chunks (
    id         INTEGER PRIMARY KEY,
    doc_id     INTEGER NOT NULL REFERENCES docs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    heading    TEXT NOT NULL DEFAULT '',
    level      INTEGER NOT NULL DEFAULT 0,
    text       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (doc_id, position)
);
CREATE VIRTUAL TABLE doc_chunks_fts USING fts5 (
    heading, text, content="doc_chunks", content_rowid="id",
    prefix='2 3', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER doc_chunks_fts_insert AFTER INSERT ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts (rowid, heading, text) VALUES (new.id, new.heading, new.text);
END;
CREATE TRIGGER doc_chunks_fts_delete AFTER DELETE ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, heading, text)
        VALUES ('delete', old.id, old.heading, old.text);
END;
CREATE TRIGGER doc_chunks_fts_update AFTER UPDATE OF heading, text ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, heading, text)
        VALUES ('delete', old.id, old.heading, old.text);
    INSERT INTO doc_chunks_fts (rowid, heading, text) VALUES (new.id, new.heading, new.text);
END;

-- Optional semantic ranking (semantic.py): one vector per chunk for the configured model,
-- derived like the chunks (deleted with them, recomputed when missing).
CREATE TABLE doc_vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES doc_chunks (id) ON DELETE CASCADE,
    model    TEXT NOT NULL,
    vector   BLOB NOT NULL
);

-- History, not index: every content a write through agentkeep gave a document (and the
-- outside content it replaced), as a content-addressed object. Kept when the document is
-- deleted: `doc restore` brings any version back. gc never deletes an object a version
-- refers to.
CREATE TABLE doc_versions (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL,
    sha256     TEXT REFERENCES objects (sha256),  -- NULL: the document was deleted
    etag       TEXT,                               -- the file's sha256 after the change
    size       INTEGER NOT NULL DEFAULT 0,
    change     TEXT NOT NULL
               CHECK (change IN ('created', 'edited', 'outside', 'deleted', 'restored')),
    actor      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX doc_versions_path ON doc_versions (path, id);
CREATE INDEX doc_versions_sha256 ON doc_versions (sha256) WHERE sha256 IS NOT NULL;

-- Advisory locks on documents, with leases. The holder is "host:pid:start" (the process's
-- start time, so a reused pid is not the holder); a lock of a dead process on this host is
-- taken over at once, one on another host when its lease expired. Never judged by mtime.
CREATE TABLE doc_locks (
    path        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    owner       TEXT NOT NULL,   -- the actor who took it
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- Messages' delivery state per recipient, derived from the mail directories
-- (services/messages.py): 'delivered', then 'read', then 'acked'.
CREATE TABLE deliveries (
    message   TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state     TEXT NOT NULL CHECK (state IN ('delivered', 'read', 'acked')),
    at        TEXT NOT NULL,
    PRIMARY KEY (message, recipient)
);
CREATE INDEX deliveries_recipient ON deliveries (recipient, state);
