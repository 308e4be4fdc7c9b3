//! The shared intake: small flushes of many topics share one object per
//! round, Kafka reads serve from it, and a table commit moves each topic's
//! rows into files of its own and deletes the intake objects, keeping every
//! record exactly once in offset order, across a reopen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::log::{now_ms, Log, LogConfig};
use floe_storage::table::Tables;

mod common;

const TOPICS: [&str; 3] = ["a", "b", "c"];
const PARTITIONS: i32 = 2;

async fn open(dir: &Path) -> Arc<Log> {
    open_with(dir, LogConfig::default().intake_direct_bytes).await
}

/// [`open`], flushes of `direct_bytes` or more written to files of their
/// own.
async fn open_with(dir: &Path, direct_bytes: usize) -> Arc<Log> {
    let log = common::open_log(dir, |cfg| {
        cfg.maintenance_interval = Duration::from_secs(3600);
        cfg.memory.tail_cache = 0;
        cfg.flush_linger = Duration::from_millis(50);
        cfg.intake_direct_bytes = direct_bytes;
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    log
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn intake_objects(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("objects").join("intake"))
}

/// Topic data files (not intake objects, not table metadata).
fn topic_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("objects"))
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|x| x == "parquet")
                && !p.components().any(|c| c.as_os_str() == "intake")
        })
        .collect()
}

/// One flush in every topic at once: `n` records per partition.
async fn round(log: &Log, counter: &mut BTreeMap<(String, i32), i64>, n: i64) {
    let mut pending = Vec::new();
    for t in TOPICS {
        for p in 0..PARTITIONS {
            let next = counter.entry((t.to_string(), p)).or_insert(0);
            let mut b = BatchBuilder::new(0, now_ms(), 0);
            for i in 0..n {
                let v = format!("{t}{p}-{}", *next + i);
                b.push(i, now_ms(), None, Some(v.as_bytes()), &[]);
            }
            *next += n;
            pending.push(log.append(t, p, b.finish(0)).await.unwrap());
        }
    }
    for p in pending {
        p.committed().await.unwrap();
    }
}

async fn assert_complete(log: &Arc<Log>, counter: &BTreeMap<(String, i32), i64>) {
    for t in TOPICS {
        let topic = log.topic(t).unwrap();
        for p in 0..PARTITIONS {
            let mut got = Vec::new();
            let mut next = 0;
            loop {
                let r = log.read(&topic, p, next, 64 * 1024).await.unwrap();
                if next >= r.high_watermark {
                    break;
                }
                assert!(!r.batches.is_empty(), "{t}/{p}: nothing at {next}");
                for raw in r.batches {
                    for batch in split_batches(raw).unwrap() {
                        for rec in batch.records(1 << 30).unwrap() {
                            let offset = batch.header.base_offset + rec.offset_delta as i64;
                            got.push((offset, rec.value.unwrap().to_vec()));
                            next = offset + 1;
                        }
                    }
                }
            }
            let want: Vec<(i64, Vec<u8>)> = (0..counter[&(t.to_string(), p)])
                .map(|i| (i, format!("{t}{p}-{i}").into_bytes()))
                .collect();
            assert_eq!(got, want, "{t}/{p}");
        }
        let report = log.check_topic(&topic).await.unwrap();
        assert!(report.problems().is_empty(), "{:?}", report.problems());
    }
}

/// Every topic's table holds every record: the last snapshot's offsets
/// reach each partition's last record and it counts them all.
async fn assert_tables_complete(log: &Arc<Log>, counter: &BTreeMap<(String, i32), i64>) {
    for t in TOPICS {
        let table = log.tables().load(t).await.unwrap().unwrap();
        let last = Tables::snapshot_offsets(&table.metadata).pop().unwrap();
        let want: BTreeMap<i32, i64> = (0..PARTITIONS)
            .map(|p| (p, counter[&(t.to_string(), p)] - 1))
            .collect();
        assert_eq!(last.offsets, want, "{t}");
        let summary = &table
            .metadata
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties;
        let rows: i64 = (0..PARTITIONS).map(|p| counter[&(t.to_string(), p)]).sum();
        assert_eq!(summary["total-records"], rows.to_string(), "{t}");
    }
}

