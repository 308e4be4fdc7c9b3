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
use crate::kafka::errors::code;
use crate::Broker;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// (topic, [(partition, offset, epoch, metadata)]) for a group, or an error.
async fn lookup(
    broker: &Broker,
    group: &str,
    wanted: Wanted,
) -> Result<Vec<(String, Vec<CommittedOffset>)>, i16> {
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
        None => by_topic.into_iter().collect(),
        Some(list) => {
            list.into_iter()
                .map(|(topic, parts)| {
                    let have = by_topic.get(&topic).cloned().unwrap_or_default();
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
                    (topic, offsets)
                })
                .collect()
        }
    })
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetFetchRequest,
    version: i16,
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
            groups.push(match lookup(broker, &g.group_id, wanted).await {
                Err(e) => out.with_error_code(e),
                Ok(topics) => out.with_topics(
                    topics
                        .into_iter()
                        .map(|(name, offsets)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(name)))
                                .with_partitions(
                                    offsets
                                        .into_iter()
                                        .map(|o| {
                                            OffsetFetchResponsePartitions::default()
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
    match lookup(broker, group, wanted).await {
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
                .map(|(name, offsets)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            offsets
                                .into_iter()
                                .map(|o| {
                                    let p = OffsetFetchResponsePartition::default()
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
