//! EndTxn: commits or aborts the producer's transaction; answered once
//! every partition's marker is in the log.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: EndTxnRequest,
    access: &Access,
) -> EndTxnResponse {
    let error = if !access.allows(
        Resource::TransactionalId(&req.transactional_id),
        Operation::Write,
    ) {
        code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !broker.coordinates_groups() {
        code::NOT_COORDINATOR
    } else {
        let producer = (req.producer_id.0, req.producer_epoch);
        match broker
            .transactions()
            .end(&req.transactional_id, producer, req.committed)
            .await
        {
            Ok(()) => code::NONE,
            Err(c) => c,
        }
    };
    EndTxnResponse::default().with_error_code(error)
}
