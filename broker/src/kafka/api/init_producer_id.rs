//! InitProducerId for idempotent producers (KIP-98), with the epoch bump of
//! KIP-360, and for transactional ones through the transaction coordinator
//! ([`crate::transactions`]).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use floe_storage::log::now_ms;
use tracing::warn;

use crate::acl::{Access, Operation, Resource, ResourceType};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
    access: &Access,
) -> InitProducerIdResponse {
    let fail = |c: i16| {
        InitProducerIdResponse::default()
            .with_error_code(c)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = req.transactional_id.as_deref().filter(|id| !id.is_empty()) {
        if !access.allows(Resource::TransactionalId(id), Operation::Write) {
            return fail(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        if !broker.coordinates_groups() {
            return fail(code::NOT_COORDINATOR);
        }
        let claimed = (req.producer_id.0, req.producer_epoch);
        return match broker
            .transactions()
            .init_producer(id, req.transaction_timeout_ms, claimed)
            .await
        {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(c) => fail(c),
        };
    }
    // As Kafka: an idempotent producer needs IDEMPOTENT_WRITE on the
    // cluster or WRITE on some topic.
    let may = access.sees(Resource::Cluster, Operation::IdempotentWrite)
        || access.allows_some(ResourceType::Topic, Operation::Write);
    if !may {
        crate::audit::denied(
            access.principal(),
            "",
            "Cluster:kafka-cluster",
            "IdempotentWrite",
        );
        return fail(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let meta = broker.meta();
    let now = now_ms();
    let result = async {
        if req.producer_id.0 >= 0 {
            match meta.producer_epoch(req.producer_id.0).await? {
                // KIP-360: the producer asks for a bump of its own epoch.
                Some(epoch) if epoch == req.producer_epoch && epoch < i16::MAX - 1 => {
                    meta.set_producer_epoch(req.producer_id.0, epoch + 1, now)
                        .await?;
                    return Ok::<_, floe_storage::StorageError>(Ok((req.producer_id.0, epoch + 1)));
                }
                // Epoch exhausted: a new producer id, as Kafka does.
                Some(epoch) if epoch == req.producer_epoch => {}
                Some(_) => return Ok(Err(code::INVALID_PRODUCER_EPOCH)),
                None => {}
            }
        }
        Ok(Ok((meta.new_producer_id(now).await?, 0)))
    }
    .await;
    match result {
        Ok(Ok((id, epoch))) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Ok(Err(c)) => fail(c),
        Err(e) => {
            warn!(error = %e, "InitProducerId failed");
            fail(error_code(&e))
        }
    }
}
