//! LeaveGroup: one member (v0-2) or a batch by member or static id (v3+).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use floe_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(broker.groups().leave(
            &req.group_id,
            &req.member_id,
            None,
        ));
    }
    let members: Vec<MemberResponse> = req
        .members
        .iter()
        .map(|m| {
            let e =
                broker
                    .groups()
                    .leave(&req.group_id, &m.member_id, m.group_instance_id.as_deref());
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(e)
        })
        .collect();
    let top = if members.iter().all(|m| m.error_code != code::NONE) && !members.is_empty() {
        members[0].error_code
    } else {
        code::NONE
    };
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(members)
}
