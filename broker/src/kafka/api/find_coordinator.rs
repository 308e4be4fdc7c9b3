//! FindCoordinator: this broker coordinates every group (and, later,
//! every transactional id). v4+ asks for several keys at once.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use floe_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use super::s;
use crate::kafka::errors::code;
use crate::Broker;

const GROUP: i8 = 0;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let error = if req.key_type == GROUP {
        code::NONE
    } else {
        code::COORDINATOR_NOT_AVAILABLE
    };
    let (node, host, port) = (
        BrokerId(broker.broker_id()),
        s(broker.advertised_host()),
        broker.advertised_port(),
    );
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let c = Coordinator::default()
                    .with_key(k.clone())
                    .with_error_code(error)
                    .with_error_message(None);
                if error == code::NONE {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let r = FindCoordinatorResponse::default().with_error_code(error);
    let r = if version >= 1 {
        r.with_error_message(None)
    } else {
        r
    };
    if error == code::NONE {
        r.with_node_id(node).with_host(host).with_port(port)
    } else {
        r.with_node_id(BrokerId(-1)).with_port(-1)
    }
}
