-- Crypto-shredding: one 256-bit AES-GCM key per data subject (a user id), outside the append-only
-- log and not append-only itself. `marquee user forget` sets `secret` to NULL and `erased_at`:
-- the key is gone, and the row stays as a tombstone so no new key is ever made for the subject.
-- The key is hex text: sqlx's `Any` driver decodes MySQL's binary strings as UTF-8 text.
CREATE TABLE personal_data_keys (
    subject    VARCHAR(128)  NOT NULL PRIMARY KEY,
    secret     CHAR(64)      NULL,
    created_at VARCHAR(32)   NOT NULL,
    erased_at  VARCHAR(32)   NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
