-- The probabilistic matching pass after a migration, made crash-safe: its
-- decisions (merges in order, the review queue) are stored before any is
-- applied, then applied in committed batches; `applied` is the pass's own
-- cursor, moved in the transaction of the merges it counts. A pass killed
-- half-way is finished from that cursor, never decided again on a store it
-- has half merged.
CREATE TABLE match_pass (
    name            TEXT PRIMARY KEY,
    mark            TEXT NOT NULL,
    contacts        BIGINT NOT NULL,
    candidate_pairs BIGINT NOT NULL,
    steps           BIGINT NOT NULL,
    applied         BIGINT NOT NULL,
    reviews         TEXT NOT NULL,
    queued          BIGINT,
    created_at      TEXT NOT NULL,
    finished_at     TEXT
);

CREATE TABLE match_pass_step (
    name     TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    survivor TEXT NOT NULL,
    loser    TEXT NOT NULL,
    evidence TEXT NOT NULL,
    PRIMARY KEY (name, seq)
);
