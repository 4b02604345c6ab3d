-- Functions the portable SQL reaches through the dialect (backends/postgres/dialect.py).
-- They run before the baseline's tables, in the store's schema (search_path).

-- SQLite's scalar max()/min(): NULL when any argument is NULL (GREATEST/LEAST skip NULLs).
CREATE OR REPLACE FUNCTION agentkeep_max(VARIADIC args anycompatiblearray)
RETURNS anycompatible LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN array_position(args, NULL) IS NOT NULL THEN NULL
                ELSE (SELECT max(a) FROM unnest(args) AS a) END
$$;

CREATE OR REPLACE FUNCTION agentkeep_min(VARIADIC args anycompatiblearray)
RETURNS anycompatible LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN array_position(args, NULL) IS NOT NULL THEN NULL
                ELSE (SELECT min(a) FROM unnest(args) AS a) END
$$;

-- agentkeep_is_json(text), SQLite's json_valid(), is in 0001_baseline.sql (its CHECKs use it).

-- SQLite's json_extract(doc, '$.a.b') as text: NULL for a missing key or text that is not
-- JSON (json_extract would raise on the latter; callers guard with is_json anyway).
CREATE OR REPLACE FUNCTION agentkeep_json_get(doc text, path text[])
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN doc::jsonb #>> path;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
    RETURN NULL;
END
$$;

-- SQLite's json_array_length(doc, '$."key"'): 0 for a value that is not an array, NULL for
-- a missing key or text that is not JSON.
CREATE OR REPLACE FUNCTION agentkeep_json_array_length(doc text, key text)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    value jsonb;
BEGIN
    value := doc::jsonb -> key;
    IF value IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN CASE WHEN jsonb_typeof(value) = 'array' THEN jsonb_array_length(value) ELSE 0 END;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
    RETURN NULL;
END
$$;
