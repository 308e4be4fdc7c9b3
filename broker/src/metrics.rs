//! `/metrics`: what a Kafka operator watches, in Prometheus text format.
//!
//! - object-store requests and bytes by kind and object class, as S3 bills
//!   them (`floe_storage::metered`);
//! - produced and fetched records and bytes per topic;
//! - request latency per Kafka API (histogram);
//! - flush sizes, records and times (histograms);
//! - per topic, how long its Iceberg table has lagged behind its log;
//! - memory the log holds by use, and its bounds;
//! - open Kafka connections.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use floe_storage::metered::{ObjectClass, RequestKind, StoreMetrics};
use floe_storage::metrics::{Histogram, HistogramSnapshot, SECONDS};

use crate::Broker;

/// The broker's own counters (the storage crate keeps the rest).
#[derive(Default)]
pub struct Metrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    requests: RwLock<BTreeMap<i16, Arc<Histogram>>>,
    store: Arc<StoreMetrics>,
    connections: AtomicU64,
}

#[derive(Default)]
struct TopicCounters {
    produced_records: AtomicU64,
    produced_bytes: AtomicU64,
    fetched_records: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl Metrics {
    /// Metrics whose object-store counts come from `store`.
    pub fn new(store: Arc<StoreMetrics>) -> Metrics {
        Metrics {
            store,
            ..Metrics::default()
        }
    }

    fn topic(&self, name: &str) -> Arc<TopicCounters> {
        if let Some(c) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return c.clone();
        }
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Records acknowledged to a producer.
    pub fn produced(&self, topic: &str, batches: &[u8]) {
        let (records, bytes) = count_batches(batches);
        let c = self.topic(topic);
        c.produced_records.fetch_add(records, Ordering::Relaxed);
        c.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records sent to a consumer.
    pub fn fetched(&self, topic: &str, batches: &[u8]) {
        if batches.is_empty() {
            return;
        }
        let (records, bytes) = count_batches(batches);
        let c = self.topic(topic);
        c.fetched_records.fetch_add(records, Ordering::Relaxed);
        c.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Forgets a deleted topic's counters.
    pub fn forget_topic(&self, topic: &str) {
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
    }

    /// A request of `api_key` took `seconds`, from its frame read to its
    /// response encoded.
    pub fn request(&self, api_key: i16, seconds: f64) {
        let known = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&api_key)
            .cloned();
        let h = known.unwrap_or_else(|| {
            self.requests
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(api_key)
                .or_insert_with(|| Arc::new(Histogram::new(SECONDS)))
                .clone()
        });
        h.observe(seconds);
    }

    /// Counts a Kafka connection while the guard lives.
    pub fn connection(self: &Arc<Self>) -> ConnectionGauge {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(self.clone())
    }
}

/// One open connection in `floe_connections`.
pub struct ConnectionGauge(Arc<Metrics>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records and bytes in a run of v2 record batches (bytes as sent: the
/// batches' length on the wire).
fn count_batches(mut batches: &[u8]) -> (u64, u64) {
    let total = batches.len() as u64;
    let mut records = 0u64;
    // base offset (8), batch length (4) ... record count at byte 57.
    while batches.len() >= 61 {
        let length = i32::from_be_bytes(batches[8..12].try_into().unwrap_or_default());
        let count = i32::from_be_bytes(batches[57..61].try_into().unwrap_or_default());
        records += count.max(0) as u64;
        let next = 12 + length.max(0) as usize;
        if next > batches.len() || length <= 0 {
            break;
        }
        batches = &batches[next..];
    }
    (records, total)
}

fn api_name(api_key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(api_key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| api_key.to_string())
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, n) in &h.buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

/// The exposition, in Prometheus text format 0.0.4.
pub fn render(broker: &Broker) -> String {
    let m = broker.metrics();
    let mut out = String::with_capacity(16 * 1024);

    type StoreCount = fn(&StoreMetrics, RequestKind, ObjectClass) -> u64;
    let store: [(&str, &str, StoreCount); 2] = [
        ("floe_object_store_requests_total",
            "Object-store requests, by kind as S3 bills them and by what the object is (data, table metadata, other).",
            StoreMetrics::requests),
        ("floe_object_store_bytes_total",
            "Bytes sent (put, copy) and received (get, ranged_get) by object-store requests.",
            StoreMetrics::bytes),
    ];
    for (name, help, count) in store {
        header(&mut out, name, "counter", help);
        for kind in RequestKind::ALL {
            for class in ObjectClass::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{}\",class=\"{}\"}} {}",
                    kind.name(),
                    class.name(),
                    count(&m.store, kind, class)
                );
            }
        }
    }

    let topics: Vec<(String, Arc<TopicCounters>)> = {
        let t = m.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = t.iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    type Field = fn(&TopicCounters) -> &AtomicU64;
    let per_topic: [(&str, &str, Field); 4] = [
        (
            "floe_produce_records_total",
            "Records acknowledged to producers.",
            |c| &c.produced_records,
        ),
        (
            "floe_produce_bytes_total",
            "Record batch bytes acknowledged to producers.",
            |c| &c.produced_bytes,
        ),
        (
            "floe_fetch_records_total",
            "Records sent to consumers.",
            |c| &c.fetched_records,
        ),
        (
            "floe_fetch_bytes_total",
            "Record batch bytes sent to consumers.",
            |c| &c.fetched_bytes,
        ),
    ];
    for (name, help, field) in per_topic {
        header(&mut out, name, "counter", help);
        for (topic, c) in &topics {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\"}} {}",
                label(topic),
                field(c).load(Ordering::Relaxed)
            );
        }
    }

    header(&mut out, "floe_request_duration_seconds", "histogram",
        "Kafka requests, from the frame read to the response encoded (a produce includes its flush, a fetch its long poll).");
    let requests: Vec<(i16, Arc<Histogram>)> = m
        .requests
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, h)| (*k, h.clone()))
        .collect();
    for (key, h) in requests {
        let labels = format!("api=\"{}\"", api_name(key));
        histogram(
            &mut out,
            "floe_request_duration_seconds",
            &labels,
            &h.snapshot(),
        );
    }

