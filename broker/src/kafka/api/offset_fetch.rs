//! OffsetFetch: committed offsets with their metadata, for one group
//! (v0-7) or several (v8+); all topics when none are named.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use floe_protocol::kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use floe_storage::meta::CommittedOffset;

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// A topic's committed offsets, and the error of each of its partitions.
type TopicOffsets = (String, i16, Vec<CommittedOffset>);

/// The committed offsets of a group, or an error. Topics the principal may
/// not describe are left out of "all", and answered
/// TOPIC_AUTHORIZATION_FAILED when named (as Kafka).
async fn lookup(
    broker: &Broker,
    group: &str,
    wanted: Wanted,
    access: &Access,
) -> Result<Vec<TopicOffsets>, i16> {
    let describable = |t: &str| access.sees(Resource::Topic(t), Operation::Describe);
    let stored = broker
        .meta()
        .fetch_offsets(group)
        .await
        .map_err(|_| code::KAFKA_STORAGE_ERROR)?;
    let mut by_topic: BTreeMap<String, Vec<CommittedOffset>> = BTreeMap::new();
    for o in stored {
        by_topic.entry(o.topic.clone()).or_default().push(o);
    }
    Ok(match wanted {
        None => by_topic
            .into_iter()
            .filter(|(t, _)| describable(t))
            .map(|(t, o)| (t, code::NONE, o))
            .collect(),
        Some(list) => {
            list.into_iter()
                .map(|(topic, parts)| {
                    let error = if access.allows(Resource::Topic(&topic), Operation::Describe) {
                        code::NONE
                    } else {
                        code::TOPIC_AUTHORIZATION_FAILED
                    };
                    let have = match error {
                        code::NONE => by_topic.get(&topic).cloned().unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    let offsets = parts
                        .into_iter()
                        .map(|p| {
                            have.iter().find(|o| o.partition == p).cloned().unwrap_or(
                                CommittedOffset {
                                    topic: topic.clone(),
                                    partition: p,
                                    offset: -1,
                                    leader_epoch: -1,
                                    metadata: Some(String::new()),
                                    commit_time_ms: -1,
                                },
                            )
                        })
                        .collect();
                    (topic, error, offsets)
                })
                .collect()
        }
    })
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetFetchRequest,
    version: i16,
    access: &Access,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            if !access.allows(Resource::Group(&g.group_id), Operation::Describe) {
                groups.push(out.with_error_code(code::GROUP_AUTHORIZATION_FAILED));
                continue;
            }
            groups.push(match lookup(broker, &g.group_id, wanted, access).await {
                Err(e) => out.with_error_code(e),
                Ok(topics) => out.with_topics(
                    topics
                        .into_iter()
                        .map(|(name, error, offsets)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(name)))
                                .with_partitions(
                                    offsets
                                        .into_iter()
                                        .map(|o| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_error_code(error)
                                                .with_partition_index(o.partition)
                                                .with_committed_offset(o.offset)
                                                .with_committed_leader_epoch(o.leader_epoch)
                                                .with_metadata(o.metadata.map(s))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let group: &GroupId = &req.group_id;
    match lookup(broker, group, wanted, access).await {
        Err(e) => {
            let r = OffsetFetchResponse::default();
            if version >= 2 {
                r.with_error_code(e)
            } else {
                r
            }
        }
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, error, offsets)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            offsets
                                .into_iter()
                                .map(|o| {
                                    let p = OffsetFetchResponsePartition::default()
                                        .with_error_code(error)
                                        .with_partition_index(o.partition)
                                        .with_committed_offset(o.offset)
                                        .with_metadata(o.metadata.map(s));
                                    if version >= 5 {
                                        p.with_committed_leader_epoch(o.leader_epoch)
                                    } else {
                                        p
                                    }
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
