-- Brokers and cluster-wide counters.
-- Portable SQL: the same statements run on SQLite and PostgreSQL.

CREATE TABLE IF NOT EXISTS cluster (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (
    name        TEXT PRIMARY KEY,
    value       BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS brokers (
    broker_id       INTEGER PRIMARY KEY,
    host            TEXT NOT NULL,
    port            INTEGER NOT NULL,
    lease_expires_ms BIGINT NOT NULL
);
