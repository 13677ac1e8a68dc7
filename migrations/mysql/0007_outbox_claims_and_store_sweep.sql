-- Effects are claimed in a committed step before the remote call: a claimed row that was never
-- marked sent (the sender stopped or its call timed out during the call) may or may not have
-- arrived, and is not sent again. Pending rows are the unclaimed, unsent ones.
ALTER TABLE outbox ADD COLUMN claimed_at VARCHAR(32) NULL;
DROP INDEX outbox_pending ON outbox;
CREATE INDEX outbox_pending ON outbox (channel, sent_at, claimed_at, created_at);

-- The store sweep's watermark per projector: every event up to this position has been applied,
-- by the bus or by the sweep (`position` is only the highest applied: the bus is out of order).
ALTER TABLE projection_status ADD COLUMN swept_to BIGINT NOT NULL DEFAULT 0;
