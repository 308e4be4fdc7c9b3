//! Produce: append in request order, answer after the flush commits.

use std::sync::Arc;

use floe_protocol::frame::Response;
use floe_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use floe_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use floe_storage::log::PendingAppend;
use floe_storage::StorageError;
use tracing::debug;

use super::{s, Pending};
use crate::errors::{code, error_code};
use crate::Broker;

enum Outcome {
    Appended(PendingAppend),
    Failed(StorageError),
}

fn failure(index: i32, e: &StorageError, version: i16) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code(e))
        .with_base_offset(-1);
    if version < 8 {
        return p;
    }
    p.error_message = Some(s(e.to_string()));
    let errors: Vec<(i32, &str)> = match e {
        StorageError::InvalidRecord { index, message } => vec![(*index, message.as_str())],
        StorageError::InvalidRecords(errors) => {
            errors.iter().map(|(i, m)| (*i, m.as_str())).collect()
        }
        _ => Vec::new(),
    };
    p.record_errors = errors
        .into_iter()
        .map(|(index, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(s(message.to_string())))
        })
        .collect();
    p
}

pub(super) async fn handle(broker: &Arc<Broker>, req: ProduceRequest, version: i16) -> Pending {
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let outcome = if req.transactional_id.is_some() {
                Outcome::Failed(StorageError::Unsupported("transactional produce"))
            } else {
                match pd.records {
                    None => Outcome::Failed(StorageError::CorruptMessage("null records".into())),
                    Some(records) => match append(broker, &name, pd.index, records).await {
                        Ok(p) => Outcome::Appended(p),
                        Err(e) => Outcome::Failed(e),
                    },
                }
            };
            parts.push((pd.index, outcome));
        }
        topics.push((td.name, parts));
    }
    let acks = req.acks;
    let broker = broker.clone();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut out = Vec::with_capacity(parts.len());
            for (index, outcome) in parts {
                let resp = match outcome {
                    Outcome::Failed(e) => {
                        debug!(topic = %name.0.as_str(), partition = index, error = %e, "produce refused");
                        failure(index, &e, version)
                    }
                    Outcome::Appended(p) => {
                        let (base, append_time) = (p.base_offset, p.log_append_time);
                        match p.committed().await {
                            Ok(()) => {
                                let start = broker
                                    .log
                                    .topic(name.0.as_str())
                                    .and_then(|t| t.partition(index))
                                    .map(|p| p.snapshot().log_start_offset)
                                    .unwrap_or(-1);
                                let r = PartitionProduceResponse::default()
                                    .with_index(index)
                                    .with_error_code(code::NONE)
                                    .with_base_offset(base)
                                    .with_log_append_time_ms(append_time);
                                if version >= 5 {
                                    r.with_log_start_offset(start)
                                } else {
                                    r
                                }
                            }
                            Err(e) => failure(index, &e, version),
                        }
                    }
                };
                out.push(resp);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(out),
            );
        }
        if acks == 0 {
            return None;
        }
        Some(Response::Produce(
            ProduceResponse::default().with_responses(responses),
        ))
    })
}

/// Appends, validating every key and value first when the topic's
/// `floe.validate.mode` (or the broker's default) is `reject`.
async fn append(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> Result<floe_storage::log::PendingAppend, StorageError> {
    let validates = broker
        .log
        .topic(topic)
        .and_then(|t| t.validates())
        .unwrap_or(broker.validates);
    if !validates {
        return broker.log.append(topic, partition, records).await;
    }
    let registry = &broker.registry;
    let (value_subject, key_subject) = (format!("{topic}-value"), format!("{topic}-key"));
    // The subjects' schema ids are read once per request, not per record.
    let (value_ids, key_ids) = (
        registry.live_ids(&value_subject),
        registry.live_ids(&key_subject),
    );
    let check = |r: &floe_protocol::records::Record| -> Result<(), String> {
        if let Some(value) = &r.value {
            if value_ids.is_empty() {
                return Err(format!(
                    "topic {topic} validates in reject mode but has no schema under subject {value_subject}"
                ));
            }
            registry
                .validate(&value_subject, &value_ids, value)
                .map_err(|why| format!("value: {why}"))?;
        }
        if let (Some(key), false) = (&r.key, key_ids.is_empty()) {
            registry
                .validate(&key_subject, &key_ids, key)
                .map_err(|why| format!("key: {why}"))?;
        }
        Ok(())
    };
    broker
        .log
        .append_checked(topic, partition, records, Some(&check))
        .await
}
