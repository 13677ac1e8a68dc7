-- The server's half of each WebAuthn ceremony, from its options to the authenticator's answer:
-- kept here so any server can finish what another started; taken out when finished and
-- refused after expires_at. user_id binds a registration to the user who started it.
CREATE TABLE webauthn_ceremonies (
    id         CHAR(36)    NOT NULL PRIMARY KEY,
    purpose    VARCHAR(16) NOT NULL,
    user_id    VARCHAR(64) NULL,
    state      LONGTEXT    NOT NULL,
    expires_at VARCHAR(32) NOT NULL,
    KEY webauthn_ceremonies_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
