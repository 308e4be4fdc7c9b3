//! `floe group ...`: list consumer groups, describe one (members, what
//! each is assigned, lag per partition), show its lag, reset its offsets
//! and delete groups, over the Kafka protocol, as `rpk group` and
//! `kafka-consumer-groups` do.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use bytes::Buf;
use clap::Subcommand;
use kafka_protocol::messages::{
    describe_groups_response::DescribedGroup,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use serde_json::{json, Value};

use super::client::Connection;
use super::cluster::{self, check, metadata, s, topic_name, EARLIEST, LATEST};
use super::output::{error_name, Output};

/// The group subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Every consumer group of the cluster, with its state.
    List,
    /// A group's state and members, and per partition its committed
    /// offset, log end, lag and the member it is assigned to.
    Describe {
        /// The group.
        group: String,
    },
    /// A group's committed offset, log end and lag per partition, and the
    /// total.
    Lag {
        /// The group.
        group: String,
    },
    /// Move a group's committed offsets on a topic (the group must have
    /// no members, as Kafka's tool requires).
    #[command(group = clap::ArgGroup::new("to").required(true).multiple(false))]
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only these partitions (comma-separated; all by default).
        #[arg(long, value_delimiter = ',')]
        partitions: Vec<i32>,
        /// To each partition's log start.
        #[arg(long, group = "to")]
        to_earliest: bool,
        /// To each partition's end (the group skips what is there now).
        #[arg(long, group = "to")]
        to_latest: bool,
        /// To this offset (kept within each partition's log start and end).
        #[arg(long, group = "to")]
        to_offset: Option<i64>,
        /// To the first record at or after this time (ms since the epoch;
        /// the end where there is none).
        #[arg(long, group = "to")]
        to_timestamp: Option<i64>,
        /// Show the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups (each must have no members) and their offsets.
    Delete {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Where `reset-offsets` moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

/// Runs one group command against `conn`'s cluster.
pub async fn run(conn: &mut Connection, command: GroupCommand) -> anyhow::Result<Output> {
    match command {
        GroupCommand::List => list(conn).await,
        GroupCommand::Describe { group } => describe(conn, &group, true).await,
        GroupCommand::Lag { group } => describe(conn, &group, false).await,
        GroupCommand::ResetOffsets {
            group,
            topic,
            partitions,
            to_earliest,
            to_latest,
            to_offset,
            to_timestamp,
            dry_run,
        } => {
            let target = match (to_earliest, to_latest, to_offset, to_timestamp) {
                (true, _, _, _) => Target::Earliest,
                (_, true, _, _) => Target::Latest,
                (_, _, Some(o), _) => Target::Offset(o),
                (_, _, _, Some(t)) => Target::Timestamp(t),
                _ => {
                    bail!("say where to: --to-earliest, --to-latest, --to-offset or --to-timestamp")
                }
            };
            reset_offsets(conn, &group, &topic, &partitions, target, dry_run).await
        }
        GroupCommand::Delete { groups } => delete(conn, &groups).await,
    }
}

async fn list(conn: &mut Connection) -> anyhow::Result<Output> {
    // Each broker lists the groups it coordinates.
    let md = metadata(conn, Some(&[])).await?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for address in cluster::addresses(&md).values() {
        let mut other = cluster::other(conn, address).await?;
        let c = other.as_mut().unwrap_or(&mut *conn);
        let response = c.call(ListGroupsRequest::default(), 5).await?;
        check(
            &format!("listing groups on {address}"),
            response.error_code,
            None,
        )?;
        for g in response.groups {
            groups.insert(
                g.group_id.0.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    Ok(Output {
        headers: vec!["GROUP", "STATE", "PROTOCOL-TYPE"],
        rows: groups
            .iter()
            .map(|(g, (state, kind))| vec![g.clone(), state.clone(), kind.clone()])
            .collect(),
        notes: Vec::new(),
        json: json!(groups
            .iter()
            .map(|(g, (state, kind))| json!({"group": g, "state": state, "protocol_type": kind}))
            .collect::<Vec<_>>()),
    })
}

/// The group as its coordinator describes it.
async fn described(conn: &mut Connection, group: &str) -> anyhow::Result<DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let response = conn.call(request, 5).await?;
    let g = response
        .groups
        .into_iter()
        .next()
        .context("the coordinator described no group")?;
    check(
        &format!("describing group {group}"),
        g.error_code,
        g.error_message.as_ref(),
    )?;
    Ok(g)
}

/// The partitions a member of a `consumer` group is assigned.
fn assigned(assignment: &[u8]) -> Vec<(String, i32)> {
    let mut bytes = bytes::Bytes::copy_from_slice(assignment);
    if bytes.remaining() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.0.to_string(), *p)))
                .collect()
        })
        .unwrap_or_default()
}

