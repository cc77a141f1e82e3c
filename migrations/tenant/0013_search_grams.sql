-- Search for what word search cannot find (issue 11; ADR 0008, amendment of 2026-12-02): CJK
-- text, which has no spaces (`東京` in `東京タワーに行きました`), and the inner parts of
-- identifiers, paths and addresses (`palaver-42` in `err-palaver-42x`, `10.1.2` in
-- `10.1.2.33`). PostgreSQL's parser keeps a run of CJK characters as one word, and a version
-- number or a hyphenated word as one lexeme, so `tsv` cannot match inside them. pg_trgm cannot
-- either: in the C locale of these databases it drops every non-ASCII character
-- (show_trgm('東京タワー') is empty), and a two-character term, the common Chinese word, has
-- no trigram at all.
--
-- `grams` holds the text's "segments": maximal runs of CJK characters and of ASCII letters and
-- digits, where runs of letters and digits may be joined by `-` `.` `_` `/` `:` `@`. Only
-- segments with a CJK character or a joiner are kept (plain words are `tsv`'s). A segment's
-- lexemes are, in order, at consecutive positions: each letter-and-digit run lowercased, and
-- for a CJK run every two adjacent characters (a bigram) and its last character alone. So a
-- query is a phrase of the same lexemes: `東京` is the bigram `東京`, `京タワ` is
-- `京タ <-> タワ`, a single `京` is the prefix `京:*` (a bigram starting with it, or the run's
-- last character), `user_id` is `user <-> id:*`. Segments are one position apart, so a phrase
-- never runs from one segment into the next. domain::search_query builds the queries: its
-- segmentation must stay the same as this function's.
--
-- The letters and digits are ASCII and the CJK blocks are code point ranges, on purpose: the
-- result must not depend on the database's locale (regex classes and lower() do).
CREATE FUNCTION search_grams(body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    seg text; run text; i int; pos int := 0; out text[] := '{}';
BEGIN
    -- Most messages have no such segment: this test is cheap (about 2 µs), the lexemes are not
    -- (about 100 µs on the 2-core bench machine).
    IF body !~ '[\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]|[A-Za-z0-9][-._/:@]+[A-Za-z0-9]' THEN
        RETURN ''::tsvector;
    END IF;
    -- The segments; `pos` counts one for each (kept or not), so that consecutive segments are
    -- never adjacent.
    FOR seg IN SELECT m[1] FROM regexp_matches(body, '(?:[\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]|[A-Za-z0-9]+(?:[-._/:@]+[A-Za-z0-9]+)*)+', 'g') AS m LOOP
        pos := pos + 1;
        -- A plain word is tsv's.
        CONTINUE WHEN seg !~ '[^A-Za-z0-9]';
        FOR run IN SELECT m[1] FROM regexp_matches(seg, '[A-Za-z0-9]+|[^-._/:@A-Za-z0-9]+', 'g') AS m LOOP
            IF run ~ '^[A-Za-z0-9]' THEN
                pos := pos + 1;
                out := out || ('''' || lower(run) || ''':' || least(pos, 16383));
            ELSE
                -- A CJK run: its bigrams, and its last character alone.
                FOR i IN 1..length(run) LOOP
                    pos := pos + 1;
                    out := out || ('''' || substr(run, i, 2) || ''':' || least(pos, 16383));
                END LOOP;
            END IF;
        END LOOP;
    END LOOP;
    RETURN array_to_string(out, ' ')::tsvector;
END
$fn$;


-- Stored, so that a search reads the lexemes instead of computing them for every row it
-- checks. Adding it rewrites the table and rebuilds its indexes: on 5M messages 4.3 min (with
-- a trigram index that was being measured, 87 s of it), during which the indexer and searches
-- of this workspace wait; sending does not (ADR 0008).
ALTER TABLE search_docs ADD COLUMN grams tsvector GENERATED ALWAYS AS (search_grams(body)) STORED;
CREATE INDEX search_docs_grams ON search_docs USING gin (grams) WHERE NOT deleted;
-- As for `tsv` (migration 0011): the rare-term plan (store::search) tells rare lexemes by
-- the column's 10,000 most common elements.
ALTER TABLE search_docs ALTER COLUMN grams SET STATISTICS 1000;
