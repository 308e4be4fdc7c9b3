-- Topics, their explicitly set configs, and partitions with leadership and
-- the committed high watermark.

CREATE TABLE IF NOT EXISTS topics (
    name        TEXT PRIMARY KEY,
    topic_id    TEXT NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS topic_configs (
    topic       TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (topic, key)
);

CREATE TABLE IF NOT EXISTS partitions (
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    leader_id       INTEGER NOT NULL,
    leader_epoch    INTEGER NOT NULL,
    high_watermark  BIGINT NOT NULL,
    log_start_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition_id)
);