/// Creates [`TOPICS`], with tables that commit later than the test runs.
async fn create_topics(log: &Arc<Log>) {
    let configs = BTreeMap::from([(
        "floe.iceberg.commit.interval.ms".to_string(),
        "3600000".to_string(),
    )]);
    for t in TOPICS {
        log.create_topic(t, PARTITIONS, configs.clone(), false)
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn small_flushes_share_an_object_and_move_into_each_topics_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    create_topics(&log).await;

    let mut counter = BTreeMap::new();
    const ROUNDS: usize = 8;
    for _ in 0..ROUNDS {
        round(&log, &mut counter, 10).await;
    }
    // 3 topics flushing together: one object per round (a round may split
    // across a tick now and then), never one per topic.
    let objects = intake_objects(dir.path()).len();
    assert!(
        (ROUNDS..=ROUNDS + 3).contains(&objects),
        "{objects} intake objects for {ROUNDS} rounds of {} topics",
        TOPICS.len()
    );
    assert!(
        topic_files(dir.path()).is_empty(),
        "small flushes went to the intake"
    );
    assert_complete(&log, &counter).await;

    // A table commit moves each topic's rows into its own file, lists that
    // file, and the intake objects go once no chunk of them is left.
    for t in TOPICS {
        log.sync_table(&log.topic(t).unwrap()).await.unwrap();
    }
    assert!(
        intake_objects(dir.path()).is_empty(),
        "{:?}",
        intake_objects(dir.path())
    );
    assert_eq!(topic_files(dir.path()).len(), TOPICS.len());
    assert_tables_complete(&log, &counter).await;
    assert_complete(&log, &counter).await;

    // Flushes after the move land in the intake again; a reopen (as after
    // a crash: nothing was moved) reads them from there, and the next
    // commit moves them.
    round(&log, &mut counter, 7).await;
    round(&log, &mut counter, 7).await;
    assert!(!intake_objects(dir.path()).is_empty());
    drop(log);
    let log = open(dir.path()).await;
    assert_complete(&log, &counter).await;
    for t in TOPICS {
        log.sync_table(&log.topic(t).unwrap()).await.unwrap();
    }
    assert!(intake_objects(dir.path()).is_empty());
    assert_complete(&log, &counter).await;
    assert_tables_complete(&log, &counter).await;
}

#[tokio::test]
async fn deleting_records_releases_intake_objects() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    create_topics(&log).await;
    let mut counter = BTreeMap::new();
    round(&log, &mut counter, 5).await;
    let before = intake_objects(dir.path());
    assert!(!before.is_empty());
    // Dropping every record of every topic frees the chunks; the objects
    // go with the last of them.
    for t in TOPICS {
        let topic = log.topic(t).unwrap();
        for p in 0..PARTITIONS {
            log.delete_records(&topic, p, 5).await.unwrap();
        }
    }
    assert!(
        intake_objects(dir.path()).is_empty(),
        "{:?}",
        intake_objects(dir.path())
    );
    // A produce after it still works and reads back.
    round(&log, &mut counter, 3).await;
    for t in TOPICS {
        let topic = log.topic(t).unwrap();
        for p in 0..PARTITIONS {
            let r = log.read(&topic, p, 5, 64 * 1024).await.unwrap();
            assert_eq!(r.high_watermark, 8);
            assert!(!r.batches.is_empty());
        }
    }
}

#[tokio::test]
async fn files_written_between_chunks_move_with_them() {
    let dir = tempfile::tempdir().unwrap();
    // Rounds of 10 records go to the intake, rounds of 400 to files of
    // their own.
    let log = open_with(dir.path(), 4096).await;
    create_topics(&log).await;
    let mut counter = BTreeMap::new();
    for n in [10, 400, 10, 400, 10] {
        round(&log, &mut counter, n).await;
    }
    assert!(!intake_objects(dir.path()).is_empty());
    assert_eq!(topic_files(dir.path()).len(), 2 * TOPICS.len());
    assert_complete(&log, &counter).await;

    // The table commit moves each topic's chunks and the files between
    // them into one file: not a file per chunk.
    for t in TOPICS {
        log.sync_table(&log.topic(t).unwrap()).await.unwrap();
    }
    assert!(intake_objects(dir.path()).is_empty());
    assert_complete(&log, &counter).await;
    for t in TOPICS {
        let files: Vec<String> = log
            .meta()
            .files_in_order(t)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(files.len(), 1, "{t}: {files:?}");
    }
    // The files that moved along were never in a table: they are gone.
    assert_eq!(topic_files(dir.path()).len(), TOPICS.len());
    assert_tables_complete(&log, &counter).await;

    // The table lists a file of its own; a chunk after it and files after
    // the chunk move together at the next commit, across a reopen.
    round(&log, &mut counter, 10).await;
    round(&log, &mut counter, 400).await;
    drop(log);
    let log = open_with(dir.path(), 4096).await;
    for t in TOPICS {
        log.sync_table(&log.topic(t).unwrap()).await.unwrap();
    }
    assert!(intake_objects(dir.path()).is_empty());
    assert_complete(&log, &counter).await;
    assert_tables_complete(&log, &counter).await;
}
