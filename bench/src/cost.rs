//! `floe-bench --cost`: what a run costs on object storage, at 1, 100 and
//! 1 000 topics (`--cost-topics`) and one fixed total rate
//! (`--cost-rate-mb`, 1 KiB records of unique random bytes).
//!
//! Per run: object writes per second (intake objects shared by every
//! topic, topics' own data files, table metadata) and per MB, the average
//! size of an intake or data object, reads per second, the monthly request
//! bill at S3 Standard list prices (us-east-1: $0.005 per 1 000 PUT/COPY/LIST,
//! $0.0004 per 1 000 GET/HEAD; DELETE is free), produce ack p50/p99, and
//! table freshness (the largest lag of a topic's Iceberg table behind its
//! log seen during the run). Request counts come from the broker's own
//! `/metrics`, which counts them as S3 would be asked whatever the store.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::Producer;

use crate::{
    create_topics, percentile, produce, producer, sorted_samples, start_broker, Acks, Args,
    Payloads,
};

/// US dollars per request, S3 Standard list prices.
const PUT_PRICE: f64 = 0.005 / 1000.0;
const GET_PRICE: f64 = 0.0004 / 1000.0;
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;

/// `/metrics`, parsed: series (name with labels) → value.
fn scrape(http: &str) -> anyhow::Result<HashMap<String, f64>> {
    let mut s = TcpStream::connect(http).with_context(|| format!("connecting to {http}"))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("no HTTP body")?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn sum(m: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

fn max(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(name))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max)
}

/// One run's figures.
struct Figures {
    topics: usize,
    mb_per_sec: f64,
    intake_puts: f64,
    data_puts: f64,
    table_puts: f64,
    avg_object: f64,
    reads: f64,
    monthly: f64,
    ack_p50: f64,
    ack_p99: f64,
    freshness: f64,
}

fn run_one(args: &Args, topics: usize) -> anyhow::Result<Figures> {
    let floe = start_broker(args)?;
    let names: Vec<String> = (0..topics).map(|i| format!("cost-{i}")).collect();
    for chunk in names.chunks(500) {
        let new: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
            .collect();
        create_topics(&floe, &new)?;
    }
    let acks = Arc::new(Acks::default());
    let p = producer(&floe.bootstrap, acks.clone())?;
    let mut payloads = Payloads::new("random", args.record_bytes)?;
    let mut value = Vec::with_capacity(args.record_bytes);
    let rate = args.cost_rate_mb * 1e6 / args.record_bytes as f64;
    let total = (rate * args.cost_secs as f64) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Warm up: every topic's first flush and table creation are not the
    // steady state.
    for (i, name) in names.iter().enumerate() {
        payloads.fill(&mut value);
        produce(&p, name, 0, &(i as u64).to_be_bytes(), &value);
    }
    p.flush(Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(2));
    acks.latencies_us
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clear();
    let before = scrape(&floe.http)?;
    let start = Instant::now();
    let mut freshness = 0f64;
    let mut next_scrape = start + Duration::from_secs(1);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if Instant::now() >= next_scrape {
            freshness = freshness.max(max(&scrape(&floe.http)?, "floe_table_snapshot_lag_seconds"));
            next_scrape += Duration::from_secs(1);
        }
        payloads.fill(&mut value);
        produce(&p, &names[i as usize % topics], 0, &i.to_be_bytes(), &value);
    }
    p.flush(Duration::from_secs(120))?;
    let secs = start.elapsed().as_secs_f64();
    let after = scrape(&floe.http)?;
    if acks.errors.load(Ordering::Relaxed) > 0 {
        bail!("{} produce errors", acks.errors.load(Ordering::Relaxed));
    }
    let delta =
        |name: &str, labels: &[&str]| sum(&after, name, labels) - sum(&before, name, labels);
    let requests = "floe_object_store_requests_total";
    let intake_puts = delta(requests, &["kind=\"put\"", "class=\"intake\""]);
    let data_puts = delta(requests, &["kind=\"put\"", "class=\"data\""]);
    let table_puts = delta(requests, &["kind=\"put\"", "class=\"table\""]);
    let object_bytes: f64 = ["intake", "data"]
        .iter()
        .map(|c| {
            delta(
                "floe_object_store_bytes_total",
                &["kind=\"put\"", &format!("class=\"{c}\"")],
            )
        })
        .sum();
    let put_class: f64 = ["put", "copy", "list"]
        .iter()
        .map(|k| delta(requests, &[&format!("kind=\"{k}\"")]))
        .sum();
    let get_class: f64 = ["get", "ranged_get", "head"]
        .iter()
        .map(|k| delta(requests, &[&format!("kind=\"{k}\"")]))
        .sum();
    let lat = sorted_samples(&acks.latencies_us)?;
    Ok(Figures {
        topics,
        mb_per_sec: total as f64 * args.record_bytes as f64 / secs / 1e6,
        intake_puts: intake_puts / secs,
        data_puts: data_puts / secs,
        table_puts: table_puts / secs,
        avg_object: if intake_puts + data_puts > 0.0 {
            object_bytes / (intake_puts + data_puts)
        } else {
            0.0
        },
        reads: get_class / secs,
        monthly: (put_class * PUT_PRICE + get_class * GET_PRICE) / secs * SECONDS_PER_MONTH,
        ack_p50: percentile(&lat, 0.50),
        ack_p99: percentile(&lat, 0.99),
        freshness,
    })
}

/// Runs every topic count and prints one row each.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "floe-bench --cost: {} cores, {:.1} MB/s in total of {} B records (unique random bytes), {} s per run, broker args {:?}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.cost_rate_mb,
        args.record_bytes,
        args.cost_secs,
        args.broker_args
    );
    println!(
        "{:>6} {:>7} {:>13} {:>11} {:>12} {:>10} {:>10} {:>10} {:>13} {:>9} {:>9} {:>10}",
        "topics",
        "MB/s",
        "intake PUT/s",
        "data PUT/s",
        "table PUT/s",
        "PUT/MB",
        "avg obj",
        "GET/s",
        "$/month req",
        "ack p50",
        "ack p99",
        "freshness"
    );
    for topics in &args.cost_topics {
        let f = run_one(args, *topics)?;
        let puts_per_mb = (f.intake_puts + f.data_puts + f.table_puts) / f.mb_per_sec.max(1e-9);
        println!(
            "{:>6} {:>7.2} {:>13.1} {:>11.1} {:>12.1} {:>10.1} {:>8.1}KiB {:>10.1} {:>13.0} {:>7.1}ms {:>7.1}ms {:>9.1}s",
            f.topics,
            f.mb_per_sec,
            f.intake_puts,
            f.data_puts,
            f.table_puts,
            puts_per_mb,
            f.avg_object / 1024.0,
            f.reads,
            f.monthly,
            f.ack_p50,
            f.ack_p99,
            f.freshness
        );
    }
    Ok(())
}
