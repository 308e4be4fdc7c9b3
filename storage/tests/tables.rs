//! The Iceberg side of the log, against a local directory store and an
//! in-memory SQLite metadata store: flushes become snapshots with the
//! Kafka offsets they hold, DeleteRecords becomes a delete snapshot, and
//! files go from the store only once no snapshot refers to them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::BatchBuilder;
use floe_storage::log::{now_ms, Log, LogConfig};
use floe_storage::meta::sql::SqlStore;
use floe_storage::object::open_object_store;
use floe_storage::table::{TableConfig, Tables};

async fn open(dir: &std::path::Path, retention: Duration) -> Arc<Log> {
    let objects = open_object_store(dir.join("objects").to_str().unwrap()).unwrap();
    let meta = Arc::new(SqlStore::sqlite(&dir.join("meta.db")).await.unwrap());
    let cfg = LogConfig {
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            namespace: "floe".into(),
            snapshot_retention: retention,
            external: None,
        },
        // Every flush writes the topic's own file, so each produce below
        // is one file of the table.
        intake_direct_bytes: 0,
        ..LogConfig::default()
    };
    Log::open(cfg, meta, objects.store, objects.prefix)
        .await
        .unwrap()
}

async fn produce(log: &Log, topic: &str, partition: i32, n: usize) {
    let mut b = BatchBuilder::new(0, now_ms(), 0);
    for i in 0..n {
        b.push(i as i64, now_ms(), None, Some(b"v"), &[]);
    }
    let pending = log.append(topic, partition, b.finish(0)).await.unwrap();
    pending.committed().await.unwrap();
}

#[tokio::test]
async fn flushes_become_snapshots_and_deletions_follow_retention() {
    let dir = tempfile::tempdir().unwrap();
    // A long interval: this test drives the commits itself.
    let configs = BTreeMap::from([(
        "floe.iceberg.commit.interval.ms".to_string(),
        "3600000".to_string(),
    )]);
    let log = open(dir.path(), Duration::from_millis(0)).await;
    let topic = log
        .create_topic("t", 2, configs, false)
        .await
        .unwrap()
        .unwrap();
    produce(&log, "t", 0, 5).await;
    produce(&log, "t", 1, 3).await;
    log.sync_table(&topic).await.unwrap();
    let table = log.tables().load("t").await.unwrap().unwrap();
    let snaps = Tables::snapshot_offsets(&table.metadata);
    let last = snaps.last().unwrap();
    assert_eq!(last.offsets, BTreeMap::from([(0, 4), (1, 2)]));
    assert!(table.metadata.location().ends_with(&log.table_key(&topic)));

    produce(&log, "t", 0, 5).await;
    log.sync_table(&topic).await.unwrap();
    let table = log.tables().load("t").await.unwrap().unwrap();
    let last = Tables::snapshot_offsets(&table.metadata).pop().unwrap();
    assert_eq!(last.offsets, BTreeMap::from([(0, 9), (1, 2)]));
    assert_eq!(last.operation, "append");
    let summary = &table
        .metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(summary["total-records"], "13");

    // Files under the data prefix, before DeleteRecords.
    let data_files = || -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.path().join("objects")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    };
    assert_eq!(data_files().len(), 3);

    // Each produce above was its own flush, so its own file. Dropping
    // partition 0 below offset 5 frees the first file from the log; the
    // table holds it until a delete snapshot removes it, and with zero
    // snapshot retention the older snapshots expire in the same round and
    // the file goes.
    log.delete_records(&topic, 0, 5).await.unwrap();
    assert_eq!(data_files().len(), 3, "the table still holds the file");
    log.sync_table(&topic).await.unwrap();
    let table = log.tables().load("t").await.unwrap().unwrap();
    let snap = table.metadata.current_snapshot().unwrap();
    assert_eq!(snap.summary().operation.as_str(), "delete");
    assert_eq!(snap.summary().additional_properties["total-records"], "8");
    assert_eq!(data_files().len(), 2);
    let table = log.tables().load("t").await.unwrap().unwrap();
    assert_eq!(
        table.metadata.snapshots().count(),
        1,
        "older snapshots expired"
    );
    // The table still reads after expiry: its manifests are intact.
    let list = table
        .metadata
        .current_snapshot()
        .unwrap()
        .manifest_list()
        .to_string();
    assert!(log.tables().io().file_io().exists(&list).await.unwrap());
}
