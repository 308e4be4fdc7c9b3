-- The segment index. A flush writes one Parquet file per topic (a row in
-- `files`); each partition's rows in it are a run of rows of one row group
-- (`first_row` and `record_count` within `row_group`), and every run of
-- the file is encoded in its row (`runs`, see `meta/runs.rs`): a flush is
-- one row whatever the number of partitions. A run wholly below its
-- partition's log start is dropped; a file whose runs all are is deleted.
-- A file that exists in object storage but not here was never committed
-- and is swept. (Databases from before `runs` had a row per run in a
-- `segments` table; opening one moves them into `runs`.)

CREATE TABLE IF NOT EXISTS files (
    path        TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    runs        BLOB NOT NULL
);

CREATE INDEX IF NOT EXISTS files_by_topic ON files (topic, created_ms);
