//! The databases the metadata store tests run on: SQLite in memory, and a
//! fresh database on the PostgreSQL server named by `FLOE_TEST_POSTGRES`
//! (a superuser URL; `scripts/test.sh` starts one with
//! `scripts/postgres.sh`). Without that variable the PostgreSQL half of a
//! test is skipped, unless `FLOE_TEST_REQUIRE_SERVERS` is set (the test
//! script sets it), which makes a missing server a failure.

use std::sync::Arc;

use floe_storage::meta::postgres::PostgresOptions;
use floe_storage::meta::sql::SqlStore;
use sqlx::Connection;

/// An empty in-memory SQLite store.
pub async fn sqlite() -> Arc<SqlStore> {
    Arc::new(SqlStore::sqlite_in_memory().await.unwrap())
}

/// A new, empty database on the test server.
pub struct PostgresDatabase {
    /// Its URL, as the superuser.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl PostgresDatabase {
    /// The URL of this database for another user.
    pub fn url_as(&self, user: &str) -> String {
        let mut u = url::Url::parse(&self.url).unwrap();
        u.set_username(user).unwrap();
        u.to_string()
    }

    /// Runs SQL on this database as the superuser.
    pub async fn execute(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

/// A fresh database, or None when no server is configured (see the
/// module's documentation).
pub async fn postgres_database() -> Option<PostgresDatabase> {
    let Ok(admin) = std::env::var("FLOE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("FLOE_TEST_REQUIRE_SERVERS").is_none(),
            "FLOE_TEST_POSTGRES is unset but FLOE_TEST_REQUIRE_SERVERS asks for every server"
        );
        eprintln!("FLOE_TEST_POSTGRES unset: skipping the PostgreSQL half of this test");
        return None;
    };
    let name = format!("floe_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(PostgresDatabase {
        url: url.to_string(),
        name,
    })
}

/// A PostgreSQL store on a fresh database (see [`postgres_database`]).
pub async fn postgres() -> Option<Arc<SqlStore>> {
    let db = postgres_database().await?;
    Some(Arc::new(
        SqlStore::postgres(&db.url, &PostgresOptions::default())
            .await
            .unwrap(),
    ))
}
