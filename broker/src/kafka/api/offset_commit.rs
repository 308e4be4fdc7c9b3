//! OffsetCommit: generation and member checked, offsets stored in the
//! metadata store in one transaction.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use floe_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use floe_storage::error::StorageError;
use floe_storage::log::now_ms;
use floe_storage::meta::CommittedOffset;
use tracing::warn;

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

/// Kafka's offset.metadata.max.bytes.
const MAX_METADATA: usize = 4096;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    version: i16,
    access: &Access,
) -> OffsetCommitResponse {
    let generation = if version >= 1 {
        req.generation_id_or_member_epoch
    } else {
        -1
    };
    let group_error = if req.group_id.is_empty() {
        Some(code::INVALID_GROUP_ID)
    } else {
        match broker
            .consumer_groups()
            .check_commit(&req.group_id, &req.member_id, generation)
        {
            Some(verdict) => verdict,
            None => broker.groups().check_commit(
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                generation,
            ),
        }
    };
    let now = now_ms();
    let mut to_store = Vec::new();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let known = broker.placed(t.name.as_str());
        // The group's READ is checked before dispatch; each topic's here.
        let readable = access.allows(Resource::Topic(t.name.as_str()), Operation::Read);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let error = if let Some(e) = group_error {
                e
            } else if !readable {
                code::TOPIC_AUTHORIZATION_FAILED
            } else if known
                .as_ref()
                .is_none_or(|k| !(0..k.epochs.len() as i32).contains(&p.partition_index))
            {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA)
            {
                code::OFFSET_METADATA_TOO_LARGE
            } else {
                to_store.push(CommittedOffset {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_time_ms: now,
                });
                code::NONE
            };
            parts.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    if !to_store.is_empty() {
        let stored = broker
            .group_saver()
            .commit_offsets(&req.group_id, &to_store)
            .await;
        if let Err(e) = stored {
            // A coordinator whose term ended sends the client to the new
            // one; a store that failed is worth a retry here.
            let error = match e {
                StorageError::Fenced(_) => code::NOT_COORDINATOR,
                e => {
                    warn!(group = %req.group_id.as_str(), error = %e, "offset commit failed");
                    code::KAFKA_STORAGE_ERROR
                }
            };
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == code::NONE {
                        p.error_code = error;
                    }
                }
            }
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
