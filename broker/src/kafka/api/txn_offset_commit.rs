//! TxnOffsetCommit: a group's offsets, held in the producer's transaction
//! and committed to the group only when the transaction commits.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use floe_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use floe_storage::log::now_ms;
use floe_storage::meta::CommittedOffset;

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: TxnOffsetCommitRequest,
    version: i16,
    access: &Access,
) -> TxnOffsetCommitResponse {
    let whole = if !access.allows(
        Resource::TransactionalId(&req.transactional_id),
        Operation::Write,
    ) {
        Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !access.allows(Resource::Group(&req.group_id), Operation::Read) {
        Some(code::GROUP_AUTHORIZATION_FAILED)
    } else if !broker.coordinates_groups() {
        Some(code::NOT_COORDINATOR)
    } else {
        None
    };
    let now = now_ms();
    let mut offsets = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::new();
    for t in &req.topics {
        let readable = access.allows(Resource::Topic(&t.name), Operation::Read);
        codes.push(
            t.partitions
                .iter()
                .map(|p| {
                    if !readable {
                        return code::TOPIC_AUTHORIZATION_FAILED;
                    }
                    offsets.push(CommittedOffset {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_time_ms: now,
                    });
                    code::NONE
                })
                .collect(),
        );
    }
    let outcome = match whole {
        Some(c) => c,
        None => match broker
            .transactions()
            .commit_offsets(
                &req.transactional_id,
                (req.producer_id.0, req.producer_epoch),
                &req.group_id,
                offsets,
            )
            .await
        {
            Ok(()) => code::NONE,
            Err(c) => c,
        },
    };
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, codes)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(codes)
                        .map(|(p, c)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if c == code::NONE { outcome } else { c })
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
