//! `floe-bench`: starts a floe broker (local-directory object store) and
//! drives it with librdkafka (the `rdkafka` crate).
//!
//! Phases, each printed as it finishes:
//! 1. throughput: produce N records of `--record-bytes` as fast as the
//!    producer can with acks=all over `--partitions` partitions;
//! 2. latency: produce at a fixed rate while a consumer tails the topic;
//!    produce-ack and end-to-end latency percentiles;
//! 3. catch-up: restart the broker (so the in-memory tail cache is empty) and
//!    read everything from offset 0: the Parquet read path;
//! 4. storage: Parquet bytes on disk per input byte (key + value).
//!
//! Payloads are random bytes by default: incompressible, the honest worst
//! case for both CPU and the bytes ratio. `--payload text` uses JSON-like
//! text instead.

mod cost;
mod metadata;
mod schemas;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use floe_tests::Floe;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Records in the throughput phase.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Records per second in the latency phase.
    #[arg(long, default_value_t = 20_000)]
    latency_rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// random | text
    #[arg(long, default_value = "random")]
    payload: String,
    /// Run the consumer group benchmark instead (join-to-stable times,
    /// commit throughput).
    #[arg(long)]
    groups: bool,
    /// Run the schema benchmark instead (validation and redaction cost).
    #[arg(long)]
    schemas: bool,
    /// Run the object-storage cost benchmark instead (`cost.rs`).
    #[arg(long)]
    cost: bool,
    /// Topic counts of the cost benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    cost_topics: Vec<usize>,
    /// Total produce rate of the cost benchmark, MB/s.
    #[arg(long, default_value_t = 2.0)]
    cost_rate_mb: f64,
    /// Seconds of each cost run.
    #[arg(long, default_value_t = 20)]
    cost_secs: u64,
    /// Run the metadata-store benchmark instead (`metadata.rs`).
    #[arg(long)]
    metadata: bool,
    /// PostgreSQL URL for the metadata-store benchmark (SQLite only without).
    #[arg(long)]
    metadata_postgres: Option<String>,
    /// Concurrent writers of each metadata-store run.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    metadata_clients: Vec<usize>,
    /// Seconds of each metadata-store run.
    #[arg(long, default_value_t = 5)]
    metadata_secs: u64,
    /// Extra arguments for `floe serve` (e.g. --broker-arg=--flush-linger-ms=20).
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    broker_args: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Generates every record's value afresh, so no two records share bytes a
/// compressor could exploit (a small pool of repeated values would make
/// Parquet's zstd look far better than it is).
pub(crate) struct Payloads {
    kind: String,
    size: usize,
    seed: u64,
}

const WORDS: [&str; 10] = [
    "order", "customer", "amount", "status", "shipped", "pending", "eu-west", "sku", "price",
    "true",
];

impl Payloads {
    pub(crate) fn new(kind: &str, size: usize) -> anyhow::Result<Self> {
        if kind != "random" && kind != "text" {
            bail!("unknown --payload {kind}: use random or text");
        }
        if size < 8 {
            bail!("--record-bytes must be at least 8");
        }
        Ok(Payloads {
            kind: kind.to_string(),
            size,
            seed: 0x2545F4914F6CDD1D,
        })
    }

