-- The event pipeline: where each projector (and the relay) stands, and the last event it applied
-- per stream, updated in the same transaction as the projector's own rows.
CREATE TABLE projection_status (
    name       TEXT   NOT NULL PRIMARY KEY,
    position   BIGINT NOT NULL,
    last_error TEXT   NULL,
    updated_at TEXT   NOT NULL
);

CREATE TABLE projection_streams (
    projection    TEXT   NOT NULL,
    aggregate_id  TEXT   NOT NULL,
    last_sequence BIGINT NOT NULL,
    PRIMARY KEY (projection, aggregate_id)
) WITHOUT ROWID;

-- Side effects (metrics, notifications) written with the projection that caused them and sent
-- after it commits: one row per event and effect, so a redelivered event cannot send twice.
CREATE TABLE outbox (
    channel    TEXT   NOT NULL,
    effect_key TEXT   NOT NULL,
    payload    TEXT   NOT NULL,
    created_at TEXT   NOT NULL,
    sent_at    TEXT   NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT   NULL,
    PRIMARY KEY (channel, effect_key)
);
CREATE INDEX outbox_pending ON outbox (channel, sent_at, created_at);

-- The catalogue read model. `seq` is a stable rowid for the full-text index.
CREATE TABLE rm_movies (
    seq           INTEGER PRIMARY KEY,
    id            TEXT   NOT NULL UNIQUE,
    title         TEXT   NOT NULL,
    year          BIGINT NOT NULL,
    director      TEXT   NOT NULL,
    genres        TEXT   NOT NULL,
    description   TEXT   NOT NULL,
    poster_key    TEXT   NULL,
    thumbnail_key TEXT   NULL,
    added_by      TEXT   NOT NULL,
    added_at      TEXT   NOT NULL,
    updated_at    TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    removed       BIGINT NOT NULL,
    position      BIGINT NOT NULL
);
CREATE INDEX rm_movies_added ON rm_movies (removed, added_at, id);
CREATE INDEX rm_movies_title ON rm_movies (removed, title COLLATE NOCASE, id);
CREATE INDEX rm_movies_year ON rm_movies (removed, year, id);
CREATE INDEX rm_movies_director ON rm_movies (director COLLATE NOCASE);

CREATE VIRTUAL TABLE rm_movies_search USING fts5(
    title, director, description, content = 'rm_movies', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER rm_movies_search_insert AFTER INSERT ON rm_movies BEGIN
    INSERT INTO rm_movies_search (rowid, title, director, description)
        VALUES (new.seq, new.title, new.director, new.description);
END;
CREATE TRIGGER rm_movies_search_delete AFTER DELETE ON rm_movies BEGIN
    INSERT INTO rm_movies_search (rm_movies_search, rowid, title, director, description)
        VALUES ('delete', old.seq, old.title, old.director, old.description);
END;
CREATE TRIGGER rm_movies_search_update AFTER UPDATE OF title, director, description ON rm_movies BEGIN
    INSERT INTO rm_movies_search (rm_movies_search, rowid, title, director, description)
        VALUES ('delete', old.seq, old.title, old.director, old.description);
    INSERT INTO rm_movies_search (rowid, title, director, description)
        VALUES (new.seq, new.title, new.director, new.description);
END;

CREATE TABLE rm_movie_genres (
    movie_id TEXT NOT NULL,
    genre    TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (movie_id, genre)
) WITHOUT ROWID;
CREATE INDEX rm_movie_genres_genre ON rm_movie_genres (genre, movie_id);

CREATE TABLE rm_users (
    id            TEXT   NOT NULL PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE,
    email         TEXT   NOT NULL,
    roles         TEXT   NOT NULL,
    passkeys      BIGINT NOT NULL,
    locked_until  TEXT   NULL,
    registered_at TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    position      BIGINT NOT NULL
);
CREATE INDEX rm_users_locked ON rm_users (locked_until);

-- Every sign-in attempt on an account, good or bad.
CREATE TABLE rm_logins (
    position  BIGINT NOT NULL PRIMARY KEY,
    user_id   TEXT   NOT NULL,
    username  TEXT   NOT NULL,
    at        TEXT   NOT NULL,
    method    TEXT   NOT NULL,
    succeeded BIGINT NOT NULL,
    reason    TEXT   NULL,
    ip        TEXT   NULL
);
CREATE INDEX rm_logins_user ON rm_logins (user_id, position);
CREATE INDEX rm_logins_at ON rm_logins (at);

-- The embedded profile's metric series: one value per metric and minute.
CREATE TABLE metric_points (
    name   TEXT   NOT NULL,
    minute TEXT   NOT NULL,
    value  DOUBLE NOT NULL,
    PRIMARY KEY (name, minute)
) WITHOUT ROWID;

-- The notifications projector's own state: who a user id is, and failed sign-ins per minute.
-- Once-only alerts need no table: the outbox's key refuses a second one.
CREATE TABLE notify_users (
    user_id  TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL
);

CREATE TABLE failed_sign_ins (
    minute   TEXT   NOT NULL PRIMARY KEY,
    failures BIGINT NOT NULL
);
