//! ListOffsets: earliest, latest, by timestamp, max timestamp.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use floe_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::check_leader_epoch;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: ListOffsetsRequest,
    version: i16,
    access: &Access,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let described = access.allows(Resource::Topic(t.name.0.as_str()), Operation::Describe);
        let topic = broker.log().topic(t.name.0.as_str()).filter(|_| described);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let Some(topic) = &topic else {
                parts.push(base.with_error_code(if described {
                    broker.not_led_here(t.name.0.as_str(), p.partition_index)
                } else {
                    code::TOPIC_AUTHORIZATION_FAILED
                }));
                continue;
            };
            let Some(partition) = topic.partition(p.partition_index) else {
                parts.push(base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            let epoch = partition.snapshot().leader_epoch;
            let e = check_leader_epoch(p.current_leader_epoch, epoch);
            if e != code::NONE {
                parts.push(base.with_error_code(e));
                continue;
            }
            // read_committed consumers see the log up to the last stable
            // offset (KIP-98).
            let latest_stable = req.isolation_level == 1 && p.timestamp == -1;
            let listed = match latest_stable {
                true => Ok((partition.snapshot().last_stable_offset, -1)),
                false => {
                    broker
                        .log()
                        .list_offset(topic, p.partition_index, p.timestamp)
                        .await
                }
            };
            match listed {
                Ok((offset, ts)) => {
                    let r = base.with_offset(offset).with_timestamp(ts);
                    parts.push(if version >= 4 {
                        r.with_leader_epoch(epoch)
                    } else {
                        r
                    })
                }
                Err(e) => parts.push(base.with_error_code(error_code(&e))),
            }
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
