-- The event store. Positions are assigned by the store under the head-row lock, so they are dense
-- and commit in order: there is deliberately no AUTO_INCREMENT here (its values commit out of order).
CREATE TABLE events (
    position       BIGINT       NOT NULL PRIMARY KEY,
    event_id       CHAR(36)     NOT NULL,
    aggregate_type VARCHAR(64)  NOT NULL,
    aggregate_id   VARCHAR(128) NOT NULL,
    sequence       BIGINT       NOT NULL,
    event_type     VARCHAR(128) NOT NULL,
    schema_version BIGINT       NOT NULL,
    payload        LONGTEXT     NOT NULL CHECK (JSON_VALID(payload)),
    metadata       LONGTEXT     NOT NULL CHECK (JSON_VALID(metadata)),
    data_subject   VARCHAR(128) NULL,
    recorded_at    VARCHAR(32)  NOT NULL,
    prev_hash      CHAR(64)     NULL,
    hash           CHAR(64)     NOT NULL,
    UNIQUE KEY events_event_id (event_id),
    UNIQUE KEY events_stream_sequence (aggregate_type, aggregate_id, sequence),
    KEY events_aggregate_id (aggregate_id, position),
    KEY events_type_position (event_type, position),
    KEY events_recorded_at (recorded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row: the last committed position. Every append locks it, which orders commits globally.
CREATE TABLE event_store_head (
    id            TINYINT NOT NULL PRIMARY KEY,
    last_position BIGINT  NOT NULL
) ENGINE = InnoDB;
INSERT INTO event_store_head (id, last_position) VALUES (1, 0);

-- Signed-off ranges of the global log: the running hash over every event hash up to to_position.
CREATE TABLE ledger_checkpoints (
    to_position   BIGINT      NOT NULL PRIMARY KEY,
    from_position BIGINT      NOT NULL,
    running_hash  CHAR(64)    NOT NULL,
    sealed_at     VARCHAR(32) NOT NULL,
    UNIQUE KEY ledger_checkpoints_from (from_position)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are append-only: UPDATE refused';
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are append-only: DELETE refused';
CREATE TRIGGER ledger_checkpoints_refuse_update BEFORE UPDATE ON ledger_checkpoints FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'checkpoints are append-only: UPDATE refused';
CREATE TRIGGER ledger_checkpoints_refuse_delete BEFORE DELETE ON ledger_checkpoints FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'checkpoints are append-only: DELETE refused';
