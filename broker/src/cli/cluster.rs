//! What several commands ask of the cluster: its metadata, a partition's
//! offsets from its leader, a group's coordinator, and Kafka errors as
//! failures that name them.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    BrokerId, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Connection;
use super::output::error_name;

/// ListOffsets' timestamp for the log start.
pub const EARLIEST: i64 = -2;
/// ListOffsets' timestamp for the high watermark.
pub const LATEST: i64 = -1;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(s(name))
}

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Fails with the error's name and message when `code` is one.
pub fn check(what: &str, code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => bail!("{what}: {}: {m}", error_name(code)),
        None => bail!("{what}: {}", error_name(code)),
    }
}

/// Metadata of `topics` (every topic for None), never creating one.
pub async fn metadata(
    conn: &mut Connection,
    topics: Option<&[&str]>,
) -> anyhow::Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|t| {
            t.iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    conn.call(request, 12).await
}

/// The cluster's metadata with `topic`'s, failing with Kafka's error when
/// the topic cannot be had (`doing` says what for: "reading").
pub async fn topic_metadata(
    conn: &mut Connection,
    topic: &str,
    doing: &str,
) -> anyhow::Result<MetadataResponse> {
    let md = metadata(conn, Some(&[topic])).await?;
    let t = md
        .topics
        .first()
        .context("the broker answered for no topic")?;
    check(&format!("{doing} {topic}"), t.error_code, None)?;
    Ok(md)
}

/// The partitions of the topic `md` describes, sorted: `only` those (all
/// when empty), each of which must exist.
pub fn partitions_of(
    md: &MetadataResponse,
    topic: &str,
    only: &[i32],
) -> anyhow::Result<Vec<(String, i32)>> {
    let mut partitions: Vec<(String, i32)> = md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (topic.to_string(), p.partition_index))
        .filter(|(_, p)| only.is_empty() || only.contains(p))
        .collect();
    partitions.sort();
    if let Some(p) = only
        .iter()
        .find(|p| !partitions.iter().any(|(_, q)| q == *p))
    {
        bail!("{topic} has no partition {p}");
    }
    Ok(partitions)
}

/// Every broker's address, by id.
pub fn addresses(md: &MetadataResponse) -> BTreeMap<i32, String> {
    md.brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect()
}

/// A connection to `address`, or None when `conn` already reaches it.
pub async fn other(conn: &Connection, address: &str) -> anyhow::Result<Option<Connection>> {
    Ok(match address == conn.address() {
        true => None,
        false => Some(Connection::open(address).await?),
    })
}

/// Each partition's offset at `timestamp` (EARLIEST, LATEST, or a time in
/// ms: the first offset at or after it, -1 if none), asked of its leader:
/// (topic, partition) → offset. Partitions that answer an error are left
/// out.
pub async fn offsets(
    conn: &mut Connection,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let topics: Vec<&str> = {
        let mut t: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let md = metadata(conn, Some(&topics)).await?;
    let addresses = addresses(&md);
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            if partitions.contains(&(name.clone(), p.partition_index)) {
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(p.partition_index);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let Some(address) = addresses.get(&leader) else {
            continue;
        };
        let mut leader_conn = other(conn, address).await?;
        let c = leader_conn.as_mut().unwrap_or(&mut *conn);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .iter()
                    .map(|(name, parts)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = c.call(request, 8).await?;
        for rt in &response.topics {
            for rp in &rt.partitions {
                if rp.error_code == 0 {
                    out.insert((rt.name.0.to_string(), rp.partition_index), rp.offset);
                }
            }
        }
    }
    Ok(out)
}

/// A connection to the coordinator of `group` (a new one, or None when
/// `conn` is it).
pub async fn coordinator(conn: &mut Connection, group: &str) -> anyhow::Result<Option<Connection>> {
    // v4 asks for several keys at once; before, for one.
    let request = match conn.version::<FindCoordinatorRequest>(4) {
        Some(v) if v >= 4 => {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)])
        }
        _ => FindCoordinatorRequest::default().with_key(s(group)),
    };
    let response = conn.call(request, 4).await?;
    let (code, message, host, port) = match response.coordinators.first() {
        Some(c) => (
            c.error_code,
            c.error_message.clone(),
            c.host.clone(),
            c.port,
        ),
        None => (
            response.error_code,
            response.error_message.clone(),
            response.host.clone(),
            response.port,
        ),
    };
    check(
        &format!("finding group {group}'s coordinator"),
        code,
        message.as_ref(),
    )?;
    other(conn, &format!("{host}:{port}"))
        .await
        .with_context(|| format!("connecting to group {group}'s coordinator"))
}
