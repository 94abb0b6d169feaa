-- Contact search that scales (issue 19): PostgreSQL gets trigram and
-- CJK-gram indexes over the contacts' name forms in its 0010. SQLite, the
-- embedded store of one installation, has neither pg_trgm nor GIN: a name
-- search there reads the live contacts, which this partial index lists
-- without touching the other records.
CREATE INDEX crm_contact_live ON crm_record (id)
    WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL;
