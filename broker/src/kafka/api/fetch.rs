//! Fetch: read from the tail cache or the segments; long-poll until
//! `min_bytes` arrive or `max_wait_ms` passes.
//!
//! The partitions of one request are read in request order, a few at a
//! time, each within the room the response's `max_bytes` leaves (the first
//! partition with data always gets its data, as KIP-74 asks); once the
//! response is full the rest are not read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe_protocol::frame::Response;
use floe_protocol::kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use floe_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use floe_storage::log::{ReadResult, TopicLog};
use floe_storage::StorageError;
use futures::StreamExt;
use tokio::time::Instant;
use tracing::warn;

use super::leader_hints::{node_endpoints, LeaderHints};
use super::{check_leader_epoch, Pending};
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

/// Partition reads of one fetch in flight at once.
const READS_AT_ONCE: usize = 32;

/// Fetch v13+ names topics by id only.
const TOPIC_ID_VERSION: i16 = 13;

/// Fetch v16 carries KIP-951 leader hints.
const HINTS_VERSION: i16 = 16;

pub(super) fn handle(
    broker: Arc<Broker>,
    req: FetchRequest,
    version: i16,
    client_id: String,
    principal: String,
    access: Access,
    listener: String,
) -> Pending {
    Box::pin(async move {
        let purpose = floe_schema::policy::purpose_from_client_id(&client_id).map(str::to_string);
        // A purpose the principal may not claim gets no data from schema
        // topics, rather than silently more than it asked for.
        let claim_refused = match purpose.as_deref() {
            None => false,
            Some(p) => !may_claim(&broker, &principal, p).await,
        };
        let reader = Reader {
            purpose,
            claim_refused,
            access,
            listener,
        };
        let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
        let mut commits = broker.log().commit_notifications();
        loop {
            commits.borrow_and_update();
            let (resp, bytes, errors) = collect(&broker, &req, version, &reader).await;
            if bytes >= req.min_bytes.max(0) as usize || errors || Instant::now() >= deadline {
                return Some(Response::Fetch(counted(&broker, resp)));
            }
            tokio::select! {
                r = commits.changed() => { if r.is_err() { return Some(Response::Fetch(counted(&broker, resp))); } }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    })
}

/// True when `principal` may claim `purpose`; a claim not granted here is
/// looked up again in the store (it may have been granted on another broker
/// a moment ago).
async fn may_claim(broker: &Broker, principal: &str, purpose: &str) -> bool {
    let registry = broker.registry();
    let granted = || registry.may_claim(principal, purpose);
    granted() || (registry.catch_up().await && granted())
}

/// The response, its records counted in the metrics.
fn counted(broker: &Broker, resp: FetchResponse) -> FetchResponse {
    for t in &resp.responses {
        // From v13 a response names topics by id only.
        let by_id = t
            .topic
            .0
            .is_empty()
            .then(|| broker.log().topic_by_id(t.topic_id))
            .flatten();
        let name = by_id
            .as_ref()
            .map_or(t.topic.0.as_str(), |t| t.name.as_str());
        for p in &t.partitions {
            if let Some(records) = &p.records {
                broker.metrics().fetched(name, records);
            }
        }
    }
    resp
}

/// What one requested partition resolves to before reading.
enum Slot {
    Done(PartitionData),
    Read {
        base: PartitionData,
        topic: Arc<TopicLog>,
        partition: i32,
        offset: i64,
        limit: usize,
    },
}

/// Who is reading: the purpose stated in the client id, and whether the
/// principal may claim it.
struct Reader {
    purpose: Option<String>,
    claim_refused: bool,
    /// The ACLs: a topic it may not READ is refused with
    /// TOPIC_AUTHORIZATION_FAILED.
    access: Access,
    /// The listener the request came in through (for leader hints).
    listener: String,
}

async fn collect(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
    reader: &Reader,
) -> (FetchResponse, usize, bool) {
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let start = |pd: PartitionData, offset: i64| {
        if version >= 5 {
            pd.with_log_start_offset(offset)
        } else {
            pd
        }
    };
    let mut errors = false;
    // A broker whose lease lapsed cannot know it still leads: it serves
    // nothing, and clients look for the leader again.
    let live = broker.membership().is_live();
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if version >= TOPIC_ID_VERSION {
            broker.log().topic_by_id(ft.topic_id)
        } else {
            broker.log().topic(ft.topic.0.as_str())
        };
        let name = match &topic {
            Some(t) => Some(t.name.clone()),
            None if version >= TOPIC_ID_VERSION => {
                broker.cluster().topic_by_id(ft.topic_id).map(|(n, _)| n)
            }
            None => Some(ft.topic.0.to_string()),
        };
        let readable = name
            .as_deref()
            .is_none_or(|n| reader.access.allows(Resource::Topic(n), Operation::Read));
        let mut parts = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let pd = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_aborted_transactions((req.isolation_level == 1).then(Vec::new))
                .with_preferred_read_replica(BrokerId(-1));
            if !readable {
                errors = true;
                parts.push(Slot::Done(
                    pd.with_error_code(code::TOPIC_AUTHORIZATION_FAILED),
                ));
                continue;
            }
            let Some(topic) = &topic else {
                errors = true;
                let c = match &name {
                    Some(name)
                        if broker.not_led_here(name, fp.partition)
                            != code::UNKNOWN_TOPIC_OR_PARTITION =>
                    {
                        code::NOT_LEADER_OR_FOLLOWER
                    }
                    _ if version >= TOPIC_ID_VERSION => code::UNKNOWN_TOPIC_ID,
                    _ => code::UNKNOWN_TOPIC_OR_PARTITION,
                };
                parts.push(Slot::Done(pd.with_error_code(c)));
                continue;
            };
            let Some(partition) = topic.partition(fp.partition) else {
                errors = true;
                parts.push(Slot::Done(
                    pd.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                ));
                continue;
            };
            let snap = partition.snapshot();
            let pd = start(
                pd.with_high_watermark(snap.high_watermark)
                    .with_last_stable_offset(snap.last_stable_offset),
                snap.log_start_offset,
            );
            if reader.claim_refused && broker.registry().has_subjects(&topic.name) {
                errors = true;
                parts.push(Slot::Done(
                    pd.with_error_code(code::TOPIC_AUTHORIZATION_FAILED),
                ));
                continue;
            }
            if !live {
                errors = true;
                parts.push(Slot::Done(pd.with_error_code(code::NOT_LEADER_OR_FOLLOWER)));
                continue;
            }
            let epoch_error = check_leader_epoch(fp.current_leader_epoch, snap.leader_epoch);
            if epoch_error != code::NONE {
                errors = true;
                parts.push(Slot::Done(pd.with_error_code(epoch_error)));
                continue;
            }
            let limit = (fp.partition_max_bytes.max(0) as usize)
                .min(max_bytes)
                .max(1);
            parts.push(Slot::Read {
                base: pd,
                topic: topic.clone(),
                partition: fp.partition,
                offset: fp.fetch_offset,
                limit,
            });
        }
        slots.push(parts);
    }

    // Reads start in request order, a few at a time, each limited to what
    // the response still has room for; none starts once it is full (a
    // thousand partitions asked at 4 MiB each must not read 4 GiB to
    // answer 50 MiB).
    let filled = AtomicUsize::new(0);
    let committed_only = req.isolation_level == 1;
    let reads: Vec<(Arc<TopicLog>, i32, i64, usize)> = slots
        .iter()
        .flatten()
        .filter_map(|s| match s {
            Slot::Read {
                topic,
                partition,
                offset,
                limit,
                ..
            } => Some((topic.clone(), *partition, *offset, *limit)),
            Slot::Done(_) => None,
        })
        .collect();
    let mut results = futures::stream::iter(reads)
        .map(|(topic, partition, offset, limit)| {
            let room = max_bytes.saturating_sub(filled.load(Ordering::Relaxed));
            let first = filled.load(Ordering::Relaxed) == 0;
            async move {
                if room == 0 {
                    return None;
                }
                // The first partition gets its whole limit (KIP-74: at least
                // one batch whatever max_bytes says).
                let limit = if first { limit } else { limit.min(room) };
                // read_committed: up to the last stable offset, without
                // aborted records, so the aborted-transactions list a
                // client filters by is always empty.
                Some(match committed_only {
                    true => {
                        broker
                            .log()
                            .read_committed(&topic, partition, offset, limit)
                            .await
                    }
                    false => broker.log().read(&topic, partition, offset, limit).await,
                })
            }
        })
        .buffered(READS_AT_ONCE);

    let mut total = 0usize;
    let mut responses = Vec::with_capacity(req.topics.len());
    for (ft, parts) in req.topics.iter().zip(slots) {
        let mut out = Vec::with_capacity(parts.len());
        for slot in parts {
            let pd = match slot {
                Slot::Done(pd) => pd,
                Slot::Read { base, topic, .. } => match results.next().await {
                    Some(Some(Ok(read))) => {
                        let fits = total == 0 || total + read.size <= max_bytes;
                        let pd = start(
                            base.with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.last_stable_offset),
                            read.log_start_offset,
                        );
                        if fits {
                            total += read.size;
                            filled.store(total, Ordering::Relaxed);
                            let records = broker.registry().redact_batches(
                                &topic.name,
                                concat(read),
                                reader.purpose.as_deref(),
                            );
                            pd.with_records(Some(records))
                        } else {
                            pd.with_records(Some(Bytes::new()))
                        }
                    }
                    // Not read: the response was full.
                    Some(None) => base.with_records(Some(Bytes::new())),
                    Some(Some(Err(e))) => {
                        errors = true;
                        let c = match e {
                            StorageError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
                            ref other => {
                                warn!(topic = %ft.topic.0.as_str(), error = %other, "fetch read failed");
                                error_code(other)
                            }
                        };
                        base.with_error_code(c)
                    }
                    None => base.with_error_code(code::UNKNOWN_SERVER_ERROR),
                },
            };
            out.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(out),
        );
    }
    let mut response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    if version >= HINTS_VERSION && errors {
        hint_leaders(broker, &reader.listener, &mut response);
    }
    (response, total, errors)
}

/// Names the current leader of every partition refused with
/// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and those leaders'
/// endpoints (KIP-951).
fn hint_leaders(broker: &Broker, listener: &str, response: &mut FetchResponse) {
    let mut hints = LeaderHints::new(broker, listener);
    for t in &mut response.responses {
        let name = match t.topic.0.is_empty() {
            true => broker.placed_by_id(t.topic_id).map(|(n, _)| n),
            false => Some(t.topic.0.to_string()),
        };
        let Some(name) = name else {
            continue;
        };
        for p in &mut t.partitions {
            if p.error_code != code::NOT_LEADER_OR_FOLLOWER
                && p.error_code != code::FENCED_LEADER_EPOCH
            {
                continue;
            }
            if let Some((leader, epoch)) = hints.leader(&name, p.partition_index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(leader.into())
                    .with_leader_epoch(epoch);
            }
        }
    }
    response.node_endpoints = node_endpoints!(hints, NodeEndpoint);
}

fn concat(read: ReadResult) -> Bytes {
    if read.batches.len() == 1 {
        return read.batches.into_iter().next().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(read.size);
    for b in read.batches {
        buf.extend_from_slice(&b);
    }
    buf.freeze()
}
