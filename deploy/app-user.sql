-- The app's database user: INSERT and SELECT only on the event log (and on the append-only ledger
-- checkpoints), the read and write it needs on every other table, and no DDL. Run as the RDS
-- admin after `marquee migrate` (docs/deploy.md, bootstrap), once the user exists:
--   CREATE USER 'marquee_app'@'%' IDENTIFIED BY '<password from the AppDbSecret secret>';
-- Safe to run again; a migration that adds a table adds its grant here
-- (tests/tests/deploy_smoke.rs checks that every table has one and runs the app as this user).

GRANT SELECT, INSERT ON `marquee`.`events` TO 'marquee_app'@'%';
GRANT SELECT, INSERT ON `marquee`.`ledger_checkpoints` TO 'marquee_app'@'%';
GRANT SELECT, UPDATE ON `marquee`.`event_store_head` TO 'marquee_app'@'%';
-- serve checks at start that every migration is applied; sqlx's check begins with CREATE TABLE IF
-- NOT EXISTS on its own table, which needs CREATE there (the table exists, so nothing is created).
GRANT SELECT, CREATE ON `marquee`.`_sqlx_migrations` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`sessions` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`idempotency_keys` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`webauthn_ceremonies` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`subscriptions` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`projection_status` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`projection_streams` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`outbox` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`rm_movies` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`rm_movie_genres` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`rm_users` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`rm_logins` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`metric_points` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`notify_users` TO 'marquee_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `marquee`.`failed_sign_ins` TO 'marquee_app'@'%';
-- Crypto-shredding keys: created with a user, destroyed (secret set to NULL) by `user forget`.
GRANT SELECT, INSERT, UPDATE ON `marquee`.`personal_data_keys` TO 'marquee_app'@'%';
