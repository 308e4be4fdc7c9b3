//! JoinGroup: waits (concurrently) until the join phase completes.

use std::sync::Arc;

use floe_protocol::frame::Response;
use floe_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use floe_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{s, Pending};
use crate::groups::{JoinRequest, JoinResult};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
    client_host: String,
) -> Pending {
    let join = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id,
        client_host,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    if broker.consumer_groups().is_active(&join.group_id) {
        let resp = JoinGroupResponse::default()
            .with_error_code(code::INCONSISTENT_GROUP_PROTOCOL)
            .with_member_id(s(join.member_id))
            .with_generation_id(-1);
        return Box::pin(async move { Some(Response::JoinGroup(resp)) });
    }
    let rx = broker.groups().join(join);
    let member_id = req.member_id.to_string();
    Box::pin(async move {
        let r = rx
            .await
            .unwrap_or_else(|_| JoinResult::error(code::UNKNOWN_MEMBER_ID, &member_id));
        let members = r
            .members
            .into_iter()
            .map(|(id, iid, meta)| {
                let m = JoinGroupResponseMember::default()
                    .with_member_id(s(id))
                    .with_metadata(meta);
                if version >= 5 {
                    m.with_group_instance_id(iid.map(s))
                } else {
                    m
                }
            })
            .collect();
        let mut resp = JoinGroupResponse::default()
            .with_error_code(r.error)
            .with_generation_id(r.generation)
            .with_leader(s(r.leader))
            .with_member_id(s(r.member_id))
            .with_members(members);
        if version >= 7 {
            resp.protocol_type = r.protocol_type.map(s);
            resp.protocol_name = r.protocol_name.map(s);
        } else {
            resp.protocol_name = Some(s(r.protocol_name.unwrap_or_default()));
        }
        Some(Response::JoinGroup(resp))
    })
}
