//! What the storage tests share: a log over a directory, as a broker opens
//! one (objects under `objects/`, SQLite metadata, tables in the same
//! store), tuned by each test.

use std::path::Path;
use std::sync::Arc;

use floe_storage::log::{Log, LogConfig};
use floe_storage::meta::sql::SqlStore;
use floe_storage::object::open_object_store;
use floe_storage::table::TableConfig;

/// Opens (or reopens) the log kept in `dir`, its config as `tune` leaves it.
pub async fn open_log(dir: &Path, tune: impl FnOnce(&mut LogConfig)) -> Arc<Log> {
    let objects = open_object_store(dir.join("objects").to_str().unwrap()).unwrap();
    let meta = Arc::new(SqlStore::sqlite(&dir.join("meta.db")).await.unwrap());
    let mut cfg = LogConfig {
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            ..TableConfig::default()
        },
        ..LogConfig::default()
    };
    tune(&mut cfg);
    Log::open(cfg, meta, objects.store, objects.prefix)
        .await
        .unwrap()
}
