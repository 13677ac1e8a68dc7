-- Notification subscriptions in the embedded profile (SNS holds them in the aws profile).
CREATE TABLE subscriptions (
    id         CHAR(36)     NOT NULL PRIMARY KEY,
    topic      VARCHAR(16)  NOT NULL,
    protocol   VARCHAR(16)  NOT NULL,
    endpoint   VARCHAR(254) NOT NULL,
    created_at VARCHAR(32)  NOT NULL,
    UNIQUE KEY subscriptions_topic_endpoint (topic, protocol, endpoint)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
