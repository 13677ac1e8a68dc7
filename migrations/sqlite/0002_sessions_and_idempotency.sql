-- Sessions: only the SHA-256 of each token is kept.
CREATE TABLE sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL,
    roles      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The first answer to each Idempotency-Key, per caller, replayed to retries.
CREATE TABLE idempotency_keys (
    caller        TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    response_body TEXT    NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (caller, idem_key)
);
