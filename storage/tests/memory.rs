//! The broker's memory is bounded as a whole: a thousand partitions
//! produced to at once keep the produce buffers within their budget
//! (producers wait, none fails) and the tail caches within theirs, and
//! every record is there afterwards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::log::{now_ms, Log, LogConfig};
use floe_storage::memory::MemoryBudget;
use floe_storage::meta::sql::SqlStore;
use floe_storage::object::open_object_store;
use floe_storage::table::TableConfig;

const TOPICS: usize = 10;
const PARTITIONS: i32 = 100;
const BATCHES: usize = 4;
const RECORDS: usize = 8;
const VALUE: usize = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_partitions_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let objects = open_object_store(dir.path().join("objects").to_str().unwrap()).unwrap();
    let meta = Arc::new(SqlStore::sqlite(&dir.path().join("meta.db")).await.unwrap());
    let budget = MemoryBudget {
        buffers: 256 * 1024,
        tail_cache: 512 * 1024,
        read_ahead: 64 * 1024,
        footers: 1024 * 1024,
        intake: 1024 * 1024,
    };
    let cfg = LogConfig {
        memory: budget,
        flush_linger: Duration::from_millis(20),
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            ..TableConfig::default()
        },
        ..LogConfig::default()
    };
    let log = Log::open(cfg, meta, objects.store, objects.prefix)
        .await
        .unwrap();
    let configs = BTreeMap::from([(
        "floe.iceberg.commit.interval.ms".to_string(),
        "3600000".to_string(),
    )]);
    for t in 0..TOPICS {
        log.create_topic(&format!("t{t}"), PARTITIONS, configs.clone(), false)
            .await
            .unwrap();
    }

    // Watch what the log holds while every partition is produced to.
    let done = Arc::new(AtomicBool::new(false));
    let (most_buffered, most_cached, most_intake) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let watcher = {
        let (log, done) = (log.clone(), done.clone());
        let (b, c, i) = (
            most_buffered.clone(),
            most_cached.clone(),
            most_intake.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let used = log.memory_use();
                b.fetch_max(used.buffers, Ordering::SeqCst);
                c.fetch_max(used.tail_cache, Ordering::SeqCst);
                i.fetch_max(used.intake, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut producers = Vec::new();
    for t in 0..TOPICS {
        for p in 0..PARTITIONS {
            let log = log.clone();
            producers.push(tokio::spawn(async move {
                let topic = format!("t{t}");
                for b in 0..BATCHES {
                    let mut batch = BatchBuilder::new(0, now_ms(), 0);
                    for i in 0..RECORDS {
                        let value = format!("{topic}/{p}/{}", b * RECORDS + i);
                        let mut bytes = value.into_bytes();
                        bytes.resize(VALUE, b'.');
                        batch.push(i as i64, now_ms(), None, Some(&bytes), &[]);
                    }
                    let pending = log.append(&topic, p, batch.finish(0)).await.unwrap();
                    pending.committed().await.unwrap();
                }
            }));
        }
    }
    for p in producers {
        p.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    // Produced: about 16 MiB, 64 times the buffer budget. An append that
    // found room adds its request whole, and the two worker threads may
    // both do so at once: the bound holds to within two requests.
    let request = RECORDS * (VALUE + 64) + 61;
    let buffered = most_buffered.load(Ordering::SeqCst);
    assert!(
        buffered <= budget.buffers + 2 * request,
        "buffers held {buffered} bytes at most, budget {}",
        budget.buffers
    );
    assert!(
        buffered > budget.buffers / 2,
        "the budget was reached: {buffered}"
    );
    let cached = most_cached.load(Ordering::SeqCst);
    assert!(
        cached <= budget.tail_cache,
        "tail caches held {cached} bytes at most, budget {}",
        budget.tail_cache
    );
    let intake = most_intake.load(Ordering::SeqCst);
    assert!(
        intake <= budget.intake && intake > 0,
        "intake objects kept: {intake} bytes at most, budget {}",
        budget.intake
    );
    assert_eq!(log.memory_use().buffers, 0, "every buffer was released");

    // Every record is there, in order.
    for t in 0..TOPICS {
        let topic = log.topic(&format!("t{t}")).unwrap();
        for p in 0..PARTITIONS {
            let mut next = 0;
            let mut seen = 0;
            while next < (BATCHES * RECORDS) as i64 {
                let r = log.read(&topic, p, next, 1 << 20).await.unwrap();
                assert!(!r.batches.is_empty(), "t{t}/{p}: nothing at {next}");
                for raw in r.batches {
                    for batch in split_batches(raw).unwrap() {
                        for rec in batch.records(1 << 30).unwrap() {
                            let offset = batch.header.base_offset + rec.offset_delta as i64;
                            let value = rec.value.unwrap();
                            let want = format!("t{t}/{p}/{offset}");
                            assert_eq!(&value[..want.len()], want.as_bytes());
                            assert_eq!(offset, next);
                            next += 1;
                            seen += 1;
                        }
                    }
                }
            }
            assert_eq!(seen, BATCHES * RECORDS);
        }
    }
}
