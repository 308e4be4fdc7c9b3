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
use crate::kafka::authorized_operations::{self as ops, if_asked};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) fn describe_topic(broker: &Broker, t: &TopicLog, version: i16) -> MetadataResponseTopic {
    let partitions = t
        .partitions()
        .iter()
        .map(|p| {
            let snap = p.snapshot();
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(broker.broker_id()))
                .with_leader_epoch(if version >= 7 { snap.leader_epoch } else { -1 })
                .with_replica_nodes(vec![BrokerId(broker.broker_id())])
                .with_isr_nodes(vec![BrokerId(broker.broker_id())])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(t.name.clone()))))
        .with_topic_id(if version >= 10 {
            t.id
        } else {
            uuid::Uuid::nil()
        })
        .with_partitions(partitions)
}

fn topic_error(name: Option<TopicName>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    // Only v10+ requests name topics by id, so a non-nil id implies v10+.
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(code)
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create = broker.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
    let topic_operations = if_asked(
        version >= 8 && req.include_topic_authorized_operations,
        ops::topic(),
    );
    let cluster_operations = if_asked(
        (8..=10).contains(&version) && req.include_cluster_authorized_operations,
        ops::cluster(),
    );
    let mut topics = Vec::new();
    if all {
        topics = broker
            .log()
            .topics()
            .iter()
            .map(|t| describe_topic(broker, t, version))
            .collect();
    } else {
        for rt in req.topics.unwrap_or_default() {
            let Some(name) = rt.name.clone() else {
                match broker.log().topic_by_id(rt.topic_id) {
                    Some(t) => topics.push(describe_topic(broker, &t, version)),
                    None => topics.push(topic_error(None, rt.topic_id, code::UNKNOWN_TOPIC_ID)),
                }
                continue;
            };
            if let Some(t) = broker.log().topic(name.as_str()) {
                topics.push(describe_topic(broker, &t, version));
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
                    match broker.log().topic(name.as_str()) {
                        Some(t) => topics.push(describe_topic(broker, &t, version)),
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
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.broker_id()))
            .with_host(s(broker.advertised_host()))
            .with_port(broker.advertised_port())])
        .with_topics(
            topics
                .into_iter()
                .map(|t| {
                    if t.error_code == code::NONE {
                        t.with_topic_authorized_operations(topic_operations)
                    } else {
                        t
                    }
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
