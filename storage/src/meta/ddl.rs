//! The metadata store's schema: the numbered DDL files in `storage/ddl/`,
//! written once for both databases, and what each database makes of them.
//!
//! Every statement is idempotent (`IF NOT EXISTS`) and applied at every
//! open; the names applied are recorded in `ddl_applied`, so a broker
//! refuses a database that a newer floe has extended with DDL it does
//! not know, instead of running on tables it does not understand.

use std::borrow::Cow;

use sqlx::{AnyConnection, Row};

use crate::error::{BackendError, Result};

/// The DDL, applied in order at open.
pub const DDL: &[(&str, &str)] = &[
    ("010-cluster.sql", include_str!("../../ddl/010-cluster.sql")),
    ("020-topics.sql", include_str!("../../ddl/020-topics.sql")),
    (
        "030-segments.sql",
        include_str!("../../ddl/030-segments.sql"),
    ),
    (
        "040-producers.sql",
        include_str!("../../ddl/040-producers.sql"),
    ),
    ("050-groups.sql", include_str!("../../ddl/050-groups.sql")),
    (
        "060-consumer-protocol.sql",
        include_str!("../../ddl/060-consumer-protocol.sql"),
    ),
    ("070-schemas.sql", include_str!("../../ddl/070-schemas.sql")),
    ("080-tables.sql", include_str!("../../ddl/080-tables.sql")),
    (
        "090-typed-columns.sql",
        include_str!("../../ddl/090-typed-columns.sql"),
    ),
    ("100-users.sql", include_str!("../../ddl/100-users.sql")),
    ("110-acls.sql", include_str!("../../ddl/110-acls.sql")),
    (
        "120-listeners.sql",
        include_str!("../../ddl/120-listeners.sql"),
    ),
    (
        "130-transactions.sql",
        include_str!("../../ddl/130-transactions.sql"),
    ),
];

/// Columns added to a table after its DDL file first shipped: a database
/// made before gets them at open (`table`, `column`, declaration).
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "transactions",
        "previous_producer_id",
        "BIGINT NOT NULL DEFAULT -1",
    ),
    (
        "transactions",
        "previous_producer_epoch",
        "INTEGER NOT NULL DEFAULT -1",
    ),
];

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// A DDL file as this database takes it. PostgreSQL: binary columns
    /// are BYTEA, and text compares byte by byte (`COLLATE "C"`), as in
    /// SQLite: the store's range scans on paths (`<object>#` up to
    /// `<object>$`) and its orderings rely on it, where a locale's
    /// collation would ignore punctuation.
    pub fn translate(self, ddl: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(ddl),
            Dialect::Postgres => Cow::Owned(
                ddl.lines()
                    .map(|line| match line.trim_start().starts_with("--") {
                        true => line.to_string(),
                        false => line
                            .replace(" TEXT", " TEXT COLLATE \"C\"")
                            .replace(" BLOB", " BYTEA"),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }
}

/// Applies the DDL on `conn` (the caller holds whatever makes it the only
/// one doing so) and records it; refuses a database that has DDL this
/// binary does not know.
pub async fn apply(conn: &mut AnyConnection, dialect: Dialect, now_ms: i64) -> Result<()> {
    sqlx::raw_sql(&dialect.translate(
        "CREATE TABLE IF NOT EXISTS ddl_applied (\n    name TEXT PRIMARY KEY,\n    applied_ms BIGINT NOT NULL\n);",
    ))
    .execute(&mut *conn)
    .await?;
    let applied: Vec<String> = sqlx::query("SELECT name FROM ddl_applied ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.get("name"))
        .collect();
    let unknown: Vec<&str> = applied
        .iter()
        .map(String::as_str)
        .filter(|name| !DDL.iter().any(|(known, _)| known == name))
        .collect();
    if !unknown.is_empty() {
        return Err(BackendError::MetadataUnusable(format!(
            "the database has schema changes this floe does not know ({}), made by a newer \
             version: run that version, or upgrade this broker",
            unknown.join(", ")
        ))
        .into());
    }
    for (name, ddl) in DDL {
        sqlx::raw_sql(&dialect.translate(ddl))
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO ddl_applied (name, applied_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(*name)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    for (table, column, declaration) in ADDED_COLUMNS {
        add_column(conn, dialect, table, column, declaration).await?;
    }
    Ok(())
}

/// Adds a column unless the table has it.
async fn add_column(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    column: &str,
    declaration: &str,
) -> Result<()> {
    let alter = match dialect {
        Dialect::Postgres => {
            format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {declaration}")
        }
        Dialect::Sqlite => {
            let present = sqlx::query("SELECT 1 AS one FROM pragma_table_info($1) WHERE name = $2")
                .bind(table)
                .bind(column)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if present {
                return Ok(());
            }
            format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        }
    };
    sqlx::raw_sql(&alter).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_columns_compare_bytes_and_hold_binary_as_bytea() {
        let ddl =
            "-- a TEXT comment\nCREATE TABLE t (\n    a TEXT PRIMARY KEY,\n    b BLOB NOT NULL\n);";
        assert_eq!(Dialect::Sqlite.translate(ddl), ddl);
        assert_eq!(
            Dialect::Postgres.translate(ddl),
            "-- a TEXT comment\nCREATE TABLE t (\n    a TEXT COLLATE \"C\" PRIMARY KEY,\n    b BYTEA NOT NULL\n);"
        );
    }
}
