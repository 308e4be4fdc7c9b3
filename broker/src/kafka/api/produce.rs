//! Produce: append in request order, answer after the flush commits.

use std::sync::Arc;

use floe_protocol::frame::Response;
use floe_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use floe_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use floe_storage::log::PendingAppend;
use floe_storage::StorageError;
use tracing::debug;

use super::leader_hints::{node_endpoints, LeaderHints};
use super::{s, Pending};
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

/// Produce v10 carries KIP-951 leader hints.
const HINTS_VERSION: i16 = 10;

/// Names the current leader of every partition refused with
/// NOT_LEADER_OR_FOLLOWER, and those leaders' endpoints (KIP-951).
fn hint_leaders(broker: &Broker, listener: &str, response: &mut ProduceResponse) {
    let mut hints = LeaderHints::new(broker, listener);
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            if p.error_code != code::NOT_LEADER_OR_FOLLOWER {
                continue;
            }
            if let Some((leader, epoch)) = hints.leader(t.name.0.as_str(), p.index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(leader.into())
                    .with_leader_epoch(epoch);
            }
        }
    }
    response.node_endpoints = node_endpoints!(hints, NodeEndpoint);
}

enum Outcome {
    Appended(PendingAppend),
    Failed(StorageError),
    /// The principal may not write to the topic.
    Denied,
    /// Refused before the log saw it, with this error.
    Refused(i16),
}

