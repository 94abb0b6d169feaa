-- The ops console (docs/console.md): its users, their sessions, and the
-- audit log of what people did through it. Passwords are kept only as
-- argon2 hashes (PHC strings); a session is kept only as the SHA-256 of its
-- cookie token, so a copy of the store opens no session. Times are the
-- fixed-width UTC text of every other column.

CREATE TABLE console_user (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE console_session (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES console_user (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_session_user ON console_session (user_id);
CREATE INDEX console_session_expiry ON console_session (expires_at);

-- Every resolve, replay, merge, keep-apart and unmerge: who, when, what.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    summary TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The CRM records an audit entry concerns (both contacts of a merge), so
-- a customer's page finds the entries about it and about the contacts
-- merged into it.
CREATE TABLE audit_record (
    crm_id   TEXT NOT NULL,
    audit_id BIGINT NOT NULL REFERENCES audit_log (id) ON DELETE CASCADE,
    PRIMARY KEY (crm_id, audit_id)
);
