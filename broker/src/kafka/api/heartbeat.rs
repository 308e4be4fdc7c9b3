//! Heartbeat.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::Broker;

pub(super) fn handle(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(broker.groups().heartbeat(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    ))
}
