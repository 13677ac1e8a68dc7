-- Crypto-shredding: one 256-bit AES-GCM key per data subject (a user id), outside the append-only
-- log and not append-only itself. `marquee user forget` sets `secret` to NULL and `erased_at`:
-- the key is gone, and the row stays as a tombstone so no new key is ever made for the subject.
-- The key is hex text, as on MySQL.
CREATE TABLE personal_data_keys (
    subject    TEXT NOT NULL PRIMARY KEY,
    secret     TEXT NULL,
    created_at TEXT NOT NULL,
    erased_at  TEXT NULL
) WITHOUT ROWID;
