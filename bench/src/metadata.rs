//! `floe-bench --metadata`: metadata-store transactions per second at
//! saturation, SQLite (a file in a temporary directory, as `floe serve`
//! uses it) against PostgreSQL (`--metadata-postgres`, a fresh database).
//!
//! The transaction is the one every flush of every topic makes: the commit
//! of a flush (high watermark advanced under the leader-epoch check, one
//! segment, the producer's state), the write that bounds how many
//! flushes per second a cluster can make. `--metadata-clients` writers run
//! at once, each on a topic of its own (as brokers' flushes of different
//! topics do), for `--metadata-secs`; printed per store and concurrency:
//! commits per second and commit latency p50/p99.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use floe_storage::meta::postgres::PostgresOptions;
use floe_storage::meta::sql::SqlStore;
use floe_storage::meta::{
    FlushCommit, MetadataStore, ProducerStateRecord, SegmentRecord, TopicRecord,
};

use crate::{now_ms, percentile, Args};

/// Runs the benchmark on SQLite, then on PostgreSQL when a URL is given.
pub(crate) async fn run(args: &Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("floe-bench-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut stores: Vec<(&str, Arc<dyn MetadataStore>)> = vec![(
        "sqlite",
        Arc::new(SqlStore::sqlite(&dir.join("metadata.db")).await?),
    )];
    if let Some(url) = &args.metadata_postgres {
        let options = PostgresOptions {
            max_connections: 64,
            ..PostgresOptions::default()
        };
        let store = SqlStore::postgres(url, &options)
            .await
            .context("opening PostgreSQL")?;
        stores.push(("postgres", Arc::new(store)));
    }
    println!(
        "metadata-store flush commits, {} s per run:",
        args.metadata_secs
    );
    println!("store     clients  commits/s   p50 ms   p99 ms");
    for (name, store) in &stores {
        let mut prepared = 0;
        for &clients in &args.metadata_clients {
            // Topics of their own for each run's writers, led by broker 1.
            for w in prepared..clients {
                store
                    .create_topic(&topic(w), 1, 1)
                    .await
                    .with_context(|| format!("creating topic {w}"))?;
            }
            if clients > prepared {
                store.claim_leadership(1).await?;
                prepared = clients;
            }
            let (rate, lat) = saturate(store.clone(), clients, args.metadata_secs).await?;
            println!(
                "{name:<9} {clients:>7} {rate:>10.0} {:>8.2} {:>8.2}",
                percentile(&lat, 0.50),
                percentile(&lat, 0.99)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn topic(w: usize) -> TopicRecord {
    TopicRecord {
        name: format!("bench-{w}"),
        topic_id: format!("00000000-0000-0000-0000-{w:012}"),
        configs: BTreeMap::new(),
        created_ms: now_ms(),
    }
}

/// `clients` writers committing flushes back to back for `secs`; returns
/// commits per second and the sorted latencies in microseconds.
async fn saturate(
    store: Arc<dyn MetadataStore>,
    clients: usize,
    secs: u64,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..clients {
        let store = store.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let name = topic(w).name;
            let epoch = store
                .list_partitions(&name)
                .await?
                .first()
                .map(|p| (p.leader_epoch, p.high_watermark))
                .context("the topic has no partition")?;
            let (epoch, mut hw) = epoch;
            let mut latencies = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let commit = flush(&name, epoch, hw, seq);
                let t = Instant::now();
                store.commit_flush(&commit).await?;
                latencies.push(t.elapsed().as_micros() as u64);
                hw += 10;
                seq += 10;
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok((all.len() as f64 / elapsed, all))
}

/// A flush of ten records at `hw` of partition 0 of `topic`.
fn flush(topic: &str, epoch: i32, hw: i64, seq: i32) -> FlushCommit {
    let path = format!("topics/{topic}/data/{hw}.parquet");
    let now = now_ms();
    FlushCommit {
        topic: topic.into(),
        path: path.clone(),
        size_bytes: 10_240,
        leader_id: 1,
        high_watermarks: vec![(0, epoch, hw + 10)],
        segments: vec![SegmentRecord {
            topic: topic.into(),
            partition: 0,
            base_offset: hw,
            last_offset: hw + 9,
            record_count: 10,
            path,
            file_size: 10_240,
            row_group: 0,
            first_row: 0,
            min_timestamp: now,
            max_timestamp: now,
            size_bytes: 10_240,
            append_time_ms: now,
        }],
        producers: vec![ProducerStateRecord {
            topic: topic.into(),
            partition: 0,
            producer_id: 1,
            producer_epoch: 0,
            recent: vec![(seq, seq + 9, hw)],
        }],
        open_transactions: vec![],
        markers: vec![],
        now_ms: now,
    }
}