impl Outcome {
    fn of(result: Result<PendingAppend, StorageError>) -> Outcome {
        match result {
            Ok(p) => Outcome::Appended(p),
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// A partition's append: finished, or running as its own task.
enum Appending {
    Done(Outcome),
    Task(tokio::task::JoinHandle<Result<PendingAppend, StorageError>>),
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

/// A principal without WRITE on a topic has each of its partitions
/// refused with TOPIC_AUTHORIZATION_FAILED, as in Kafka.
pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    version: i16,
    access: &Access,
    listener: &str,
) -> Pending {
    // Partitions are appended one after another, except that the
    // partitions of topics that validate run as tasks of their own, so
    // their records are checked on every core. All appends finish before
    // the next request of the connection is read, which keeps each
    // partition's batches in request order.
    let mut topics = Vec::with_capacity(req.topic_data.len());
    // A broker whose lease lapsed cannot know it still leads: it appends
    // nothing, and producers look for the leader again.
    let live = broker.membership().is_live();
    for td in req.topic_data {
        let name = td.name.0.to_string();
        let writable = access.allows(Resource::Topic(&name), Operation::Write);
        let parallel = td.partition_data.len() > 1 && {
            let (reject, coerce) = checks(broker, &name);
            reject || coerce.is_some()
        };
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let batches = pd.records.clone().unwrap_or_default();
            let pending = if !writable {
                Appending::Done(Outcome::Denied)
            } else if !live {
                Appending::Done(Outcome::Failed(StorageError::Fenced(format!(
                    "{name}-{}: this broker's lease lapsed",
                    pd.index
                ))))
            } else if let Some(refused) = transactional_refusal(
                broker,
                req.transactional_id.as_ref().map(|s| s.as_str()),
                &name,
                pd.index,
                pd.records.as_ref(),
                access,
            )
            .await
            {
                Appending::Done(Outcome::Refused(refused))
            } else {
                match pd.records {
                    None => Appending::Done(Outcome::Failed(StorageError::CorruptMessage(
                        "null records".into(),
                    ))),
                    Some(records) if parallel => {
                        let (broker, name) = (broker.clone(), name.clone());
                        Appending::Task(tokio::spawn(async move {
                            append(&broker, &name, pd.index, records).await
                        }))
                    }
                    Some(records) => {
                        Appending::Done(Outcome::of(append(broker, &name, pd.index, records).await))
                    }
                }
            };
            parts.push((pd.index, pending, batches));
        }
        let mut done = Vec::with_capacity(parts.len());
        for (index, pending, batches) in parts {
            let outcome = match pending {
                Appending::Done(outcome) => outcome,
                Appending::Task(task) => match task.await {
                    Ok(result) => Outcome::of(result),
                    Err(e) => Outcome::Failed(StorageError::FlushFailed(format!(
                        "append task failed: {e}"
                    ))),
                },
            };
            done.push((index, outcome, batches));
        }
        topics.push((td.name, done));
    }
    let acks = req.acks;
    let broker = broker.clone();
    let listener = listener.to_string();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut out = Vec::with_capacity(parts.len());
            for (index, outcome, batches) in parts {
                let resp = match outcome {
                    Outcome::Denied => PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                        .with_base_offset(-1),
                    Outcome::Refused(c) => PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(c)
                        .with_base_offset(-1),
                    Outcome::Failed(e) => {
                        debug!(topic = %name.0.as_str(), partition = index, error = %e, "produce refused");
                        failure(index, &e, version)
                    }
                    Outcome::Appended(p) => {
                        let (base, append_time) = (p.base_offset, p.log_append_time);
                        match p.committed().await {
                            Ok(()) => {
                                broker.metrics().produced(name.0.as_str(), &batches);
                                let start = broker
                                    .log()
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
        let mut response = ProduceResponse::default().with_responses(responses);
        if version >= HINTS_VERSION {
            hint_leaders(&broker, &listener, &mut response);
        }
        Some(Response::Produce(response))
    })
}

/// Why a transactional produce may not write to a partition: the
/// principal may not use the transactional id, or the producer is not the
/// id's current one, or the partition is not in its open transaction
/// (KIP-890's defence against hanging transactions, checked with the
/// coordinator when it runs on this broker).
async fn transactional_refusal(
    broker: &Arc<Broker>,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Option<&bytes::Bytes>,
    access: &Access,
) -> Option<i16> {
    let header = records.and_then(|r| floe_protocol::records::BatchHeader::parse(r).ok())?;
    if !header.is_transactional() {
        return None;
    }
    let Some(id) = transactional_id.filter(|id| !id.is_empty()) else {
        return Some(code::INVALID_TXN_STATE);
    };
    if !access.allows(Resource::TransactionalId(id), Operation::Write) {
        return Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    if !broker.coordinates_groups() {
        return None;
    }
    let producer = (header.producer_id, header.producer_epoch);
    broker
        .transactions()
        .check_produce(id, producer, topic, partition)
        .await
        .err()
}

/// How a topic's records are checked on the way in: whether its
/// `floe.validate.mode` (or the broker's default) is `reject`, and the
/// message values without the schema prefix are coerced to, if it coerces.
fn checks(broker: &Broker, topic: &str) -> (bool, Option<Option<String>>) {
    let t = broker.log().topic(topic);
    let reject = t
        .as_ref()
        .and_then(|t| t.validates())
        .unwrap_or(broker.validates());
    (reject, t.and_then(|t| t.coerce()))
}

/// Appends, first wrapping values without the schema prefix when the topic
/// coerces (`floe.validate.coerce`), then validating every key and value
/// when the topic's `floe.validate.mode` (or the broker's default) is
/// `reject`.
async fn append(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> Result<floe_storage::log::PendingAppend, StorageError> {
    match append_here(broker, topic, partition, records).await {
        // Not here: another broker may lead it.
        Err(StorageError::UnknownTopic(_))
            if broker.not_led_here(topic, partition) == code::NOT_LEADER_OR_FOLLOWER =>
        {
            Err(StorageError::Fenced(format!(
                "{topic}-{partition} is led by another broker"
            )))
        }
        result => result,
    }
}

/// [`append`] to a topic this broker leads.
async fn append_here(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> Result<floe_storage::log::PendingAppend, StorageError> {
    let (reject, coerce) = checks(broker, topic);
    if !reject && coerce.is_none() {
        return broker.log().append(topic, partition, records).await;
    }
    match append_checked(broker, topic, partition, records.clone(), reject, &coerce).await {
        // A refusal may come of a schema registered on another broker a
        // moment ago: checked once more if the registry changed.
        Err(StorageError::InvalidRecords(_)) if broker.registry().catch_up().await => {
            append_checked(broker, topic, partition, records, reject, &coerce).await
        }
        done => done,
    }
}

/// [`append_here`] with the checks.
async fn append_checked(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
    reject: bool,
    coerce: &Option<Option<String>>,
) -> Result<floe_storage::log::PendingAppend, StorageError> {
    let registry = broker.registry();
    // Subjects and schemas are looked up once per request, not per record.
    let mut values = registry.subject_check(format!("{topic}-value"));
    let mut keys = registry.subject_check(format!("{topic}-key"));
    let mut check = |r: &mut floe_protocol::records::Record| -> Result<bool, String> {
        let mut changed = false;
        if let (Some(message), Some(value)) = (coerce, &mut r.value) {
            // A protobuf message never starts with byte 0 (field number 0
            // does not exist), so a value that does carries the prefix.
            if value.first() != Some(&0) {
                let prefix = values
                    .coerce_prefix(message.as_deref())
                    .map_err(|why| format!("value cannot be coerced: {why}"))?;
                let mut wrapped = bytes::BytesMut::with_capacity(prefix.len() + value.len());
                wrapped.extend_from_slice(prefix);
                wrapped.extend_from_slice(value);
                *value = wrapped.freeze();
                changed = true;
            }
        }
        if !reject {
            return Ok(changed);
        }
        if let Some(value) = &r.value {
            if !values.has_schema() {
                return Err(format!(
                    "topic {topic} validates in reject mode but has no schema under subject {}",
                    values.subject()
                ));
            }
            values.check(value).map_err(|why| format!("value: {why}"))?;
        }
        if let (Some(key), true) = (&r.key, keys.has_schema()) {
            keys.check(key).map_err(|why| format!("key: {why}"))?;
        }
        Ok(changed)
    };
    broker
        .log()
        .append_checked(topic, partition, records, Some(&mut check))
        .await
}
