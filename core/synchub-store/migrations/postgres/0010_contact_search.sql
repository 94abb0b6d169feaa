-- Contact search that scales (issue 19, the ops console): a name in any
-- script, whole or in part, on a store of a million contacts, without
-- reading every document. Emails and phones are already found through
-- match_key's primary key (`email:…`, `phone:+886…`).
--
-- The searched text of a live contact: its name forms (as written, given
-- then family, family then given with and without a space, the full name
-- without spaces) and its primary email, lower case, one line per form.
-- Two indexes over it:
-- * pg_trgm (GIN, gin_trgm_ops) for substrings of three characters or more;
-- * the characters outside ASCII and each pair of them that stand side by
--   side (GIN over a text[]), for a Chinese, Japanese or Korean name or
--   part of one: `陳` or `大文` have no trigram, but their unigrams and
--   bigrams are exact keys. A candidate is always checked again with LIKE.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION synchub_contact_search_text(doc text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT lower(concat_ws(E'\n',
        d ->> 'full_name',
        replace(d ->> 'full_name', ' ', ''),
        NULLIF(trim(COALESCE(d ->> 'given_name', '') || ' ' || COALESCE(d ->> 'family_name', '')), ''),
        NULLIF(trim(COALESCE(d ->> 'family_name', '') || ' ' || COALESCE(d ->> 'given_name', '')), ''),
        NULLIF(COALESCE(d ->> 'family_name', '') || COALESCE(d ->> 'given_name', ''), ''),
        d -> 'emails' ->> 0))
    FROM (SELECT doc::jsonb AS d) AS s
$$;

CREATE FUNCTION synchub_search_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT COALESCE(array_agg(DISTINCT g), '{}'::text[]) FROM (
        SELECT substr(t, i, 1) AS g FROM generate_series(1, length(t)) AS i
        WHERE ascii(substr(t, i, 1)) > 127
        UNION ALL
        SELECT substr(t, i, 2) FROM generate_series(1, length(t) - 1) AS i
        WHERE ascii(substr(t, i, 1)) > 127 AND ascii(substr(t, i + 1, 1)) > 127
    ) AS grams
$$;

CREATE INDEX crm_contact_search_trgm ON crm_record
    USING gin (synchub_contact_search_text(data) gin_trgm_ops)
    WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL;
CREATE INDEX crm_contact_search_grams ON crm_record
    USING gin (synchub_search_grams(synchub_contact_search_text(data)))
    WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL;
