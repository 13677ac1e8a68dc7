-- Sessions: only the SHA-256 of each token is kept.
CREATE TABLE sessions (
    token_hash CHAR(64)     NOT NULL PRIMARY KEY,
    user_id    VARCHAR(64)  NOT NULL,
    username   VARCHAR(64)  NOT NULL,
    roles      VARCHAR(255) NOT NULL,
    created_at VARCHAR(32)  NOT NULL,
    expires_at VARCHAR(32)  NOT NULL,
    revoked_at VARCHAR(32)  NULL,
    KEY sessions_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The first answer to each Idempotency-Key, per caller, replayed to retries.
CREATE TABLE idempotency_keys (
    caller        VARCHAR(64)  NOT NULL,
    idem_key      VARCHAR(128) NOT NULL,
    request_hash  CHAR(64)     NOT NULL,
    status        BIGINT       NOT NULL,
    response_body LONGTEXT     NULL,
    created_at    VARCHAR(32)  NOT NULL,
    PRIMARY KEY (caller, idem_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
