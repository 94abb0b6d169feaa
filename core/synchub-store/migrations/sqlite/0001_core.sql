-- The CRM records, the identity map with last-synced snapshots, cursors,
-- the outbox, dead letters, conflicts and the run log.
CREATE TABLE crm_record (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    merged_into TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX crm_record_kind ON crm_record (kind, updated_at);

CREATE TABLE match_key (
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    crm_id TEXT NOT NULL,
    PRIMARY KEY (kind, key, crm_id)
);
CREATE INDEX match_key_crm ON match_key (crm_id);

CREATE TABLE id_link (
    connection        TEXT NOT NULL,
    object            TEXT NOT NULL,
    external_id       TEXT NOT NULL,
    crm_id            TEXT NOT NULL,
    remote_version    TEXT,
    remote_updated_at TEXT,
    snapshot          TEXT,
    snapshot_hash     TEXT,
    deleted           BIGINT NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (connection, object, external_id)
);
CREATE INDEX id_link_crm ON id_link (crm_id, connection);

CREATE TABLE sync_cursor (
    connection TEXT NOT NULL,
    object     TEXT NOT NULL,
    cursor     TEXT,
    seq        BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection, object)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection      TEXT NOT NULL,
    object          TEXT NOT NULL,
    crm_id          TEXT NOT NULL,
    op              TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    done_at         TEXT
);
CREATE INDEX outbox_pending ON outbox (connection, object, done_at, id);

CREATE TABLE dead_letter (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL UNIQUE,
    connection  TEXT NOT NULL,
    object      TEXT NOT NULL,
    external_id TEXT,
    location    TEXT,
    reason      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE conflict (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    crm_id      TEXT NOT NULL,
    object      TEXT NOT NULL,
    field       TEXT NOT NULL,
    connection  TEXT NOT NULL,
    external_id TEXT NOT NULL,
    base        TEXT,
    local       TEXT,
    remote      TEXT,
    status      TEXT NOT NULL,
    resolution  TEXT,
    created_at  TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX conflict_open ON conflict (status, crm_id, field);

CREATE TABLE run_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    report      TEXT NOT NULL
);
