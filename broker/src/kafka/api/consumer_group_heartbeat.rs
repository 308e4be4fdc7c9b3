//! ConsumerGroupHeartbeat (KIP-848): join, stay, leave, and receive the
//! server-side assignment.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions,
};
use floe_protocol::kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};

use super::s;
use crate::groups::consumer::{Heartbeat, TopicAssignment, HEARTBEAT_INTERVAL_MS};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    client_id: String,
    client_host: String,
) -> ConsumerGroupHeartbeatResponse {
    if broker.groups().has_members(&req.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code::GROUP_ID_NOT_FOUND)
            .with_error_message(Some(s("the group uses the classic protocol")));
    }
    let hb = Heartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        subscribed: req
            .subscribed_topic_names
            .map(|v| v.iter().map(|t| t.to_string()).collect()),
        subscribed_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
        assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| (tp.topic_id, tp.partitions.into_iter().collect()))
                .collect::<TopicAssignment>()
        }),
        client_id,
        client_host,
    };
    let r = broker.consumer_groups().heartbeat(hb, &broker.catalog());
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error)
        .with_error_message(r.message.map(s))
        .with_member_id(Some(s(r.member_id)))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
        .with_assignment(assignment)
}
