-- Shared bytes (backends/postgres/blobs.py): the files of sealed streams and artifact
-- objects, as stored on the machine that wrote them (zstd), so that every machine of the
-- store can read them. Written in the transaction of the row that refers to them; a
-- machine without the file fetches it into its own .agentkeep/ and reads it from there.

-- One stored file. ``name`` is content-addressed: 'objects/<sha256>[.zst]' or
-- 'streams/<sha256>.zst' (the row's sha256, of the uncompressed bytes), so two machines
-- storing the same bytes store them once. ``sha256`` is of the stored bytes: every fetch
-- checks it, which is how a damaged chunk is caught.
CREATE TABLE blobs (
    name       TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    chunks     BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

-- Its bytes in chunks of 1 MiB (numbered from 0): a fetch holds one batch in memory, and
-- no value comes near bytea's 1 GB limit. The bytes are compressed already, so TOAST
-- stores them out of line without trying to compress them again (STORAGE EXTERNAL).
CREATE TABLE blob_chunks (
    name TEXT NOT NULL REFERENCES blobs (name) ON DELETE CASCADE,
    n    BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (name, n)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
