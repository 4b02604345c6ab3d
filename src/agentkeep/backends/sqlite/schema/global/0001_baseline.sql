-- Projects whose store this user has initialised or opened. root is absolute.
CREATE TABLE projects (
    root          TEXT PRIMARY KEY,
    uid           TEXT NOT NULL,
    name          TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
