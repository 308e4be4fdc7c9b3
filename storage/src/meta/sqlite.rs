//! Opening the SQLite metadata store: one file in the data directory, WAL
//! mode, `synchronous=FULL` so a commit is on disk before a produce is
//! acknowledged, and one connection (SQLite serializes writers anyway, and
//! one connection keeps an in-memory database shared).

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use super::ddl::{self, Dialect};
use super::sql::SqlStore;
use super::{runs, SegmentRecord};
use crate::error::Result;

/// Columns added to a table after it was first created, as (table,
/// column, declaration): the DDL creates new databases with them, and an
/// older database gains them at open (SQLite has no `ADD COLUMN IF NOT
/// EXISTS`).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("files", "runs", "BLOB NOT NULL DEFAULT X''")];

impl SqlStore {
    /// Opens (creating if needed) the SQLite database at `path` and applies
    /// the DDL.
    pub async fn sqlite(path: &Path) -> Result<Self> {
        Self::open_sqlite(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// An in-memory SQLite database, for tests.
    pub async fn sqlite_in_memory() -> Result<Self> {
        Self::open_sqlite("sqlite::memory:").await
    }

    async fn open_sqlite(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        {
            let mut conn = pool.acquire().await?;
            ddl::apply(&mut conn, Dialect::Sqlite, crate::sync::now_ms()).await?;
        }
        for (table, column, declaration) in ADDED_COLUMNS {
            let present = sqlx::query("SELECT 1 AS one FROM pragma_table_info($1) WHERE name = $2")
                .bind(table)
                .bind(column)
                .fetch_optional(&pool)
                .await?
                .is_some();
            if !present {
                sqlx::raw_sql(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
                ))
                .execute(&pool)
                .await?;
            }
        }
        move_segment_rows_into_runs(&pool).await?;
        Ok(SqlStore::new(pool, Dialect::Sqlite))
    }
}

/// Moves the runs of a database from before `files.runs` (a `segments`
/// table with a row per run, `first_row` missing in the oldest) into their
/// files' rows, and drops the table; in one transaction, so an interrupted
/// open leaves the old form to convert again.
async fn move_segment_rows_into_runs(pool: &AnyPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('segments')")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("name"))
        .collect();
    if columns.is_empty() {
        return Ok(());
    }
    let first_row = if columns.iter().any(|c| c == "first_row") {
        "first_row"
    } else {
        "0 AS first_row"
    };
    let rows = sqlx::query(&format!(
        "SELECT topic, partition_id, base_offset, last_offset, record_count, path, file_size,
                row_group, {first_row}, min_timestamp, max_timestamp, size_bytes, append_time_ms
         FROM segments ORDER BY path, partition_id, base_offset"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut by_path: BTreeMap<String, Vec<SegmentRecord>> = BTreeMap::new();
    for r in &rows {
        let path: String = r.get("path");
        by_path
            .entry(path.clone())
            .or_default()
            .push(SegmentRecord {
                topic: r.get("topic"),
                partition: r.get("partition_id"),
                base_offset: r.get("base_offset"),
                last_offset: r.get("last_offset"),
                record_count: r.get("record_count"),
                path,
                file_size: r.get("file_size"),
                row_group: r.get("row_group"),
                first_row: r.get("first_row"),
                min_timestamp: r.get("min_timestamp"),
                max_timestamp: r.get("max_timestamp"),
                size_bytes: r.get("size_bytes"),
                append_time_ms: r.get("append_time_ms"),
            });
    }
    sqlx::query("UPDATE files SET runs = $1")
        .bind(runs::encode(&[]))
        .execute(&mut *tx)
        .await?;
    for (path, segments) in &by_path {
        sqlx::query("UPDATE files SET runs = $1 WHERE path = $2")
            .bind(runs::encode(segments))
            .bind(path)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DROP TABLE segments").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;
    use crate::meta::MetadataStore;

    #[tokio::test]
    async fn a_database_with_a_row_per_segment_moves_them_into_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        {
            // The file index as it was before `runs` (and, in the oldest
            // form, before `first_row`): a file with two segments, and
            // partition 0's log start past the first.
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                .unwrap()
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            sqlx::raw_sql(
                "CREATE TABLE files (path TEXT PRIMARY KEY, topic TEXT NOT NULL,
                     size_bytes BIGINT NOT NULL, created_ms BIGINT NOT NULL);
                 CREATE TABLE segments (topic TEXT NOT NULL, partition_id INTEGER NOT NULL,
                     base_offset BIGINT NOT NULL, last_offset BIGINT NOT NULL,
                     record_count BIGINT NOT NULL, path TEXT NOT NULL, file_size BIGINT NOT NULL,
                     row_group INTEGER NOT NULL, min_timestamp BIGINT NOT NULL,
                     max_timestamp BIGINT NOT NULL, size_bytes BIGINT NOT NULL,
                     append_time_ms BIGINT NOT NULL,
                     PRIMARY KEY (topic, partition_id, base_offset));
                 CREATE INDEX segments_by_path ON segments (path);
                 INSERT INTO files VALUES ('f1', 't', 10, 1), ('f2', 't', 20, 2);
                 INSERT INTO segments VALUES ('t', 0, 0, 4, 5, 'f1', 10, 0, 1, 2, 10, 1),
                                             ('t', 1, 0, 2, 3, 'f1', 10, 1, 1, 2, 10, 1),
                                             ('t', 0, 5, 6, 2, 'f2', 20, 0, 3, 4, 10, 2);",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        for _ in 0..2 {
            // Opened twice: the second finds nothing left to move.
            let s = SqlStore::sqlite(&path).await.unwrap();
            let segs = s.list_segments("t").await.unwrap();
            let got: Vec<_> = segs
                .iter()
                .map(|r| {
                    (
                        r.partition,
                        r.base_offset,
                        r.last_offset,
                        r.path.as_str(),
                        r.row_group,
                        r.first_row,
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (0, 0, 4, "f1", 0, 0),
                    (0, 5, 6, "f2", 0, 0),
                    (1, 0, 2, "f1", 1, 0)
                ]
            );
            assert_eq!(segs[1].file_size, 20);
            s.pool().close().await;
        }
    }
}