    let flush = broker.log().flush_metrics();
    header(
        &mut out,
        "floe_flush_bytes",
        "histogram",
        "Size of each object a flush wrote.",
    );
    histogram(&mut out, "floe_flush_bytes", "", &flush.bytes.snapshot());
    header(
        &mut out,
        "floe_flush_records",
        "histogram",
        "Records of each flush.",
    );
    histogram(
        &mut out,
        "floe_flush_records",
        "",
        &flush.records.snapshot(),
    );
    header(
        &mut out,
        "floe_flush_duration_seconds",
        "histogram",
        "From a flush's start (encode, upload) to its commit in the metadata store.",
    );
    histogram(
        &mut out,
        "floe_flush_duration_seconds",
        "",
        &flush.seconds.snapshot(),
    );

    header(&mut out, "floe_table_snapshot_lag_seconds", "gauge",
        "How long the oldest records a topic's Iceberg table does not hold yet have been in its log (0: the table holds everything).");
    let now = floe_storage::log::now_ms();
    let mut logs = broker.log().topics();
    logs.sort_by(|a, b| a.name.cmp(&b.name));
    for t in logs {
        let _ = writeln!(
            out,
            "floe_table_snapshot_lag_seconds{{topic=\"{}\"}} {}",
            label(&t.name),
            t.table_lag_ms(now) as f64 / 1000.0
        );
    }

    let (used, limit) = (broker.log().memory_use(), broker.log().memory_budget());
    let uses = [
        ("buffers", used.buffers, limit.buffers),
        ("tail_cache", used.tail_cache, limit.tail_cache),
        ("read_ahead", used.read_ahead, limit.read_ahead),
        ("footers", used.footers, limit.footers),
        ("intake", used.intake, limit.intake),
    ];
    header(
        &mut out,
        "floe_memory_bytes",
        "gauge",
        "Memory the log holds, by use (produce buffers, tail caches, read-ahead, Parquet footers, intake objects kept).",
    );
    for (name, used, _) in uses {
        let _ = writeln!(out, "floe_memory_bytes{{use=\"{name}\"}} {used}");
    }
    header(
        &mut out,
        "floe_memory_limit_bytes",
        "gauge",
        "The broker's bound on each use of floe_memory_bytes (--memory-bytes).",
    );
    for (name, _, limit) in uses {
        let _ = writeln!(out, "floe_memory_limit_bytes{{use=\"{name}\"}} {limit}");
    }

    header(
        &mut out,
        "floe_connections",
        "gauge",
        "Open Kafka connections.",
    );
    let _ = writeln!(
        out,
        "floe_connections {}",
        m.connections.load(Ordering::Relaxed)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_counted_by_their_headers() {
        let mut batch = vec![0u8; 70];
        batch[8..12].copy_from_slice(&58i32.to_be_bytes());
        batch[57..61].copy_from_slice(&3i32.to_be_bytes());
        let two = [batch.clone(), batch].concat();
        assert_eq!(count_batches(&two), (6, 140));
        assert_eq!(
            count_batches(&two[..100]),
            (3, 100),
            "a cut batch is not counted"
        );
        assert_eq!(count_batches(&[]), (0, 0));
    }
}
