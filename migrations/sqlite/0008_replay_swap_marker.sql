-- Set by a replay of the read models on MySQL between committing its new stream guards and
-- swapping its new tables in (see the MySQL migration); SQLite replays in one transaction and
-- never sets it, but both schemas keep the same columns.
ALTER TABLE projection_status ADD COLUMN swapping_since TEXT NULL;