/// A group's committed offsets: (topic, partition) → offset.
async fn committed(
    conn: &mut Connection,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    // v7 and below name the group at the top; no topics means all.
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let response = conn.call(request, 7).await?;
    check(
        &format!("fetching group {group}'s offsets"),
        response.error_code,
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

async fn describe(conn: &mut Connection, group: &str, members: bool) -> anyhow::Result<Output> {
    let mut coordinator = cluster::coordinator(conn, group).await?;
    let c = coordinator.as_mut().unwrap_or(&mut *conn);
    let g = described(c, group).await?;
    let offsets = committed(c, group).await?;
    // Who holds each partition (consumer groups of the classic protocol).
    let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &g.members {
        for tp in assigned(&m.member_assignment) {
            owner.insert(
                tp,
                (
                    m.member_id.to_string(),
                    m.client_id.to_string(),
                    m.client_host.to_string(),
                ),
            );
        }
    }
    let mut partitions: Vec<(String, i32)> = offsets.keys().cloned().collect();
    partitions.extend(owner.keys().cloned());
    partitions.sort();
    partitions.dedup();
    let ends = cluster::offsets(conn, &partitions, LATEST).await?;
    let mut rows = Vec::new();
    let mut json_partitions = Vec::new();
    let mut total = 0i64;
    let show = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
    for tp in &partitions {
        let current = offsets.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        total += lag.unwrap_or(0);
        let (member, client, host) = owner.get(tp).cloned().unwrap_or_default();
        let mut row = vec![
            tp.0.clone(),
            tp.1.to_string(),
            show(current),
            show(end),
            show(lag),
        ];
        if members {
            row.extend([
                if member.is_empty() {
                    "-".into()
                } else {
                    member.clone()
                },
                if client.is_empty() {
                    "-".into()
                } else {
                    client.clone()
                },
                if host.is_empty() {
                    "-".into()
                } else {
                    host.clone()
                },
            ]);
        }
        rows.push(row);
        json_partitions.push(json!({
            "topic": tp.0,
            "partition": tp.1,
            "committed_offset": current,
            "log_end_offset": end,
            "lag": lag,
            "member_id": (!member.is_empty()).then_some(member),
            "client_id": (!client.is_empty()).then_some(client),
            "host": (!host.is_empty()).then_some(host),
        }));
    }
    let mut headers = vec![
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ];
    let mut notes = vec![format!("total lag: {total}")];
    let mut json: Value = json!({
        "group": group,
        "total_lag": total,
        "partitions": json_partitions,
    });
    if members {
        headers.extend(["MEMBER", "CLIENT-ID", "HOST"]);
        notes.insert(
            0,
            format!(
                "group {group}: {} ({}), {} member(s)",
                g.group_state,
                if g.protocol_data.is_empty() {
                    g.protocol_type.to_string()
                } else {
                    format!("{} {}", g.protocol_type, g.protocol_data)
                },
                g.members.len()
            ),
        );
        json["state"] = json!(g.group_state.to_string());
        json["protocol_type"] = json!(g.protocol_type.to_string());
        json["protocol"] = json!(g.protocol_data.to_string());
        json["members"] = json!(g
            .members
            .iter()
            .map(|m| json!({
                "member_id": m.member_id.to_string(),
                "group_instance_id": m.group_instance_id.as_ref().map(|i| i.to_string()),
                "client_id": m.client_id.to_string(),
                "host": m.client_host.to_string(),
            }))
            .collect::<Vec<_>>());
    }
    Ok(Output {
        headers,
        rows,
        notes,
        json,
    })
}

async fn reset_offsets(
    conn: &mut Connection,
    group: &str,
    topic: &str,
    only: &[i32],
    target: Target,
    dry_run: bool,
) -> anyhow::Result<Output> {
    let md = cluster::topic_metadata(conn, topic, "describing").await?;
    let partitions = cluster::partitions_of(&md, topic, only)?;
    let starts = cluster::offsets(conn, &partitions, EARLIEST).await?;
    let ends = cluster::offsets(conn, &partitions, LATEST).await?;
    let at_time = match target {
        Target::Timestamp(ms) => cluster::offsets(conn, &partitions, ms).await?,
        _ => BTreeMap::new(),
    };
    let mut new = BTreeMap::new();
    for tp in &partitions {
        let (start, end) = match (starts.get(tp), ends.get(tp)) {
            (Some(s), Some(e)) => (*s, *e),
            _ => bail!("{}/{}: its leader gave no offsets; try again", tp.0, tp.1),
        };
        let offset = match target {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset(o) => o.clamp(start, end),
            Target::Timestamp(_) => match at_time.get(tp) {
                Some(&o) if o >= 0 => o,
                _ => end,
            },
        };
        new.insert(tp.clone(), offset);
    }
    let mut coordinator = cluster::coordinator(conn, group).await?;
    let c = coordinator.as_mut().unwrap_or(&mut *conn);
    let g = described(c, group).await?;
    if !g.members.is_empty() {
        bail!(
            "group {group} has {} active member(s) ({}): stop its consumers first; offsets can only be reset while it is empty",
            g.members.len(),
            g.group_state
        );
    }
    if !dry_run {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    new.iter()
                        .map(|((_, p), o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let response = c.call(request, 8).await?;
        for t in &response.topics {
            for p in &t.partitions {
                check(
                    &format!(
                        "committing {group}'s offset of {}/{}",
                        t.name.0, p.partition_index
                    ),
                    p.error_code,
                    None,
                )?;
            }
        }
    }
    let status = if dry_run { "dry run" } else { "committed" };
    Ok(Output {
        headers: vec!["TOPIC", "PARTITION", "NEW-OFFSET"],
        rows: new
            .iter()
            .map(|((t, p), o)| vec![t.clone(), p.to_string(), o.to_string()])
            .collect(),
        notes: vec![format!("{status}")],
        json: json!({
            "group": group,
            "status": status,
            "partitions": new
                .iter()
                .map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o}))
                .collect::<Vec<_>>(),
        }),
    })
}

async fn delete(conn: &mut Connection, groups: &[String]) -> anyhow::Result<Output> {
    let mut rows = Vec::new();
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for group in groups {
        let status = match cluster::coordinator(conn, group).await {
            Err(e) => {
                failed.push(format!("{e:#}"));
                format!("{e:#}")
            }
            Ok(mut coordinator) => {
                let c = coordinator.as_mut().unwrap_or(&mut *conn);
                let request =
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
                let response = c.call(request, 2).await?;
                match response.results.first().map(|r| r.error_code) {
                    Some(0) => "deleted".to_string(),
                    Some(code) => {
                        failed.push(format!("{group}: {}", error_name(code)));
                        error_name(code)
                    }
                    None => bail!("the coordinator answered for no group"),
                }
            }
        };
        rows.push(vec![group.clone(), status.clone()]);
        results.push(json!({"group": group, "status": status}));
    }
    if !failed.is_empty() {
        bail!("deleting groups: {}", failed.join("; "));
    }
    Ok(Output {
        headers: vec!["GROUP", "STATUS"],
        rows,
        notes: Vec::new(),
        json: json!(results),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn a_consumer_assignment_is_read_at_its_version() {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(topic_name("orders"))
                .with_partitions(vec![0, 2]),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(1);
        a.encode(&mut buf, 1).unwrap();
        assert_eq!(
            assigned(&buf),
            vec![("orders".to_string(), 0), ("orders".to_string(), 2)]
        );
        assert!(assigned(&[0]).is_empty());
        assert!(assigned(&[0, 1, 0xff]).is_empty());
    }
}
