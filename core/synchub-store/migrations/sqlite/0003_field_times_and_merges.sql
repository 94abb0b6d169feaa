-- Per-field change times of CRM records (the source time of the edit that
-- set each field; the "newest" merge rule compares these), and the history
-- of contact merges with everything an unmerge needs to restore.
ALTER TABLE crm_record ADD COLUMN field_times TEXT;

CREATE TABLE contact_merge (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    survivor        TEXT NOT NULL,
    loser           TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    survivor_before TEXT NOT NULL,
    loser_before    TEXT NOT NULL,
    links_before    TEXT NOT NULL,
    merged_at       TEXT NOT NULL,
    undone_at       TEXT
);
CREATE INDEX contact_merge_survivor ON contact_merge (survivor);
CREATE INDEX contact_merge_loser ON contact_merge (loser);
