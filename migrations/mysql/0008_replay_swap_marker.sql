-- A replay of the read models on MySQL commits the new stream guards and position, then swaps its
-- new tables in by RENAME TABLE, which commits by itself: two commits. From the first until the
-- swap is done, and for good if the replay dies between them, the guards are ahead of the live
-- tables; live applies refuse while this is set, and the next replay clears it.
ALTER TABLE projection_status ADD COLUMN swapping_since VARCHAR(32) NULL;
