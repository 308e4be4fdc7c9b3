//! DescribeTransactions and ListTransactions (KIP-664): the coordinator's
//! view of transactional ids, for `kafka-transactions.sh` and admin
//! clients.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use floe_protocol::kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use floe_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId,
};
use floe_storage::log::now_ms;

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

pub(super) async fn describe(
    broker: &Arc<Broker>,
    req: DescribeTransactionsRequest,
    access: &Access,
) -> DescribeTransactionsResponse {
    let all = match broker.coordinates_groups() {
        true => broker.transactions().all().await,
        false => Err(code::NOT_COORDINATOR),
    };
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            if !access.allows(Resource::TransactionalId(id), Operation::Describe) {
                return state.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
            let all = match &all {
                Ok(all) => all,
                Err(c) => return state.with_error_code(*c),
            };
            let Some(t) = all.iter().find(|t| t.transactional_id == id.as_str()) else {
                return state.with_error_code(TRANSACTIONAL_ID_NOT_FOUND);
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, p) in &t.partitions {
                match topics.iter_mut().find(|d| d.topic.as_str() == topic) {
                    Some(d) => d.partitions.push(*p),
                    None => topics.push(
                        TopicData::default()
                            .with_topic(s(topic.clone()).into())
                            .with_partitions(vec![*p]),
                    ),
                }
            }
            state
                .with_transaction_state(s(t.state.clone()))
                .with_transaction_timeout_ms(t.timeout_ms as i32)
                .with_transaction_start_time_ms(if t.started_ms > 0 { t.started_ms } else { -1 })
                .with_producer_id(ProducerId(t.producer_id))
                .with_producer_epoch(t.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub(super) async fn list(
    broker: &Arc<Broker>,
    req: ListTransactionsRequest,
    access: &Access,
) -> ListTransactionsResponse {
    if !broker.coordinates_groups() {
        return ListTransactionsResponse::default().with_error_code(code::NOT_COORDINATOR);
    }
    let all = match broker.transactions().all().await {
        Ok(all) => all,
        Err(c) => return ListTransactionsResponse::default().with_error_code(c),
    };
    let now = now_ms();
    let states = all
        .iter()
        .filter(|t| {
            req.state_filters.is_empty() || req.state_filters.iter().any(|f| f.as_str() == t.state)
        })
        .filter(|t| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
        })
        .filter(|t| {
            // v1: only transactions running longer than this.
            req.duration_filter < 0
                || (t.started_ms > 0 && now - t.started_ms >= req.duration_filter)
        })
        .filter(|t| {
            access.sees(
                Resource::TransactionalId(&t.transactional_id),
                Operation::Describe,
            )
        })
        .map(|t| {
            Listed::default()
                .with_transactional_id(s(t.transactional_id.clone()).into())
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(s(t.state.clone()))
        })
        .collect();
    ListTransactionsResponse::default().with_transaction_states(states)
}
