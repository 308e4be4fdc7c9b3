//! SyncGroup: the leader hands out assignments; everyone waits for theirs.

use std::sync::Arc;

use floe_protocol::frame::Response;
use floe_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{s, Pending};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> Pending {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let rx = broker.groups().sync(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
        assignments,
    );
    Box::pin(async move {
        let (error, ptype, pname, assignment) = match rx.await {
            Ok(r) => (r.error, r.protocol_type, r.protocol_name, r.assignment),
            Err(_) => (code::REBALANCE_IN_PROGRESS, None, None, Default::default()),
        };
        let mut resp = SyncGroupResponse::default()
            .with_error_code(error)
            .with_assignment(assignment);
        if version >= 5 {
            resp.protocol_type = ptype.map(s);
            resp.protocol_name = pname.map(s);
        }
        Some(Response::SyncGroup(resp))
    })
}
