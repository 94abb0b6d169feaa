-- The history of every stream lease (issue 18): each grant with its fencing
-- token and holder, and each page committed under a token, written in the
-- page's own transaction (a refused page leaves no row). Read in `id` order
-- per stream it shows who synced the stream when, and that no page was
-- ever committed under a token older than the newest granted before it.
-- Rows older than a week are pruned whenever a lease is granted.
CREATE TABLE lease_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline   TEXT NOT NULL,
    connection TEXT NOT NULL,
    object     TEXT NOT NULL,
    event      TEXT NOT NULL,
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX lease_log_stream ON lease_log (pipeline, connection, object, id);
CREATE INDEX lease_log_age ON lease_log (at);

-- Schedule ticks, claimed once across instances: a pipeline's schedule
-- period (seconds since the epoch divided by its interval) is run by the
-- first instance whose timer reaches it; the others skip it. Rows older
-- than a day are pruned when a tick is claimed.
CREATE TABLE schedule_tick (
    pipeline   TEXT NOT NULL,
    period     BIGINT NOT NULL,
    holder     TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, period)
);
