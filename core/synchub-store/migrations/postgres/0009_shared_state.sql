-- State every instance sharing the store sees (issue 18 items 2 and 3).

-- One token bucket per key (`CREDENTIAL#requests`, `CREDENTIAL#cost`):
-- the allowance a provider gives one credential, shared by every instance.
-- `capacity` and `refill_per_sec` are NULL until learned from the
-- server; `probe_at` is when an instance went to learn them. Times are
-- seconds since the epoch by the database's clock (PostgreSQL) so that
-- instances on machines with different clocks agree.
CREATE TABLE rate_budget (
    key            TEXT PRIMARY KEY,
    capacity       DOUBLE PRECISION,
    refill_per_sec DOUBLE PRECISION,
    level          DOUBLE PRECISION NOT NULL,
    at_epoch       DOUBLE PRECISION NOT NULL,
    probe_at       DOUBLE PRECISION
);

-- The webhook replay guard: delivery ids and body hashes already taken,
-- per connection, kept across restarts and shared by every instance.
CREATE TABLE webhook_seen (
    connection TEXT NOT NULL,
    id         TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    PRIMARY KEY (connection, id)
);
CREATE INDEX webhook_seen_age ON webhook_seen (seen_at);

-- Work for any instance: webhook wake-ups, schedule ticks and webhook
-- deletes still to apply. A pending wake-up per (pipeline, kind) collapses
-- a burst into one run (`dedup_key` is unique while pending); a delete
-- that failed stays with its error and is retried after `not_before`.
CREATE TABLE delivery_queue (
    id          BIGSERIAL PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    connection  TEXT NOT NULL,
    object      TEXT NOT NULL,
    payload     TEXT,
    dedup_key   TEXT UNIQUE,
    enqueued_at TEXT NOT NULL,
    not_before  TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    claimed_by  TEXT,
    claim_until TEXT
);
CREATE INDEX delivery_queue_due ON delivery_queue (pipeline, not_before);
