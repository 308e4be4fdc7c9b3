//! Partitions that share row groups (a flush's small partitions) are read
//! back exactly, whether a read takes its own rows or slices a group that
//! an earlier read of another partition decoded and kept; and what is kept
//! counts against the read-ahead budget.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::log::{now_ms, Log};

mod common;

const PARTITIONS: i32 = 300;
const RECORDS: i64 = 4;

async fn open(dir: &Path) -> Arc<Log> {
    common::open_log(dir, |cfg| {
        cfg.maintenance_interval = Duration::from_secs(3600);
        cfg.memory.tail_cache = 0;
        cfg.flush_linger = Duration::from_millis(300);
    })
    .await
}

fn value(p: i32, offset: i64) -> Vec<u8> {
    let mut v = format!("{p}/{offset}/").into_bytes();
    v.resize(600, b'x');
    v
}

/// Reads partition `p` from `from` to its end, checking every record.
async fn read_back(log: &Arc<Log>, p: i32, from: i64) {
    let topic = log.topic("t").unwrap();
    let mut next = from;
    while next < RECORDS {
        let r = log.read(&topic, p, next, 1 << 20).await.unwrap();
        assert!(!r.batches.is_empty(), "partition {p}: nothing at {next}");
        for raw in r.batches {
            for batch in split_batches(raw).unwrap() {
                for rec in batch.records(1 << 30).unwrap() {
                    let offset = batch.header.base_offset + rec.offset_delta as i64;
                    assert_eq!(offset, next, "partition {p}");
                    assert_eq!(rec.value.as_deref(), Some(&value(p, offset)[..]));
                    next += 1;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_sharing_row_groups_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    log.create_topic("t", PARTITIONS, BTreeMap::new(), false)
        .await
        .unwrap();
    // Every partition's records in one flush: small runs sharing row groups.
    let mut pending = Vec::new();
    for p in 0..PARTITIONS {
        let mut batch = BatchBuilder::new(0, now_ms(), 0);
        for i in 0..RECORDS {
            batch.push(i, now_ms(), None, Some(&value(p, i)), &[]);
        }
        pending.push(log.append("t", p, batch.finish(0)).await.unwrap());
    }
    for w in pending {
        w.committed().await.unwrap();
    }
    drop(log);

    // Reopened: no tail cache, every read goes to the file.
    let log = open(dir.path()).await;
    for p in 0..PARTITIONS {
        read_back(&log, p, 0).await;
    }
    assert!(
        log.memory_use().read_ahead > 0,
        "shared row groups were kept for the partitions after the first"
    );
    // From the middle of each run, in another order.
    for p in (0..PARTITIONS).rev() {
        read_back(&log, p, 2).await;
    }
}
