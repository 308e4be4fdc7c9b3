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

-- Brokers, each with a lease it keeps renewing: an id is held by one
-- incarnation (one run of a broker process) while its lease is live.
-- (`brokers`, from before leases, is dropped.)
DROP TABLE IF EXISTS brokers;

CREATE TABLE IF NOT EXISTS broker_registrations (
    broker_id        INTEGER PRIMARY KEY,
    incarnation      TEXT NOT NULL,
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    rack             TEXT,
    lease_expires_ms BIGINT NOT NULL
);
