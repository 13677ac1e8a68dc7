-- The event pipeline: where each projector (and the relay) stands, and the last event it applied
-- per stream, updated in the same transaction as the projector's own rows.
CREATE TABLE projection_status (
    name       VARCHAR(64)   NOT NULL PRIMARY KEY,
    position   BIGINT        NOT NULL,
    last_error VARCHAR(1024) NULL,
    updated_at VARCHAR(32)   NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE projection_streams (
    projection    VARCHAR(64)  NOT NULL,
    aggregate_id  VARCHAR(128) NOT NULL,
    last_sequence BIGINT       NOT NULL,
    PRIMARY KEY (projection, aggregate_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Side effects (metrics, notifications) written with the projection that caused them and sent
-- after it commits: one row per event and effect, so a redelivered event cannot send twice.
CREATE TABLE outbox (
    channel    VARCHAR(32)   NOT NULL,
    effect_key VARCHAR(190)  NOT NULL,
    payload    LONGTEXT      NOT NULL,
    created_at VARCHAR(32)   NOT NULL,
    sent_at    VARCHAR(32)   NULL,
    attempts   BIGINT        NOT NULL DEFAULT 0,
    last_error VARCHAR(1024) NULL,
    PRIMARY KEY (channel, effect_key),
    KEY outbox_pending (channel, sent_at, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The catalogue read model. Searchable text uses a case-insensitive collation for FULLTEXT.
CREATE TABLE rm_movies (
    id            VARCHAR(64)   NOT NULL PRIMARY KEY,
    title         VARCHAR(400)  NOT NULL COLLATE utf8mb4_unicode_ci,
    year          BIGINT        NOT NULL,
    director      VARCHAR(400)  NOT NULL COLLATE utf8mb4_unicode_ci,
    genres        VARCHAR(1024) NOT NULL,
    description   TEXT          NOT NULL COLLATE utf8mb4_unicode_ci,
    poster_key    VARCHAR(255)  NULL,
    thumbnail_key VARCHAR(255)  NULL,
    added_by      VARCHAR(64)   NOT NULL,
    added_at      VARCHAR(32)   NOT NULL,
    updated_at    VARCHAR(32)   NOT NULL,
    version       BIGINT        NOT NULL,
    removed       BIGINT        NOT NULL,
    position      BIGINT        NOT NULL,
    KEY rm_movies_added (removed, added_at, id),
    KEY rm_movies_title (removed, title, id),
    KEY rm_movies_year (removed, year, id),
    KEY rm_movies_director (director),
    FULLTEXT KEY rm_movies_search (title, director, description)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE rm_movie_genres (
    movie_id VARCHAR(64)  NOT NULL,
    genre    VARCHAR(64)  NOT NULL COLLATE utf8mb4_unicode_ci,
    PRIMARY KEY (movie_id, genre),
    KEY rm_movie_genres_genre (genre, movie_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE rm_users (
    id            VARCHAR(64)  NOT NULL PRIMARY KEY,
    username      VARCHAR(64)  NOT NULL,
    email         VARCHAR(320) NOT NULL,
    roles         VARCHAR(255) NOT NULL,
    passkeys      BIGINT       NOT NULL,
    locked_until  VARCHAR(32)  NULL,
    registered_at VARCHAR(32)  NOT NULL,
    version       BIGINT       NOT NULL,
    position      BIGINT       NOT NULL,
    UNIQUE KEY rm_users_username (username),
    KEY rm_users_locked (locked_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every sign-in attempt on an account, good or bad.
CREATE TABLE rm_logins (
    position  BIGINT       NOT NULL PRIMARY KEY,
    user_id   VARCHAR(64)  NOT NULL,
    username  VARCHAR(64)  NOT NULL,
    at        VARCHAR(32)  NOT NULL,
    method    VARCHAR(16)  NOT NULL,
    succeeded BIGINT       NOT NULL,
    reason    VARCHAR(32)  NULL,
    ip        VARCHAR(64)  NULL,
    KEY rm_logins_user (user_id, position),
    KEY rm_logins_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The embedded profile's metric series: one value per metric and minute.
CREATE TABLE metric_points (
    name   VARCHAR(64) NOT NULL,
    minute VARCHAR(32) NOT NULL,
    value  DOUBLE      NOT NULL,
    PRIMARY KEY (name, minute)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The notifications projector's own state: who a user id is, and failed sign-ins per minute.
-- Once-only alerts need no table: the outbox's key refuses a second one.
CREATE TABLE notify_users (
    user_id  VARCHAR(64) NOT NULL PRIMARY KEY,
    username VARCHAR(64) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE failed_sign_ins (
    minute   VARCHAR(32) NOT NULL PRIMARY KEY,
    failures BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
