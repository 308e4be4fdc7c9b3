//! DescribeProducers (KIP-664): the producers a partition keeps state for,
//! with their epoch, last sequence and open transaction, for
//! `kafka-transactions.sh describe-producers` and admin clients looking
//! for a hanging transaction.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use floe_protocol::kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

/// Kafka asks for READ on the topic.
pub(super) fn handle(
    broker: &Arc<Broker>,
    req: DescribeProducersRequest,
    access: &Access,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let allowed = access.allows(Resource::Topic(name), Operation::Read);
            let topic = broker.log().topic(name).filter(|_| allowed);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    let Some(topic) = &topic else {
                        return base.with_error_code(match allowed {
                            true => broker.not_led_here(name, index),
                            false => code::TOPIC_AUTHORIZATION_FAILED,
                        });
                    };
                    match topic.active_producers(index) {
                        Ok(producers) => base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(p.epoch.into())
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(p.txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(e) => base.with_error_code(error_code(&e)),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
