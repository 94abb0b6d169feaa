-- One process at a time per stream. A run of (pipeline, connection, object)
-- holds the stream's lease row; `token` only ever grows (a takeover adds one
-- and a release keeps the row), and every page commit checks it in its own
-- transaction, so a holder that lost the lease cannot commit a page. A
-- lease whose `expires_at` has passed (its holder died or stalled) may be
-- taken over. Times are the fixed-width UTC text of every other column, so
-- they compare as text.
CREATE TABLE stream_lease (
    pipeline    TEXT NOT NULL,
    connection  TEXT NOT NULL,
    object      TEXT NOT NULL,
    holder      TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    token       BIGINT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (pipeline, connection, object)
);

-- Outbox rows are claimed before a push, so two processes never push the
-- same change: `claimed_by` names the drain holding the row until
-- `claim_until`.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claim_until TEXT;
-- A record's pending rows are claimed through its oldest one.
CREATE INDEX outbox_record ON outbox (connection, object, crm_id, id);
