-- The server's half of each WebAuthn ceremony, from its options to the authenticator's answer:
-- kept here so any server can finish what another started; taken out when finished and
-- refused after expires_at. user_id binds a registration to the user who started it.
CREATE TABLE webauthn_ceremonies (
    id         TEXT NOT NULL PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT NULL,
    state      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
