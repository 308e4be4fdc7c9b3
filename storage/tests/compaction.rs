//! Compaction keeps every committed record exactly once and in offset
//! order, whatever order the files were written, compacted and taken into
//! the table in, and across a restart.
//!
//! The race this pins down (issue 13): a compaction picks its run while a
//! table commit is under way, so its output enters the log after files that
//! follow it in offset order and is not yet in the table when the next
//! compaction plans. Choosing runs by file creation time then merged files
//! around a hole, and the merged segment hid the records in the hole from
//! every reader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::faults::{Faults, FaultyStore};
use floe_storage::log::{now_ms, Log, LogConfig, TopicLog};
use floe_storage::memory::MemoryBudget;
use floe_storage::meta::sql::SqlStore;
use floe_storage::object::open_object_store;
use floe_storage::table::TableConfig;

const PARTITIONS: i32 = 2;

async fn open(dir: &std::path::Path, faults: &Faults) -> Arc<Log> {
    let objects = open_object_store(dir.join("objects").to_str().unwrap()).unwrap();
    let meta = Arc::new(SqlStore::sqlite(&dir.join("meta.db")).await.unwrap());
    let store = Arc::new(FaultyStore::new(objects.store.clone(), faults.clone()));
    let cfg = LogConfig {
        // This test runs maintenance and table commits itself.
        maintenance_interval: Duration::from_secs(3600),
        // Every read comes from the files.
        memory: MemoryBudget {
            tail_cache: 0,
            ..MemoryBudget::default()
        },
        // Every flush writes the topic's own file: this test is about
        // rewriting those.
        intake_direct_bytes: 0,
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            ..TableConfig::default()
        },
        ..LogConfig::default()
    };
    let log = Log::open(cfg, meta, store, objects.prefix).await.unwrap();
    // Let the maintenance pass at opening finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    log
}

/// One flush (one file) with `n` records in every partition, values
/// naming their partition and their order.
async fn flush(log: &Log, counter: &mut BTreeMap<i32, i64>, n: i64) {
    let mut pending = Vec::new();
    for p in 0..PARTITIONS {
        let next = counter.entry(p).or_insert(0);
        let mut b = BatchBuilder::new(0, now_ms(), 0);
        for i in 0..n {
            let v = format!("p{p}-{}", *next + i);
            b.push(i, now_ms(), None, Some(v.as_bytes()), &[]);
        }
        *next += n;
        pending.push(log.append("t", p, b.finish(0)).await.unwrap());
    }
    for p in pending {
        p.committed().await.unwrap();
    }
}

/// Every (offset, value) of a partition, read from offset 0 to the high
/// watermark the way a consumer does: each read starts after the last
/// record the previous one returned.
async fn read_all(log: &Arc<Log>, topic: &TopicLog, p: i32) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let r = log.read(topic, p, next, 64 * 1024).await.unwrap();
        if next >= r.high_watermark {
            return out;
        }
        assert!(
            !r.batches.is_empty(),
            "no records at {next} below {}",
            r.high_watermark
        );
        for raw in r.batches {
            for batch in split_batches(raw).unwrap() {
                for rec in batch.records(1 << 30).unwrap() {
                    let offset = batch.header.base_offset + rec.offset_delta as i64;
                    let value = String::from_utf8(rec.value.unwrap().to_vec()).unwrap();
                    out.push((offset, value));
                    next = offset + 1;
                }
            }
        }
    }
}

async fn assert_complete(log: &Arc<Log>, counter: &BTreeMap<i32, i64>) {
    let topic = log.topic("t").unwrap();
    for p in 0..PARTITIONS {
        let got = read_all(log, &topic, p).await;
        let want: Vec<(i64, String)> = (0..counter[&p]).map(|i| (i, format!("p{p}-{i}"))).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "partition {p}: records missing or doubled"
        );
        assert_eq!(got, want, "partition {p}");
    }
    let report = log.check_topic(&topic).await.unwrap();
    assert!(report.problems().is_empty(), "{:?}", report.problems());
}

/// Runs a compaction whose upload waits until a table commit has run.
async fn compact_across_a_table_commit(log: &Arc<Log>, faults: &Faults) {
    let topic = log.topic("t").unwrap();
    faults.hold_puts("-compacted");
    let (l, t) = (log.clone(), topic.clone());
    let mut compaction = tokio::spawn(async move { l.compact(&t).await });
    tokio::select! {
        _ = faults.until_held() => {}
        done = &mut compaction => panic!("the compaction ended before its upload: {done:?}"),
    }
    log.sync_table(&topic).await.unwrap();
    faults.release("-compacted");
    let stats = compaction.await.unwrap().unwrap();
    assert_eq!(stats.files_out, 1, "{stats:?}");
}

#[tokio::test]
async fn compaction_never_merges_files_around_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let log = open(dir.path(), &faults).await;
    let configs = BTreeMap::from([(
        "floe.iceberg.commit.interval.ms".to_string(),
        "3600000".to_string(),
    )]);
    let topic = log
        .create_topic("t", PARTITIONS, configs, false)
        .await
        .unwrap()
        .unwrap();
    // The table committer's first visit of a new topic, before any flush.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut counter = BTreeMap::new();

    // A, B in the table; C, D not yet.
    flush(&log, &mut counter, 10).await;
    flush(&log, &mut counter, 10).await;
    log.sync_table(&topic).await.unwrap();
    flush(&log, &mut counter, 10).await;
    flush(&log, &mut counter, 10).await;
    // X = A+B, committed after a table commit took C and D: X is the only
    // file not in the table.
    compact_across_a_table_commit(&log, &faults).await;
    // E, F; then Y = C+D (X, not in the table, ends that run), committed
    // after a table commit took X, E and F.
    flush(&log, &mut counter, 10).await;
    flush(&log, &mut counter, 10).await;
    compact_across_a_table_commit(&log, &faults).await;
    assert_complete(&log, &counter).await;

    // X, E and F are in the table, Y is not. Y lies between X and E in
    // every partition: no run may hold X and E without Y.
    log.compact(&topic).await.unwrap();
    assert_complete(&log, &counter).await;

    // Everything again, as often as compaction finds work, then after a
    // restart.
    for _ in 0..3 {
        log.sync_table(&topic).await.unwrap();
        log.compact(&topic).await.unwrap();
        flush(&log, &mut counter, 5).await;
        assert_complete(&log, &counter).await;
    }
    drop(topic);
    drop(log);
    let log = open(dir.path(), &faults).await;
    assert_complete(&log, &counter).await;
    let topic = log.topic("t").unwrap();
    log.sync_table(&topic).await.unwrap();
    let stats = log.compact(&topic).await.unwrap();
    assert!(stats.files_in >= 2, "{stats:?}");
    assert_complete(&log, &counter).await;
}
