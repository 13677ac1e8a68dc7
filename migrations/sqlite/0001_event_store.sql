-- The event store. Positions are assigned by the store inside the single write transaction, so
-- they are dense and commit in order (see migrations/mysql for the same schema on MySQL).
CREATE TABLE events (
    position       INTEGER NOT NULL PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    metadata       TEXT    NOT NULL CHECK (json_valid(metadata)),
    data_subject   TEXT    NULL,
    recorded_at    TEXT    NOT NULL,
    prev_hash      TEXT    NULL,
    hash           TEXT    NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_aggregate_id ON events (aggregate_id, position);
CREATE INDEX events_type_position ON events (event_type, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

CREATE TABLE event_store_head (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_position INTEGER NOT NULL
);
INSERT INTO event_store_head (id, last_position) VALUES (1, 0);

CREATE TABLE ledger_checkpoints (
    to_position   INTEGER NOT NULL PRIMARY KEY,
    from_position INTEGER NOT NULL UNIQUE,
    running_hash  TEXT    NOT NULL,
    sealed_at     TEXT    NOT NULL
);

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
CREATE TRIGGER ledger_checkpoints_refuse_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER ledger_checkpoints_refuse_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE refused'); END;
