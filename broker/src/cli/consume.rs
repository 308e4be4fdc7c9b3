//! `floe consume TOPIC`: reads a topic's records from its partitions'
//! leaders and prints them as they come, one per line (tab-separated
//! partition, offset, key and value; or one JSON object per line), as
//! `kcat -C` and `rpk topic consume` do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use floe_protocol::records::split_fetched;
use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    BrokerId, FetchRequest,
};
use serde_json::json;

use super::client::Connection;
use super::cluster::{self, topic_name, EARLIEST, LATEST};
use super::output::{error_name, Format};

/// The largest uncompressed batch taken.
const MAX_BATCH: usize = 64 << 20;

/// What to read.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Only these partitions (comma-separated; all by default).
    #[arg(short, long, value_delimiter = ',')]
    partitions: Vec<i32>,
    /// Where to start: `start`, `end` or an offset.
    #[arg(short, long, default_value = "start")]
    offset: String,
    /// Start at the first record at or after this time (ms since the
    /// epoch) instead.
    #[arg(long, conflicts_with = "offset")]
    timestamp: Option<i64>,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    num: Option<usize>,
    /// Keep waiting for new records (otherwise stop at each partition's
    /// end as of the start).
    #[arg(short, long)]
    follow: bool,
    /// The purpose to read for (fields the purpose may not see are
    /// removed, as for any client: sent as `client.id` `floe-cli;purpose=…`).
    #[arg(long)]
    purpose: Option<String>,
}

/// Where a partition is and where it stops.
struct Position {
    next: i64,
    end: Option<i64>,
}

/// Reads and prints until done.
pub async fn run(conn: &mut Connection, args: ConsumeArgs, format: Format) -> anyhow::Result<()> {
    let topic = args.topic.as_str();
    let md = cluster::topic_metadata(conn, topic, "reading").await?;
    let t = &md.topics[0];
    let partitions = cluster::partitions_of(&md, topic, &args.partitions)?;
    let starts = cluster::offsets(conn, &partitions, EARLIEST).await?;
    let ends = cluster::offsets(conn, &partitions, LATEST).await?;
    let from = match (args.timestamp, args.offset.as_str()) {
        (Some(ms), _) => {
            let at = cluster::offsets(conn, &partitions, ms).await?;
            partitions
                .iter()
                .map(|tp| {
                    let o = at.get(tp).copied().filter(|o| *o >= 0);
                    (tp.clone(), o.or(ends.get(tp).copied()).unwrap_or(0))
                })
                .collect()
        }
        (None, "start" | "beginning") => starts.clone(),
        (None, "end") => ends.clone(),
        (None, n) => {
            let n: i64 = n
                .parse()
                .with_context(|| format!("--offset {n:?}: give start, end or a number"))?;
            partitions
                .iter()
                .map(|tp| {
                    let (s, e) = (starts.get(tp).copied(), ends.get(tp).copied());
                    (tp.clone(), n.clamp(s.unwrap_or(0), e.unwrap_or(i64::MAX)))
                })
                .collect::<BTreeMap<_, _>>()
        }
    };
    let mut positions: BTreeMap<i32, Position> = partitions
        .iter()
        .map(|tp| {
            let end = (!args.follow).then(|| ends.get(tp).copied().unwrap_or(0));
            let next = from.get(tp).copied().unwrap_or(0);
            (tp.1, Position { next, end })
        })
        .collect();
    let addresses = cluster::addresses(&md);
    let leaders: BTreeMap<i32, i32> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    let client_id = match &args.purpose {
        Some(p) => format!("floe-cli;purpose={p}"),
        None => "floe-cli".to_string(),
    };
    let mut connections: BTreeMap<i32, Connection> = BTreeMap::new();
    let mut printed = 0usize;
    let limit = args.num.unwrap_or(usize::MAX);
    loop {
        positions.retain(|_, p| p.end.is_none_or(|e| p.next < e));
        if positions.is_empty() || printed >= limit {
            return Ok(());
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in positions.keys() {
            by_leader.entry(leaders[p]).or_default().push(*p);
        }
        let started = Instant::now();
        for (leader, parts) in by_leader {
            let address = addresses
                .get(&leader)
                .with_context(|| format!("{topic}: no address for its leader {leader}"))?;
            let c = match connections.entry(leader) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(Connection::open(address).await?.with_client_id(&client_id))
                }
            };
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(if args.follow { 500 } else { 100 })
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(positions[p].next)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    )]);
            // v12: topics by name.
            let response = c.call(request, 12).await?;
            cluster::check(&format!("reading {topic}"), response.error_code, None)?;
            for rt in response.responses {
                for rp in rt.partitions {
                    if rp.error_code != 0 {
                        bail!(
                            "reading {topic}/{}: {}",
                            rp.partition_index,
                            error_name(rp.error_code)
                        );
                    }
                    let Some(position) = positions.get_mut(&rp.partition_index) else {
                        continue;
                    };
                    let batches = split_fetched(rp.records.unwrap_or_default())
                        .with_context(|| format!("{topic}/{}", rp.partition_index))?;
                    for b in batches {
                        let h = b.header;
                        if h.is_control() {
                            position.next = position.next.max(h.last_offset() + 1);
                            continue;
                        }
                        for r in b.records(MAX_BATCH)? {
                            let offset = h.base_offset + i64::from(r.offset_delta);
                            let past_end = position.end.is_some_and(|e| offset >= e);
                            if offset < position.next || past_end || printed >= limit {
                                continue;
                            }
                            print_record(
                                format,
                                topic,
                                rp.partition_index,
                                offset,
                                h.base_timestamp + r.timestamp_delta,
                                &r,
                            );
                            printed += 1;
                            position.next = offset + 1;
                        }
                        position.next = position.next.max(h.last_offset() + 1);
                    }
                }
            }
        }
        if !args.follow && started.elapsed() < Duration::from_millis(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn print_record(
    format: Format,
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    r: &floe_protocol::records::Record,
) {
    let key = text(r.key.as_deref());
    let value = text(r.value.as_deref());
    match format {
        Format::Json => {
            let headers: Vec<_> = r
                .headers
                .iter()
                .map(|h| json!({"key": String::from_utf8_lossy(&h.key), "value": text(h.value.as_deref())}))
                .collect();
            println!(
                "{}",
                json!({
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "timestamp": timestamp,
                    "key": key,
                    "value": value,
                    "headers": headers,
                })
            );
        }
        Format::Table => println!(
            "{partition}\t{offset}\t{}\t{}",
            key.unwrap_or_else(|| "(null)".into()),
            value.unwrap_or_else(|| "(null)".into())
        ),
    }
}