    fn next_u64(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    pub(crate) fn fill(&mut self, out: &mut Vec<u8>) {
        out.clear();
        if self.kind == "random" {
            while out.len() < self.size {
                let v = self.next_u64();
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            // JSON-like text, fresh per record: cheap to make, so the
            // producer is not the bottleneck.
            while out.len() < self.size {
                let r = self.next_u64();
                out.push(b'"');
                out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
                out.extend_from_slice(b"\":");
                let mut n = (r >> 8) % 100_000;
                let start = out.len();
                loop {
                    out.push(b'0' + (n % 10) as u8);
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                out[start..].reverse();
                out.push(b',');
            }
        }
        out.truncate(self.size);
    }
}

#[derive(Default)]
pub(crate) struct Acks {
    latencies_us: Mutex<Vec<u64>>,
    errors: AtomicU64,
    done: AtomicU64,
}

struct Ctx(Arc<Acks>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        if r.is_err() {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = sent.elapsed().as_micros() as u64;
        if let Ok(mut l) = self.0.latencies_us.lock() {
            l.push(us);
        }
        self.0.done.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn producer(bootstrap: &str, acks: Arc<Acks>) -> anyhow::Result<ThreadedProducer<Ctx>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("compression.type", "none")
        .create_with_context(Ctx(acks))?)
}

/// Takes the samples collected so far, sorted.
pub(crate) fn sorted_samples(samples: &Mutex<Vec<u64>>) -> anyhow::Result<Vec<u64>> {
    let mut v = std::mem::take(
        &mut *samples
            .lock()
            .map_err(|_| anyhow::anyhow!("sample lock poisoned"))?,
    );
    v.sort_unstable();
    Ok(v)
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub(crate) fn produce(p: &ThreadedProducer<Ctx>, topic: &str, part: i32, key: &[u8], value: &[u8]) {
    let mut rec = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
        .key(key)
        .payload(value)
        .partition(part);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, back)) => {
                rec = back;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Consumers of `group` subscribed to `topic`, created at once.
/// A consumer reading every partition of `topic` from the beginning with
/// assign() (no group membership), with `extra` settings on top.
pub(crate) fn assigned_reader(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    extra: &[(&str, &str)],
) -> anyhow::Result<BaseConsumer> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer = cfg.create()?;
    let mut tpl = TopicPartitionList::new();
    for part in 0..partitions {
        tpl.add_partition_offset(topic, part, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

fn group_members(
    bootstrap: &str,
    group: &str,
    topic: &str,
    n: usize,
) -> anyhow::Result<Vec<BaseConsumer>> {
    (0..n)
        .map(|_| {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "500")
                .create()?;
            c.subscribe(&[topic])?;
            Ok(c)
        })
        .collect()
}

/// Polls every member until each owns partitions and together they own all
/// of them exactly once; returns how long that took.
fn wait_stable(
    members: &[BaseConsumer],
    partitions: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        for m in members {
            let _ = m.poll(Duration::from_millis(1));
        }
        let owned: Vec<usize> = members
            .iter()
            .map(|m| m.assignment().map(|a| a.count()).unwrap_or(0))
            .collect();
        if owned.iter().all(|&o| o > 0) && owned.iter().sum::<usize>() == partitions {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("group did not become stable in {timeout:?}")
}

/// Starts the broker with `--broker-arg`s.
pub(crate) fn start_broker(args: &Args) -> anyhow::Result<Floe> {
    let broker_args: Vec<&str> = args.broker_args.iter().map(String::as_str).collect();
    Floe::start(&broker_args).context("starting floe")
}

/// Creates topics, failing on any refusal.
pub(crate) fn create_topics(floe: &Floe, topics: &[NewTopic<'_>]) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &floe.bootstrap)
        .create()?;
    for r in rt.block_on(admin.create_topics(topics, &AdminOptions::new()))? {
        if let Err(e) = r {
            bail!("create topic: {e:?}");
        }
    }
    Ok(())
}

fn run_groups(args: &Args) -> anyhow::Result<()> {
    let floe = start_broker(args)?;
    let partitions = 60;
    create_topics(
        &floe,
        &[NewTopic::new(
            "groups",
            partitions,
            TopicReplication::Fixed(1),
        )],
    )?;
    println!(
        "floe-bench --groups: {} cores, topic of {partitions} partitions, classic protocol, range assignor",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    for n in [3usize, 30] {
        let group = format!("bench-{n}");
        let t0 = Instant::now();
        let members = group_members(&floe.bootstrap, &group, "groups", n)?;
        let cold = wait_stable(&members, partitions as usize, Duration::from_secs(120))?;
        let _ = t0;
        let mut all = members;
        all.extend(group_members(&floe.bootstrap, &group, "groups", 1)?);
        let join = wait_stable(&all, partitions as usize, Duration::from_secs(120))?;
        println!(
            "{n:>2} members: cold start to stable {:>7.0} ms (includes the initial rebalance delay)   one more member joining to stable again {:>6.0} ms",
            cold.as_secs_f64() * 1e3,
            join.as_secs_f64() * 1e3
        );
    }
    // Commit throughput: synchronous commits of 8 partitions each, one
    // member, so every commit is a metadata-store transaction in turn.
    let members = group_members(&floe.bootstrap, "bench-commits", "groups", 1)?;
    wait_stable(&members, partitions as usize, Duration::from_secs(60))?;
    let c = &members[0];
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        let mut tpl = TopicPartitionList::new();
        for p in 0..8 {
            tpl.add_partition_offset("groups", p, Offset::Offset(commits as i64))?;
        }
        c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)?;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "commits: {:.0} synchronous commits/s (8 partitions each, one member)",
        commits as f64 / secs
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.groups {
        return run_groups(&args);
    }
    if args.schemas {
        return schemas::run(&args);
    }
    if args.cost {
        return cost::run(&args);
    }
    if args.metadata {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(metadata::run(&args));
    }
    let mut payloads = Payloads::new(&args.payload, args.record_bytes)?;
    let mut value = Vec::with_capacity(args.record_bytes + 16);
    let mut floe = start_broker(&args)?;
    println!(
        "floe-bench: {} cores, {} records x {} B ({} payload), {} partitions, acks=all, local-directory object store",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.records,
        args.record_bytes,
        args.payload,
        args.partitions
    );
    let topics =
        ["bench", "latency"].map(|t| NewTopic::new(t, args.partitions, TopicReplication::Fixed(1)));
    create_topics(&floe, &topics)?;

    // 1. Throughput.
    let acks = Arc::new(Acks::default());
    let p = producer(&floe.bootstrap, acks.clone())?;
    let start = Instant::now();
    let mut input_bytes = 0u64;
    for i in 0..args.records {
        let key = (i % 100_000).to_be_bytes();
        payloads.fill(&mut value);
        input_bytes += (key.len() + value.len()) as u64;
        produce(
            &p,
            "bench",
            (i % args.partitions as u64) as i32,
            &key,
            &value,
        );
    }
    p.flush(Duration::from_secs(300))?;
    let secs = start.elapsed().as_secs_f64();
    if acks.errors.load(Ordering::Relaxed) > 0 {
        bail!("{} produce errors", acks.errors.load(Ordering::Relaxed));
    }
    let lat = sorted_samples(&acks.latencies_us)?;
    println!(
        "produce (max rate):   {:>8.1} MB/s  {:>9.0} records/s  ack p50 {:.1} ms  p99 {:.1} ms (includes client queueing at saturation)",
        input_bytes as f64 / secs / 1e6,
        args.records as f64 / secs,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99)
    );
    drop(p);

    // 2. Latency at a fixed rate, with a tailing consumer.
    let acks = Arc::new(Acks::default());
    let p = producer(&floe.bootstrap, acks.clone())?;
    let consumer = assigned_reader(
        &floe.bootstrap,
        "latency",
        args.partitions,
        &[("fetch.wait.max.ms", "100")],
    )?;
    let total = args.latency_rate * args.latency_secs;
    let e2e: Arc<Mutex<Vec<u64>>> = Arc::default();
    let e2e_reader = e2e.clone();
    // Let the consumer finish its start-up (offset lookup, first fetches)
    // before producing, so end-to-end figures measure the tail, not the join.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(2) {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let reader = std::thread::spawn(move || {
        let mut seen = 0u64;
        let deadline = Instant::now() + Duration::from_secs(args.latency_secs + 60);
        while seen < total && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let sent = m
                    .payload()
                    .and_then(|v| v.get(..8))
                    .map(|b| i64::from_be_bytes(b.try_into().unwrap_or_default()));
                if let Some(sent) = sent {
                    let us = ((now_ms() - sent).max(0) * 1000) as u64;
                    if let Ok(mut v) = e2e_reader.lock() {
                        v.push(us);
                    }
                }
                seen += 1;
            }
        }
        seen
    });
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.latency_rate as f64);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        payloads.fill(&mut value);
        value[..8].copy_from_slice(&now_ms().to_be_bytes());
        produce(
            &p,
            "latency",
            (i % args.partitions as u64) as i32,
            &i.to_be_bytes(),
            &value,
        );
    }
    p.flush(Duration::from_secs(60))?;
    let seen = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let lat = sorted_samples(&acks.latencies_us)?;
    let e2e = sorted_samples(&e2e)?;
    println!(
        "latency at {} rec/s:  ack p50 {:.1} ms  p99 {:.1} ms   end-to-end p50 {:.1} ms  p99 {:.1} ms  ({} of {} consumed)",
        args.latency_rate,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&e2e, 0.50),
        percentile(&e2e, 0.99),
        seen,
        total
    );
    drop(p);

    // 3. Catch-up read from Parquet after a restart (empty tail cache).
    floe.restart(false).context("restarting floe")?;
    let consumer = assigned_reader(
        &floe.bootstrap,
        "bench",
        args.partitions,
        &[
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "4194304"),
        ],
    )?;
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < args.records && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m?;
            bytes += (m.key().map_or(0, |k| k.len()) + m.payload().map_or(0, |v| v.len())) as u64;
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if n < args.records {
        bail!("catch-up read only {n} of {} records", args.records);
    }
    println!(
        "catch-up fetch:       {:>8.1} MB/s  {:>9.0} records/s  (after restart: Parquet read path)",
        bytes as f64 / secs / 1e6,
        n as f64 / secs
    );

    // 4. Storage efficiency.
    let on_disk = dir_bytes(&floe.data_dir().join("objects"));
    println!(
        "parquet bytes / input byte: {:.3}  ({} MB of Parquet for {} MB of keys+values, both topics)",
        on_disk as f64 / (input_bytes as f64 + (total * (8 + args.record_bytes as u64)) as f64),
        on_disk / 1_000_000,
        (input_bytes + total * (8 + args.record_bytes as u64)) / 1_000_000
    );
    Ok(())
}
