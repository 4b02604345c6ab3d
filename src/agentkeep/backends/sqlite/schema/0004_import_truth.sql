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
