//! CreateTopics.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use floe_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use floe_storage::topic_config::{TopicConfig, TOPIC_CONFIGS};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

fn effective_configs(cfg: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            // Kafka's sources: the topic's own, the cluster-wide dynamic
            // default, the default.
            let source = if cfg.overrides.contains_key(d.name) {
                1
            } else if cfg.cluster_default(d.name).is_some() {
                3
            } else {
                5
            };
            CreatableTopicConfigs::default()
                .with_name(s(d.name))
                .with_value(cfg.get(d.name).map(s))
                .with_config_source(source)
        })
        .collect()
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
    access: &Access,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let partitions = if !t.assignments.is_empty() {
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            broker.num_partitions()
        } else {
            t.num_partitions
        };
        let base = CreatableTopicResult::default().with_name(t.name.clone());
        if !access.may_create_topic(&name) {
            results.push(
                base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(s("Authorization failed."))),
            );
            continue;
        }
        // Durability comes from object storage, so any replication factor is
        // accepted and reported as requested; 0 and below -1 are invalid.
        if t.replication_factor == 0 || t.replication_factor < -1 {
            results.push(
                base.with_error_code(code::INVALID_REPLICATION_FACTOR)
                    .with_error_message(Some(s("replication factor must be -1 or at least 1"))),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        match broker
            .log()
            .create_topic(&name, partitions, configs.clone(), req.validate_only)
            .await
        {
            Ok(created) => {
                let cfg = broker.log().topic_config(configs).unwrap_or_default();
                let mut r = base;
                if version >= 5 {
                    r = r
                        .with_num_partitions(partitions)
                        .with_replication_factor(if t.replication_factor == -1 {
                            1
                        } else {
                            t.replication_factor
                        })
                        .with_configs(Some(effective_configs(&cfg)));
                    if !access.sees(Resource::Topic(&name), Operation::DescribeConfigs) {
                        r = r
                            .with_configs(None)
                            .with_topic_config_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                }
                if let (Some(topic), true) = (created, version >= 7) {
                    r = r.with_topic_id(topic.id);
                }
                results.push(r);
            }
            Err(e) => results.push(
                base.with_error_code(error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
