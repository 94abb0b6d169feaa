-- Pairs of contacts the probabilistic matcher placed between its two
-- thresholds: a person decides. Score and per-field evidence are kept so the
-- reviewer sees why.
CREATE TABLE match_review (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    left_id     TEXT NOT NULL,
    right_id    TEXT NOT NULL,
    score       REAL NOT NULL,
    probability REAL NOT NULL,
    evidence    TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',
    created_at  TEXT NOT NULL,
    decided_at  TEXT,
    UNIQUE (left_id, right_id)
);
CREATE INDEX match_review_status ON match_review (status, id);
