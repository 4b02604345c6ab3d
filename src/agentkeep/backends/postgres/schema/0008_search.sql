-- Full-text search on PostgreSQL (backends/postgres/search.py). Each indexed table <t> has a
-- side table <t>_fts (id, words): the row's searchable text as a tsvector, kept by a trigger
-- on <t> in the same transaction as the row, so a search sees every row committed before it
-- began (nothing is indexed later, unlike SQLite's messages). A side table rather than a
-- column on <t>: `SELECT *`, copies and bundles of <t> never carry the vectors, and the
-- newest-first walk a broad search does (search.py) reads only narrow rows.
--
-- The words. agentkeep_search_words() turns text into the project's tokens (runs of
-- letters and digits), folded: decomposed (NFD) and stripped of combining diacritical
-- marks, lower-cased, everything else a space. to_tsvector('simple', …) then sees exactly
-- those tokens (the default parser alone would keep an e-mail address, a URL, a path or
-- a version number as one token, and 'simple' neither stems nor drops stop words). A
-- query's terms go through the same function (agentkeep_search_term), so documents and
-- queries are folded alike whatever the database's locale. Letters outside ASCII are
-- letters only where the database's LC_CTYPE says so (C.UTF-8, en_US.UTF-8, ICU): in a
-- plain "C" database they separate words. normalize() needs a UTF-8 database.

