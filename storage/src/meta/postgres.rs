//! Opening the PostgreSQL metadata store (several brokers share one
//! database): a connection pool, a statement timeout on every connection,
//! the DDL applied once under an advisory lock however many brokers start
//! at the same moment, and startup errors that say what to fix.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::ddl::{self, Dialect};
use super::sql::SqlStore;
use crate::error::{BackendError, Result, StorageError};

/// How a broker uses its PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections the pool opens at most.
    pub max_connections: u32,
    /// A statement running longer is cancelled (and its transaction fails).
    pub statement_timeout: Duration,
    /// How long a request waits for a free connection (or for the server
    /// to answer a new one) before failing.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            statement_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl SqlStore {
    /// Connects to the PostgreSQL database at `url`
    /// (`postgres://user:password@host:port/database`) and applies the DDL.
    pub async fn postgres(url: &str, options: &PostgresOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let target = Target::of(url);
        let timeout_ms = options.statement_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(format!("SET statement_timeout = {timeout_ms}").as_str())
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| target.explain(e))?;
        // Every broker applies the DDL at start; the lock makes the first
        // do it and the others find it done (concurrent CREATE TABLE IF NOT
        // EXISTS of one table can fail in PostgreSQL).
        let applied: Result<()> = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT 1 AS one FROM pg_advisory_xact_lock(hashtext('floe:ddl'))")
                .fetch_one(&mut *tx)
                .await?;
            ddl::apply(&mut tx, Dialect::Postgres, crate::sync::now_ms()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        applied.map_err(|e| match e {
            StorageError::Backend(BackendError::Metadata(e)) => target.explain(e),
            other => other,
        })?;
        Ok(SqlStore::new(pool, Dialect::Postgres).listening(url))
    }
}

/// Where a URL points, for error messages (never the password).
struct Target {
    user: String,
    host: String,
    port: u16,
    database: String,
}

impl Target {
    fn of(url: &str) -> Self {
        let parsed = url::Url::parse(url).ok();
        let user = parsed
            .as_ref()
            .map(|u| u.username().to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_default());
        let host = parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".into());
        let port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432);
        let database = parsed
            .as_ref()
            .map(|u| u.path().trim_start_matches('/').to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        Target {
            user,
            host,
            port,
            database,
        }
    }

    /// A startup failure, said in terms of what to fix.
    fn explain(&self, e: sqlx::Error) -> StorageError {
        let Target {
            user,
            host,
            port,
            database,
        } = self;
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        let message = match (code.as_deref(), &e) {
            (_, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => format!(
                "cannot reach PostgreSQL at {host}:{port} ({e}): is it running, and are the host \
                 and port in --metadata right?"
            ),
            (Some("28P01" | "28000"), _) => format!(
                "PostgreSQL at {host}:{port} refused user {user:?} ({e}): check the user and \
                 password in --metadata"
            ),
            (Some("3D000"), _) => format!(
                "database {database:?} does not exist on {host}:{port}: create it \
                 (createdb {database}) or name another in --metadata"
            ),
            (Some("42501"), _) => format!(
                "user {user:?} may not create or change floe's tables in database {database:?} \
                 ({e}): run the brokers as the database's owner, or GRANT CREATE ON SCHEMA \
                 public TO {user} (and ALL on floe's tables, if another user created them)"
            ),
            (Some("57014"), _) => format!(
                "a statement on {host}:{port}/{database} ran past the statement timeout ({e})"
            ),
            _ => return StorageError::Backend(BackendError::Metadata(e)),
        };
        BackendError::MetadataUnusable(message).into()
    }
}
