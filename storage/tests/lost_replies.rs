//! A flush commit whose reply is lost after the metadata store made it (as
//! when the connection to PostgreSQL drops during COMMIT): the produce is
//! acknowledged (the store holds it), its file is kept, and the topic goes
//! on taking writes without a restart. Treating such a flush as never
//! committed deleted the file of a committed flush written to a file of its
//! own, and left the partition's in-memory end behind the stored one, so
//! that every later flush was refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::faults::{FaultRates, Faults};
use floe_storage::log::{now_ms, Log, LogConfig};
use floe_storage::meta::faulty::FaultyMetadata;
use floe_storage::meta::sql::SqlStore;
use floe_storage::object::open_object_store;
use floe_storage::table::TableConfig;

async fn open(dir: &std::path::Path, faults: &Faults, direct_bytes: usize) -> Arc<Log> {
    let objects = open_object_store(dir.join("objects").to_str().unwrap()).unwrap();
    let store = Arc::new(SqlStore::sqlite(&dir.join("meta.db")).await.unwrap());
    let meta = Arc::new(FaultyMetadata::new(store, faults.clone()));
    let cfg = LogConfig {
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            ..TableConfig::default()
        },
        maintenance_interval: Duration::from_secs(3600),
        flush_linger: Duration::from_millis(20),
        intake_direct_bytes: direct_bytes,
        ..LogConfig::default()
    };
    Log::open(cfg, meta, objects.store, objects.prefix)
        .await
        .unwrap()
}

/// The topics: their flushes of one round share a group commit, so a lost
/// reply is one for several flushes.
const TOPICS: [&str; 2] = ["t", "u"];

/// Appends `n` records to each partition of each topic (values `p-i`) and
/// waits for their acknowledgement.
async fn produce(log: &Log, next: &mut BTreeMap<i32, i64>, n: i64) {
    let mut pending = Vec::new();
    for p in 0..2 {
        let from = next.entry(p).or_insert(0);
        for topic in TOPICS {
            let mut b = BatchBuilder::new(0, now_ms(), 0);
            for i in 0..n {
                let value = format!("{p}-{}", *from + i);
                b.push(i, now_ms(), None, Some(value.as_bytes()), &[]);
            }
            pending.push(log.append(topic, p, b.finish(0)).await.unwrap());
        }
        *from += n;
    }
    for p in pending {
        p.committed()
            .await
            .expect("a flush the store holds is acknowledged");
    }
}

async fn assert_complete(log: &Arc<Log>, next: &BTreeMap<i32, i64>) {
    for name in TOPICS {
        assert_topic_complete(log, name, next).await;
    }
}

async fn assert_topic_complete(log: &Arc<Log>, name: &str, next: &BTreeMap<i32, i64>) {
    let topic = log.topic(name).unwrap();
    for (&p, &n) in next {
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < n {
            let r = log.read(&topic, p, offset, 1 << 20).await.unwrap();
            assert!(!r.batches.is_empty(), "partition {p}: nothing at {offset}");
            for raw in r.batches {
                for batch in split_batches(raw).unwrap() {
                    for rec in batch.records(1 << 30).unwrap() {
                        offset = batch.header.base_offset + rec.offset_delta as i64;
                        got.push(String::from_utf8(rec.value.unwrap().to_vec()).unwrap());
                        offset += 1;
                    }
                }
            }
        }
        let want: Vec<String> = (0..n).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(got, want, "{name} partition {p}");
    }
    let report = log.check_topic(&topic).await.unwrap();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
}

async fn every_lost_reply_is_settled(direct_bytes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let log = open(dir.path(), &faults, direct_bytes).await;
    for topic in TOPICS {
        log.create_topic(topic, 2, BTreeMap::new(), false)
            .await
            .unwrap();
    }
    let mut next = BTreeMap::new();
    produce(&log, &mut next, 50).await;
    // Every commit's reply is lost for a while, then none.
    faults
        .set_rates(FaultRates {
            commit_reply_lost: 1.0,
            ..FaultRates::default()
        })
        .unwrap();
    for _ in 0..5 {
        produce(&log, &mut next, 200).await;
    }
    assert!(faults.counts().commit_replies_lost >= 5);
    faults.set_rates(FaultRates::default()).unwrap();
    produce(&log, &mut next, 50).await;
    assert_complete(&log, &next).await;
    // And so it stays after a reopen.
    drop(log);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = open(dir.path(), &faults, direct_bytes).await;
    assert_complete(&log, &next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_of_flushes_to_files_of_their_own() {
    every_lost_reply_is_settled(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_of_flushes_into_the_intake() {
    every_lost_reply_is_settled(64 << 20).await;
}
