-- Live followers on PostgreSQL (backends/postgres/follow.py): a watcher LISTENs on its
-- store's channel and these triggers wake it. SQLite needs none of this (its watcher polls
-- PRAGMA data_version, which changes with every commit of another connection).
--
-- The notification is a wake-up, never the data: its payload is empty, and the follower
-- reads `seq > last` after it. Statement-level triggers send at most one per statement, and
-- PostgreSQL folds identical notifies of one transaction into one, so a transaction that
-- writes a thousand events sends one notification, delivered when (and only if) it commits.
--
-- The channel is per store schema, so one database can hold several stores:
-- 'agentkeep_events_' || schema, or the schema's md5 in its place when that would pass the
-- 63-byte limit on identifiers (follow.channel_for computes the same name). The schema is
-- the trigger's table's, read when the trigger fires: it needs no search_path and follows a
-- renamed schema.
CREATE FUNCTION agentkeep_notify_followers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel text := 'agentkeep_events_' || TG_TABLE_SCHEMA;
BEGIN
    IF octet_length(channel) > 63 THEN
        channel := 'agentkeep_events_' || md5(TG_TABLE_SCHEMA);
    END IF;
    PERFORM pg_notify(channel, '');
    RETURN NULL;
END
$$;

-- `events -f`, Store.follow() and the server's event stream read new events.
CREATE TRIGGER events_notify_followers AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION agentkeep_notify_followers();

-- `logs -f` and the server's log stream read a live stream's bytes once their length is
-- committed (StreamService.record_progress updates the row without adding an event).
CREATE TRIGGER streams_notify_followers AFTER INSERT OR UPDATE ON streams
    FOR EACH STATEMENT EXECUTE FUNCTION agentkeep_notify_followers();
