-- The rows of each table `status` counts, kept in the transaction that adds or deletes
-- them: `status` reads a few rows instead of counting every event, session and metric
-- (a count reads a whole index: 1 s cold on a store with millions of events). One UPDATE
-- of a row on one page per inserted row; bench/bench_store.py measures it on the append
-- path. A migration that rebuilds one of these tables (create, copy, drop, rename) must
-- create its two triggers again and recount it.
CREATE TABLE row_counts (
    name TEXT PRIMARY KEY,  -- the table
    n    INTEGER NOT NULL   -- its rows
) WITHOUT ROWID;
-- Tasks are also counted by status ('tasks.open', …): `status` shows them per status.
CREATE TRIGGER tasks_counted AFTER INSERT ON tasks BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name IN ('tasks', 'tasks.' || new.status);
END;
CREATE TRIGGER tasks_uncounted AFTER DELETE ON tasks BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name IN ('tasks', 'tasks.' || old.status);
END;
CREATE TRIGGER tasks_recounted AFTER UPDATE OF status ON tasks
WHEN old.status != new.status BEGIN
    UPDATE row_counts SET n = n + (CASE name WHEN 'tasks.' || new.status THEN 1 ELSE -1 END)
        WHERE name IN ('tasks.' || old.status, 'tasks.' || new.status);
END;
CREATE TRIGGER notes_counted AFTER INSERT ON notes BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'notes';
END;
CREATE TRIGGER notes_uncounted AFTER DELETE ON notes BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'notes';
END;
CREATE TRIGGER sessions_counted AFTER INSERT ON sessions BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'sessions';
END;
CREATE TRIGGER sessions_uncounted AFTER DELETE ON sessions BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'sessions';
END;
CREATE TRIGGER agents_counted AFTER INSERT ON agents BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'agents';
END;
CREATE TRIGGER agents_uncounted AFTER DELETE ON agents BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'agents';
END;
CREATE TRIGGER worktrees_counted AFTER INSERT ON worktrees BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'worktrees';
END;
CREATE TRIGGER worktrees_uncounted AFTER DELETE ON worktrees BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'worktrees';
END;
CREATE TRIGGER metrics_counted AFTER INSERT ON metrics BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'metrics';
END;
CREATE TRIGGER metrics_uncounted AFTER DELETE ON metrics BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'metrics';
END;
CREATE TRIGGER integrations_counted AFTER INSERT ON integrations BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'integrations';
END;
CREATE TRIGGER integrations_uncounted AFTER DELETE ON integrations BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'integrations';
END;
CREATE TRIGGER events_counted AFTER INSERT ON events BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'events';
END;
CREATE TRIGGER events_uncounted AFTER DELETE ON events BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'events';
END;
CREATE TRIGGER redactions_counted AFTER INSERT ON redactions BEGIN
    UPDATE row_counts SET n = n + 1 WHERE name = 'redactions';
END;
CREATE TRIGGER redactions_uncounted AFTER DELETE ON redactions BEGIN
    UPDATE row_counts SET n = n - 1 WHERE name = 'redactions';
END;
INSERT INTO row_counts (name, n) SELECT 'tasks', count(*) FROM tasks;
INSERT INTO row_counts (name, n) SELECT 'notes', count(*) FROM notes;
INSERT INTO row_counts (name, n) SELECT 'sessions', count(*) FROM sessions;
INSERT INTO row_counts (name, n) SELECT 'agents', count(*) FROM agents;
INSERT INTO row_counts (name, n) SELECT 'worktrees', count(*) FROM worktrees;
INSERT INTO row_counts (name, n) SELECT 'metrics', count(*) FROM metrics;
INSERT INTO row_counts (name, n) SELECT 'integrations', count(*) FROM integrations;
INSERT INTO row_counts (name, n) SELECT 'events', count(*) FROM events;
INSERT INTO row_counts (name, n) SELECT 'redactions', count(*) FROM redactions;
INSERT INTO row_counts (name, n)
    SELECT 'tasks.' || s.status, (SELECT count(*) FROM tasks WHERE tasks.status = s.status)
    FROM (SELECT 'open' AS status UNION ALL SELECT 'in_progress' UNION ALL SELECT 'blocked'
          UNION ALL SELECT 'done' UNION ALL SELECT 'cancelled') AS s;
-- `events list --since`: the first event at or after a time is a seek, so listing the
-- recent events of a long history reads those events, not the history (`at` is stamped
-- inside the write lock, so it follows seq).
CREATE INDEX events_at ON events (at);
-- `tasks list` without a status filter (ordered by priority, id): the first page is read
-- from the index instead of sorting every task ever created.
CREATE INDEX tasks_priority ON tasks (priority, id);
-- `status`'s active agents: every session brings an agent, so the agents table grows with
-- history; the active ones are a seek.
CREATE INDEX agents_status ON agents (status);
-- `prime`'s failed tool calls of the last day (hook deliveries of event 'tool_fail'):
-- a seek to the day's failures, not a walk over every failure ever delivered.
CREATE INDEX captures_event_at ON captures (event, at);
