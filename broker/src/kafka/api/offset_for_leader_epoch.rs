//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch's log
//! ends, which consumers ask after a leader change to learn whether their
//! position was truncated.
//!
//! floe's log is never truncated: a partition only grows at its end, and
//! every epoch's records stay (retention aside). So the answer for an epoch
//! up to the current one is the log end (the high watermark), which no
//! client position exceeds: no client ever detects a truncation that did
//! not happen. Epoch boundaries are not stored, so an older epoch is
//! answered with itself and the current log end.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use floe_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::check_leader_epoch;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
    access: &Access,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let described = access.allows(Resource::Topic(t.topic.0.as_str()), Operation::Describe);
        let topic = broker.log().topic(t.topic.0.as_str()).filter(|_| described);
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                let base = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                let Some(topic) = &topic else {
                    return base.with_error_code(if described {
                        broker.not_led_here(t.topic.0.as_str(), p.partition)
                    } else {
                        code::TOPIC_AUTHORIZATION_FAILED
                    });
                };
                let Some(part) = topic.partition(p.partition) else {
                    return base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                };
                let snap = part.snapshot();
                let e = check_leader_epoch(p.current_leader_epoch, snap.leader_epoch);
                if e != code::NONE {
                    return base.with_error_code(e);
                }
                if p.leader_epoch > snap.leader_epoch {
                    // An epoch this leader never had: undefined, as Kafka
                    // answers it.
                    return base;
                }
                base.with_leader_epoch(p.leader_epoch.max(0))
                    .with_end_offset(snap.high_watermark)
            })
            .collect();
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
