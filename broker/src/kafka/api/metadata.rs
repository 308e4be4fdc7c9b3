//! Metadata: brokers, topics and partition leaders, with automatic topic
//! creation like Kafka's `auto.create.topics.enable`.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use floe_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use floe_storage::log::TopicLog;
use floe_storage::StorageError;
use tracing::warn;

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::cluster::PlacedTopic;
use crate::kafka::authorized_operations::if_asked;
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) fn describe_topic(broker: &Broker, t: &TopicLog, version: i16) -> MetadataResponseTopic {
    let me = BrokerId(broker.broker_id());
    let partitions = t
        .partitions()
        .iter()
        .map(|p| partition(p.index, me, p.snapshot().leader_epoch, version))
        .collect();
    topic(&t.name, t.id, partitions, version)
}

/// A topic as placed (see [`Broker::placed`]); one the cluster view names
/// this broker for but the log does not hold (it is being taken over, or
/// was just fenced) has no leader yet, nor has one this broker leads while
/// its lease has lapsed (its view may be stale: the topic may have moved,
/// and clients should ask another broker).
fn describe_placed(
    broker: &Broker,
    name: &str,
    placed: &PlacedTopic,
    version: i16,
) -> MetadataResponseTopic {
    let leader = BrokerId(placed.leader_id);
    let leaderless = placed.leader_id == broker.broker_id()
        && (broker.log().topic(name).is_none() || !broker.membership().is_live());
    let partitions = placed
        .epochs
        .iter()
        .enumerate()
        .map(|(i, &epoch)| {
            let p = partition(i as i32, leader, epoch, version);
            match leaderless {
                true => p
                    .with_leader_id(BrokerId(-1))
                    .with_error_code(code::LEADER_NOT_AVAILABLE),
                false => p,
            }
        })
        .collect();
    topic(name, placed.id, partitions, version)
}

fn partition(index: i32, leader: BrokerId, epoch: i32, version: i16) -> MetadataResponsePartition {
    MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(leader)
        .with_leader_epoch(if version >= 7 { epoch } else { -1 })
        .with_replica_nodes(vec![leader])
        .with_isr_nodes(vec![leader])
}

fn topic(
    name: &str,
    id: uuid::Uuid,
    partitions: Vec<MetadataResponsePartition>,
    version: i16,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(name.to_string()))))
        .with_topic_id(if version >= 10 { id } else { uuid::Uuid::nil() })
        .with_partitions(partitions)
}

fn brokers(broker: &Broker, listener: &str) -> Vec<MetadataResponseBroker> {
    broker
        .addresses(listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(s(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(s))
        })
        .collect()
}

fn topic_error(name: Option<TopicName>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    // Only v10+ requests name topics by id, so a non-nil id implies v10+.
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(code)
}

/// Topics the principal may not describe are left out of a listing and
/// answered TOPIC_AUTHORIZATION_FAILED when named, whether they exist or
/// not; one that does not exist is auto-created only for a principal that
/// may create it (else TOPIC_AUTHORIZATION_FAILED too), as in Kafka.
pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: MetadataRequest,
    version: i16,
    access: &Access,
    listener: &str,
) -> MetadataResponse {
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create = broker.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
    let topic_operations_asked = version >= 8 && req.include_topic_authorized_operations;
    let cluster_operations = if_asked(
        (8..=10).contains(&version) && req.include_cluster_authorized_operations,
        access,
        Resource::Cluster,
    );
    let describable = |name: &str| access.sees(Resource::Topic(name), Operation::Describe);
    let mut topics = Vec::new();
    if all {
        topics = broker
            .placed_topics()
            .iter()
            .filter(|(n, _)| describable(n))
            .map(|(n, p)| describe_placed(broker, n, p, version))
            .collect();
    } else {
        for rt in req.topics.unwrap_or_default() {
            let Some(name) = rt.name.clone() else {
                let found = broker.placed_by_id(rt.topic_id);
                topics.push(match found {
                    Some((n, _)) if !access.allows(Resource::Topic(&n), Operation::Describe) => {
                        topic_error(None, rt.topic_id, code::TOPIC_AUTHORIZATION_FAILED)
                    }
                    Some((n, p)) => describe_placed(broker, &n, &p, version),
                    None => topic_error(None, rt.topic_id, code::UNKNOWN_TOPIC_ID),
                });
                continue;
            };
            if !access.allows(Resource::Topic(name.as_str()), Operation::Describe) {
                topics.push(topic_error(
                    Some(name),
                    uuid::Uuid::nil(),
                    code::TOPIC_AUTHORIZATION_FAILED,
                ));
                continue;
            }
            if let Some(p) = broker.placed(name.as_str()) {
                topics.push(describe_placed(broker, name.as_str(), &p, version));
                continue;
            }
            if let Err(e) = floe_storage::topic_config::validate_topic_name(name.as_str()) {
                topics.push(topic_error(Some(name), uuid::Uuid::nil(), error_code(&e)));
                continue;
            }
            if !auto_create {
                topics.push(topic_error(
                    Some(name),
                    uuid::Uuid::nil(),
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                ));
                continue;
            }
            if !access.may_create_topic(name.as_str()) {
                topics.push(topic_error(
                    Some(name),
                    uuid::Uuid::nil(),
                    code::TOPIC_AUTHORIZATION_FAILED,
                ));
                continue;
            }
            match broker
                .log()
                .create_topic(
                    name.as_str(),
                    broker.num_partitions(),
                    BTreeMap::new(),
                    false,
                )
                .await
            {
                Ok(Some(t)) => topics.push(describe_topic(broker, &t, version)),
                Ok(None) | Err(StorageError::TopicExists(_)) => {
                    match broker.placed(name.as_str()) {
                        Some(p) => topics.push(describe_placed(broker, name.as_str(), &p, version)),
                        None => topics.push(topic_error(
                            Some(name),
                            uuid::Uuid::nil(),
                            code::LEADER_NOT_AVAILABLE,
                        )),
                    }
                }
                Err(e) => {
                    warn!(topic = %name.as_str(), error = %e, "auto-creation failed");
                    topics.push(topic_error(Some(name), uuid::Uuid::nil(), error_code(&e)));
                }
            }
        }
    }
    let resp = MetadataResponse::default()
        .with_brokers(brokers(broker, listener))
        .with_topics(
            topics
                .into_iter()
                .map(|t| {
                    let operations = match (&t.name, t.error_code) {
                        (Some(name), code::NONE) => {
                            if_asked(topic_operations_asked, access, Resource::Topic(name))
                        }
                        _ => return t,
                    };
                    t.with_topic_authorized_operations(operations)
                })
                .collect(),
        )
        .with_cluster_authorized_operations(cluster_operations);
    let resp = if version >= 1 {
        resp.with_controller_id(BrokerId(broker.broker_id()))
    } else {
        resp
    };
    if version >= 2 {
        resp.with_cluster_id(Some(s(broker.cluster_id())))
    } else {
        resp
    }
}
