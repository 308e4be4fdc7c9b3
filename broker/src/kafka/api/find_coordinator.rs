//! FindCoordinator: the broker the cluster placed the group coordinator on
//! coordinates every group and every transactional id
//! (COORDINATOR_NOT_AVAILABLE until it is placed). v4+ asks for several
//! keys at once.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use floe_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The error and message for a key type.
fn verdict(key_type: i8) -> (i16, Option<String>) {
    match key_type {
        GROUP | TRANSACTION => (code::NONE, None),
        other => (
            code::INVALID_REQUEST,
            Some(format!("unknown coordinator type {other}")),
        ),
    }
}

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
    access: &Access,
    listener: &str,
) -> FindCoordinatorResponse {
    // A group the principal may not describe is not located for it.
    let denied = |key: &str| match req.key_type {
        GROUP => (!access.allows(Resource::Group(key), Operation::Describe))
            .then_some(code::GROUP_AUTHORIZATION_FAILED),
        TRANSACTION => (!access.allows(Resource::TransactionalId(key), Operation::Describe))
            .then_some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        _ => None,
    };
    let (mut error, mut message) = verdict(req.key_type);
    let coordinator = broker.cluster().group_coordinator().and_then(|id| {
        if id == broker.broker_id() {
            // With its lease lapsed this broker may be coordinating no
            // longer (its view is stale): clients ask again, elsewhere.
            if !broker.membership().is_live() {
                return None;
            }
        }
        let b = broker
            .addresses(listener)
            .into_iter()
            .find(|b| b.node_id == id)?;
        Some((b.node_id, b.host, b.port))
    });
    let (node, host, port) = match coordinator {
        Some((id, host, port)) => (BrokerId(id), s(host), port),
        None => {
            if error == code::NONE {
                error = code::COORDINATOR_NOT_AVAILABLE;
                message = Some("the coordinator is moving to a live broker".to_string());
            }
            (BrokerId(-1), s(""), -1)
        }
    };
    let message = message.map(s);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let c = Coordinator::default().with_key(k.clone());
                if let Some(refused) = denied(k) {
                    return c
                        .with_error_code(refused)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1);
                }
                let c = c.with_error_code(error).with_error_message(message.clone());
                if error == code::NONE {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if let Some(refused) = denied(&req.key) {
        return FindCoordinatorResponse::default()
            .with_error_code(refused)
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    let r = FindCoordinatorResponse::default().with_error_code(error);
    let r = if version >= 1 {
        r.with_error_message(message)
    } else {
        r
    };
    if error == code::NONE {
        r.with_node_id(node).with_host(host).with_port(port)
    } else {
        r.with_node_id(BrokerId(-1)).with_port(-1)
    }
}
