-- The segment index. A flush writes one Parquet file per topic (a row in
-- `files`); each partition's rows in it are a run of rows of one row group
-- (a row in `segments`: `first_row` and `record_count` within `row_group`).
-- Small partitions of a flush share a row group. `first_row` came after
-- the table: a database created before it gains the column at open
-- (`ADDED_COLUMNS`). A file that exists in object storage but not here was never
-- committed and is swept.

CREATE TABLE IF NOT EXISTS files (
    path        TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS segments (
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    base_offset     BIGINT NOT NULL,
    last_offset     BIGINT NOT NULL,
    record_count    BIGINT NOT NULL,
    path            TEXT NOT NULL,
    file_size       BIGINT NOT NULL,
    row_group       INTEGER NOT NULL,
    first_row       BIGINT NOT NULL DEFAULT 0,
    min_timestamp   BIGINT NOT NULL,
    max_timestamp   BIGINT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    append_time_ms  BIGINT NOT NULL,
    PRIMARY KEY (topic, partition_id, base_offset)
);

CREATE INDEX IF NOT EXISTS segments_by_path ON segments (path);
