-- Iceberg: each topic's table is a pointer to its current metadata file
-- (swapped only by compare-and-set, so two committers cannot both win), and
-- the data files the table holds. A file retention drops from the Kafka log
-- stays here, and in object storage, until a snapshot has removed it from
-- the table and every older snapshot has expired (`removed_ms` is the
-- removing snapshot's time).

CREATE TABLE IF NOT EXISTS iceberg_tables (
    topic              TEXT PRIMARY KEY,
    metadata_location  TEXT NOT NULL,
    updated_ms         BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS table_files (
    path        TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    removed_ms  BIGINT
);

CREATE INDEX IF NOT EXISTS table_files_by_topic ON table_files (topic);
