//! `floe produce TOPIC`: one record per line of standard input (or a
//! file), optionally `key<delimiter>value`, with headers, to a partition
//! or by key as the Java client places them (murmur2), acknowledged by
//! every partition's leader (acks=all), as `kcat -P` does.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Args;
use floe_protocol::records::BatchBuilder;
use kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    ProduceRequest,
};
use serde_json::json;

use super::client::Connection;
use super::cluster::{self, topic_name};
use super::output::{error_name, Output};

/// Records per batch at most (a batch also closes at about 1 MiB).
const BATCH_RECORDS: usize = 1000;
const BATCH_BYTES: usize = 1 << 20;

/// What to write.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Read lines from this file instead of standard input.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// Split each line at the first DELIMITER into key and value (a line
    /// without it is a value with no key).
    #[arg(short = 'k', long)]
    key_delimiter: Option<String>,
    /// Write every record to this partition (by default: by key as the
    /// Java client does, keyless records spread over the partitions).
    #[arg(short, long)]
    partition: Option<i32>,
    /// A header for every record, `key=value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

/// Kafka's murmur2, as the Java client's default partitioner hashes keys.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `count`, as the Java client's.
fn partition_of(key: &[u8], count: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % count.max(1)
}

/// One partition's records waiting to go.
#[derive(Default)]
struct Pending {
    records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    bytes: usize,
    written: usize,
    first_offset: Option<i64>,
}

/// Reads the lines, writes them, and says where they went.
pub async fn run(conn: &mut Connection, args: ProduceArgs) -> anyhow::Result<Output> {
    let topic = args.topic.as_str();
    let md = cluster::topic_metadata(conn, topic, "writing to").await?;
    let t = &md.topics[0];
    let count = t.partitions.len() as i32;
    if let Some(p) = args.partition.filter(|p| !(0..count).contains(p)) {
        bail!("{topic} has no partition {p}");
    }
    let headers: Vec<(Vec<u8>, Vec<u8>)> = args
        .headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec())),
            _ => bail!("--header {h:?} is not key=value"),
        })
        .collect::<anyhow::Result<_>>()?;
    let leaders: BTreeMap<i32, i32> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    let addresses = cluster::addresses(&md);
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut pending: BTreeMap<i32, Pending> = BTreeMap::new();
    let mut writer = Writer {
        topic,
        headers,
        leaders,
        addresses,
        connections: BTreeMap::new(),
    };
    let mut next_keyless = 0i32;
    for line in input.split(b'\n') {
        let mut line = line.context("reading the input")?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = match &args.key_delimiter {
            Some(d) => match find(&line, d.as_bytes()) {
                Some(at) => (Some(line[..at].to_vec()), line[at + d.len()..].to_vec()),
                None => (None, line),
            },
            None => (None, line),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_of(k, count),
            (None, None) => {
                next_keyless = (next_keyless + 1) % count.max(1);
                next_keyless
            }
        };
        let p = pending.entry(partition).or_default();
        p.bytes += key.as_ref().map_or(0, Vec::len) + value.len();
        p.records.push((key, value));
        if p.records.len() >= BATCH_RECORDS || p.bytes >= BATCH_BYTES {
            writer.send(conn, &mut pending).await?;
        }
    }
    writer.send(conn, &mut pending).await?;
    let rows: Vec<Vec<String>> = pending
        .iter()
        .filter(|(_, p)| p.written > 0)
        .map(|(partition, p)| {
            vec![
                partition.to_string(),
                p.written.to_string(),
                p.first_offset.map_or("-".into(), |o| o.to_string()),
            ]
        })
        .collect();
    Ok(Output {
        headers: vec!["PARTITION", "RECORDS", "FIRST-OFFSET"],
        json: json!({
            "topic": topic,
            "partitions": pending
                .iter()
                .filter(|(_, p)| p.written > 0)
                .map(|(partition, p)| json!({
                    "partition": partition,
                    "records": p.written,
                    "first_offset": p.first_offset,
                }))
                .collect::<Vec<_>>(),
        }),
        rows,
        notes: Vec::new(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where records go and with what.
struct Writer<'a> {
    topic: &'a str,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Each partition's leader.
    leaders: BTreeMap<i32, i32>,
    /// Each broker's address.
    addresses: BTreeMap<i32, String>,
    /// A connection to each leader `conn` does not reach.
    connections: BTreeMap<i32, Connection>,
}

impl Writer<'_> {
    /// Sends every partition's pending records, one request per leader, and
    /// fails on the first refusal.
    async fn send(
        &mut self,
        conn: &mut Connection,
        pending: &mut BTreeMap<i32, Pending>,
    ) -> anyhow::Result<()> {
        let Writer {
            topic,
            headers,
            leaders,
            addresses,
            connections,
        } = self;
        let topic: &str = topic;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let header_refs: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        let mut by_leader: BTreeMap<i32, Vec<(i32, bytes::Bytes, usize)>> = BTreeMap::new();
        for (partition, p) in pending.iter_mut() {
            if p.records.is_empty() {
                continue;
            }
            let mut b = BatchBuilder::new(0, now, 0);
            for (i, (key, value)) in p.records.iter().enumerate() {
                b.push(i as i64, now, key.as_deref(), Some(value), &header_refs);
            }
            let n = p.records.len();
            p.records.clear();
            p.bytes = 0;
            let leader = leaders[partition];
            by_leader
                .entry(leader)
                .or_default()
                .push((*partition, b.finish(-1), n));
        }
        for (leader, batches) in by_leader {
            let address = addresses
                .get(&leader)
                .with_context(|| format!("{topic}: no address for its leader {leader}"))?;
            let c = match (address == conn.address(), connections.entry(leader)) {
                (true, _) => &mut *conn,
                (false, std::collections::btree_map::Entry::Occupied(e)) => e.into_mut(),
                (false, std::collections::btree_map::Entry::Vacant(e)) => {
                    e.insert(Connection::open(address).await?)
                }
            };
            let counts: BTreeMap<i32, usize> = batches.iter().map(|(p, _, n)| (*p, *n)).collect();
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(
                        batches
                            .into_iter()
                            .map(|(p, records, _)| {
                                PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(records))
                            })
                            .collect(),
                    )]);
            // v11: topics by name, as every client before Kafka 4.
            let response = c.call(request, 11).await?;
            for rt in &response.responses {
                for rp in &rt.partition_responses {
                    if rp.error_code != 0 {
                        let detail = rp
                            .error_message
                            .as_ref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default();
                        bail!(
                            "writing to {topic}/{}: {}{detail}",
                            rp.index,
                            error_name(rp.error_code)
                        );
                    }
                    if let Some(p) = pending.get_mut(&rp.index) {
                        p.first_offset.get_or_insert(rp.base_offset);
                        p.written += counts.get(&rp.index).copied().unwrap_or(0);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_as_the_java_client_hashes_them() {
        // Kafka's own test vectors (UtilsTest.testMurmur2).
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert!((0..6).contains(&partition_of(b"foobar", 6)));
        assert_eq!(find(b"k:v:w", b":"), Some(1));
        assert_eq!(find(b"kv", b""), None);
    }
}