CREATE FUNCTION agentkeep_search_words(doc text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(regexp_replace(regexp_replace(normalize(doc, NFD),
        '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+', '', 'g'),
        '[^[:alnum:]]+', ' ', 'g'))
$$;

-- A tsvector holds at most 1 MB and a lexeme at most 2,047 bytes. A longer word (a base64
-- blob) is left out of the index (PostgreSQL skips it, with a NOTICE the SET silences);
-- a text whose vector would pass 1 MB (several hundred KB of distinct words) is indexed
-- from its beginning, as much as fits. Positions past 16,383 are all 16,383, so a phrase
-- deeper than that in a very long text is not found (its words still are).
CREATE FUNCTION agentkeep_search_vector(doc text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET client_min_messages = warning AS $$
DECLARE
    size integer := length(doc);
BEGIN
    IF octet_length(doc) <= 262144 THEN
        RETURN to_tsvector('simple', agentkeep_search_words(doc));
    END IF;
    LOOP
        BEGIN
            RETURN to_tsvector('simple', agentkeep_search_words(left(doc, size)));
        EXCEPTION WHEN program_limit_exceeded THEN
            size := size / 2;
        END;
    END LOOP;
END
$$;

-- One query term (its words, space-separated, as parsed by the search service) as tsquery
-- text: its tokens in order ('a' <-> 'b'), the last one a prefix (:*) when asked. NULL
-- when it can match nothing: no token left after folding, or a token longer than any
-- indexed word (PostgreSQL would drop it from the phrase and match more, not less).
CREATE FUNCTION agentkeep_search_term(term text, prefix boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET client_min_messages = warning AS $$
DECLARE
    words text := btrim(agentkeep_search_words(term));
BEGIN
    IF words = '' OR EXISTS (
        SELECT 1 FROM regexp_split_to_table(words, ' ') AS word WHERE octet_length(word) > 2047
    ) THEN
        RETURN NULL;
    END IF;
    RETURN phraseto_tsquery('simple', words)::text || CASE WHEN prefix THEN ':*' ELSE '' END;
END
$$;

-- A task's title (weight A) and body (weight B): search.py ranks A twice B, and keeps a
-- phrase within one of them.
CREATE FUNCTION agentkeep_task_vector(title text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(coalesce(agentkeep_search_vector(title), ''), 'A')
        || setweight(coalesce(agentkeep_search_vector(body), ''), 'B')
$$;

-- The side tables: one row per indexed row whose text is not NULL (an empty vector for a
-- text without a word), so `db check` counts a gap with two count(*)s. No foreign key:
-- the triggers delete with the row.
--
-- Vectors are stored uncompressed and in the row up to a full page (STORAGE EXTERNAL,
-- toast_tuple_target 8160; out of line, still uncompressed, beyond that). With the
-- defaults a row past 2 kB is compressed, and a search reads every match's vector: the
-- long texts, which hold most words, cost ~10 µs each to decompress, 3-4× the rest
-- (bench/README.md). Vectors barely compress anyway (lexemes and positions).
CREATE TABLE messages_fts (id BIGINT PRIMARY KEY, words tsvector NOT NULL)
    WITH (toast_tuple_target = 8160);
CREATE TABLE notes_fts (id BIGINT PRIMARY KEY, words tsvector NOT NULL)
    WITH (toast_tuple_target = 8160);
CREATE TABLE tasks_fts (id BIGINT PRIMARY KEY, words tsvector NOT NULL)
    WITH (toast_tuple_target = 8160);
CREATE TABLE captures_fts (id BIGINT PRIMARY KEY, words tsvector NOT NULL)
    WITH (toast_tuple_target = 8160);
CREATE TABLE artifacts_fts (id BIGINT PRIMARY KEY, words tsvector NOT NULL)
    WITH (toast_tuple_target = 8160);
ALTER TABLE messages_fts ALTER COLUMN words SET STORAGE EXTERNAL;
ALTER TABLE notes_fts ALTER COLUMN words SET STORAGE EXTERNAL;
ALTER TABLE tasks_fts ALTER COLUMN words SET STORAGE EXTERNAL;
ALTER TABLE captures_fts ALTER COLUMN words SET STORAGE EXTERNAL;
ALTER TABLE artifacts_fts ALTER COLUMN words SET STORAGE EXTERNAL;
CREATE INDEX messages_fts_words ON messages_fts USING gin (words);
CREATE INDEX notes_fts_words ON notes_fts USING gin (words);
CREATE INDEX tasks_fts_words ON tasks_fts USING gin (words);
CREATE INDEX captures_fts_words ON captures_fts USING gin (words);
CREATE INDEX artifacts_fts_words ON artifacts_fts USING gin (words);

-- The triggers. An update rewrites the vector only when the indexed text changed (a
-- redaction does; a message's token counts do not). As the baseline's, the functions keep
-- the search_path they were created with, so they find this schema's tables and functions
-- in a session with another one (pg_restore). A capture is indexed by its search_text
-- (the baseline's generated column: SQLite's, stored).
CREATE FUNCTION agentkeep_messages_fts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.text IS NOT DISTINCT FROM OLD.text THEN
            RETURN NULL;
        END IF;
        DELETE FROM messages_fts WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.text IS NOT NULL THEN
        INSERT INTO messages_fts (id, words) VALUES (NEW.id, agentkeep_search_vector(NEW.text));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_fts AFTER INSERT OR UPDATE OF id, text OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION agentkeep_messages_fts();

CREATE FUNCTION agentkeep_notes_fts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.body IS NOT DISTINCT FROM OLD.body THEN
            RETURN NULL;
        END IF;
        DELETE FROM notes_fts WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.body IS NOT NULL THEN
        INSERT INTO notes_fts (id, words) VALUES (NEW.id, agentkeep_search_vector(NEW.body));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notes_fts AFTER INSERT OR UPDATE OF id, body OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION agentkeep_notes_fts();

CREATE FUNCTION agentkeep_tasks_fts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.title IS NOT DISTINCT FROM OLD.title
            AND NEW.body IS NOT DISTINCT FROM OLD.body THEN
            RETURN NULL;
        END IF;
        DELETE FROM tasks_fts WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO tasks_fts (id, words)
            VALUES (NEW.id, agentkeep_task_vector(NEW.title, NEW.body));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_fts AFTER INSERT OR UPDATE OF id, title, body OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION agentkeep_tasks_fts();

CREATE FUNCTION agentkeep_captures_fts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id
            AND NEW.payload IS NOT DISTINCT FROM OLD.payload THEN
            RETURN NULL;
        END IF;
        DELETE FROM captures_fts WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.search_text IS NOT NULL THEN
            INSERT INTO captures_fts (id, words)
                VALUES (NEW.id, agentkeep_search_vector(NEW.search_text));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER captures_fts AFTER INSERT OR UPDATE OF id, payload OR DELETE ON captures
    FOR EACH ROW EXECUTE FUNCTION agentkeep_captures_fts();

CREATE FUNCTION agentkeep_artifacts_fts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.name IS NOT DISTINCT FROM OLD.name THEN
            RETURN NULL;
        END IF;
        DELETE FROM artifacts_fts WHERE id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.name IS NOT NULL THEN
        INSERT INTO artifacts_fts (id, words) VALUES (NEW.id, agentkeep_search_vector(NEW.name));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER artifacts_fts AFTER INSERT OR UPDATE OF id, name OR DELETE ON artifacts
    FOR EACH ROW EXECUTE FUNCTION agentkeep_artifacts_fts();

-- Rows stored before this step (none on a new store).
INSERT INTO messages_fts (id, words)
    SELECT id, agentkeep_search_vector(text) FROM messages WHERE text IS NOT NULL;
INSERT INTO notes_fts (id, words) SELECT id, agentkeep_search_vector(body) FROM notes;
INSERT INTO tasks_fts (id, words) SELECT id, agentkeep_task_vector(title, body) FROM tasks;
INSERT INTO captures_fts (id, words)
    SELECT id, agentkeep_search_vector(search_text) FROM captures
    WHERE search_text IS NOT NULL;
INSERT INTO artifacts_fts (id, words)
    SELECT id, agentkeep_search_vector(name) FROM artifacts WHERE name IS NOT NULL;
