//! AddOffsetsToTxn: the producer's transaction will commit a group's
//! offsets (TxnOffsetCommit follows).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: AddOffsetsToTxnRequest,
    access: &Access,
) -> AddOffsetsToTxnResponse {
    let error = if !access.allows(
        Resource::TransactionalId(&req.transactional_id),
        Operation::Write,
    ) {
        code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !access.allows(Resource::Group(&req.group_id), Operation::Read) {
        code::GROUP_AUTHORIZATION_FAILED
    } else if !broker.coordinates_groups() {
        code::NOT_COORDINATOR
    } else {
        match broker
            .transactions()
            .add_offsets(
                &req.transactional_id,
                (req.producer_id.0, req.producer_epoch),
            )
            .await
        {
            Ok(()) => code::NONE,
            Err(c) => c,
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(error)
}
