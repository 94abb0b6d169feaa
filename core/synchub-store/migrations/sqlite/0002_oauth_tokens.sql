-- OAuth token sets per connector instance, sealed (encrypted) by synchub-http
-- with the key from SYNCHUB_SECRET_KEY: this table only ever holds ciphertext.
CREATE TABLE oauth_token (
    instance   TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
