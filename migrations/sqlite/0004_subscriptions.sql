-- Notification subscriptions in the embedded profile (SNS holds them in the aws profile).
CREATE TABLE subscriptions (
    id         TEXT NOT NULL PRIMARY KEY,
    topic      TEXT NOT NULL,
    protocol   TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (topic, protocol, endpoint)
);
