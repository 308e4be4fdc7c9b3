//! AddPartitionsToTxn: partitions join a producer's open transaction.
//! v0–3 are the client's form (one transaction); v4+ the batched form
//! brokers use, with `verify_only` (KIP-890's check that a partition is
//! in the transaction before a produce to it is taken).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use floe_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use floe_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
};

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

const OPERATION_NOT_ATTEMPTED: i16 = 55;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: AddPartitionsToTxnRequest,
    version: i16,
    access: &Access,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let result = one(
            broker,
            &req.v3_and_below_transactional_id,
            (
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
            ),
            &req.v3_and_below_topics,
            false,
            access,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(result);
    }
    let mut results = Vec::new();
    for t in &req.transactions {
        let topics = one(
            broker,
            &t.transactional_id,
            (t.producer_id.0, t.producer_epoch),
            &t.topics,
            t.verify_only,
            access,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction's partitions: each refused one with its reason, the
/// others OPERATION_NOT_ATTEMPTED; or all with the coordinator's answer.
async fn one(
    broker: &Arc<Broker>,
    id: &TransactionalId,
    producer: (i64, i16),
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    access: &Access,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut refusals: Vec<Vec<i16>> = Vec::new();
    let mut wanted = Vec::new();
    for t in topics {
        let may = access.allows(Resource::Topic(&t.name), Operation::Write);
        let here = broker.log().topic(&t.name);
        refusals.push(
            t.partitions
                .iter()
                .map(|p| {
                    if !may {
                        code::TOPIC_AUTHORIZATION_FAILED
                    } else if here
                        .as_ref()
                        .is_none_or(|l| !(0..l.partition_count()).contains(p))
                    {
                        // Unknown, or led by another broker: the markers
                        // are written through this broker's log.
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        wanted.push((t.name.to_string(), *p));
                        code::NONE
                    }
                })
                .collect(),
        );
    }
    let refused = refusals.iter().flatten().any(|c| *c != code::NONE);
    let outcome = if !access.allows(Resource::TransactionalId(id), Operation::Write) {
        Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !broker.coordinates_groups() {
        Some(code::NOT_COORDINATOR)
    } else if refused {
        None
    } else {
        Some(
            match broker
                .transactions()
                .add_partitions(id, producer, &wanted, verify_only)
                .await
            {
                Ok(()) => code::NONE,
                Err(c) => c,
            },
        )
    };
    topics
        .iter()
        .zip(refusals)
        .map(|(t, codes)| {
            let results = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, c)| {
                    let error = match outcome {
                        Some(o) => o,
                        None if c == code::NONE => OPERATION_NOT_ATTEMPTED,
                        None => c,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(error)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}
