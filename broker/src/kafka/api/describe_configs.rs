//! DescribeConfigs for topics (Kafka's defaults reported for unset keys)
//! and for this broker.

use std::sync::Arc;

use floe_protocol::configs::{
    RESOURCE_BROKER, RESOURCE_TOPIC, SOURCE_DEFAULT, SOURCE_DYNAMIC_DEFAULT_BROKER,
    SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER,
};
use floe_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use floe_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use floe_storage::topic_config::{config_def, ConfigType, BROKER_TOPIC_DEFAULTS, TOPIC_CONFIGS};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;
use crate::Broker;

struct Entry {
    name: String,
    value: String,
    source: i8,
    kind: ConfigType,
    doc: &'static str,
    read_only: bool,
}

fn broker_entries(b: &Broker) -> Vec<Entry> {
    let e = |name: &str, value: String, kind, doc| Entry {
        name: name.into(),
        value,
        source: SOURCE_STATIC_BROKER,
        kind,
        doc,
        read_only: true,
    };
    // The dynamic ones: cluster-wide defaults of topic configs.
    let dynamic = b.log().broker_configs();
    let mut entries: Vec<Entry> = BROKER_TOPIC_DEFAULTS
        .iter()
        .filter_map(|(name, topic)| {
            let def = config_def(topic)?;
            let (value, source) = match dynamic.get(*name) {
                Some(v) => (v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER),
                None => (def.default.to_string(), SOURCE_DEFAULT),
            };
            Some(Entry {
                name: name.to_string(),
                value,
                source,
                kind: def.kind,
                doc: "cluster-wide default of the topic config of the same meaning",
                read_only: false,
            })
        })
        .collect();
    entries.extend([
        e(
            "broker.id",
            b.broker_id().to_string(),
            ConfigType::Int,
            "this broker's id",
        ),
        e(
            "auto.create.topics.enable",
            b.auto_create_topics().to_string(),
            ConfigType::Boolean,
            "create topics on first use",
        ),
        e(
            "num.partitions",
            b.num_partitions().to_string(),
            ConfigType::Int,
            "partitions of auto-created topics",
        ),
        e(
            "default.replication.factor",
            "1".into(),
            ConfigType::Int,
            "durability comes from object storage",
        ),
        e(
            "min.insync.replicas",
            "1".into(),
            ConfigType::Int,
            "durability comes from object storage",
        ),
        e(
            "socket.request.max.bytes",
            b.max_frame_bytes().to_string(),
            ConfigType::Int,
            "largest request frame",
        ),
    ]);
    entries
}

/// The broker configs only floe's flags set (AlterConfigs refuses them).
pub(super) fn read_only_broker_configs(b: &Broker) -> Vec<String> {
    broker_entries(b)
        .into_iter()
        .filter(|e| e.read_only)
        .map(|e| e.name)
        .collect()
}

/// The error a principal that may not do `op` to the configs of a
/// resource gets (Kafka checks a topic's configs on the topic and a
/// broker's on the cluster), or None when it may.
pub(super) fn config_refusal(
    access: &Access,
    resource_type: i8,
    name: &str,
    op: Operation,
) -> Option<i16> {
    match resource_type {
        RESOURCE_TOPIC if !access.allows(Resource::Topic(name), op) => {
            Some(code::TOPIC_AUTHORIZATION_FAILED)
        }
        RESOURCE_BROKER if !access.allows(Resource::Cluster, op) => {
            Some(code::CLUSTER_AUTHORIZATION_FAILED)
        }
        _ => None,
    }
}

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    version: i16,
    access: &Access,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let base = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if let Some(error) =
            config_refusal(access, r.resource_type, &name, Operation::DescribeConfigs)
        {
            results.push(base.with_error_code(error));
            continue;
        }
        let entries: Vec<Entry> = match r.resource_type {
            RESOURCE_TOPIC => {
                let Some(cfg) = broker.topic_config(&name) else {
                    results.push(
                        base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s(format!("unknown topic {name}")))),
                    );
                    continue;
                };
                TOPIC_CONFIGS
                    .iter()
                    .map(|d| {
                        let source = if cfg.overrides.contains_key(d.name) {
                            SOURCE_DYNAMIC_TOPIC
                        } else if cfg.cluster_default(d.name).is_some() {
                            SOURCE_DYNAMIC_DEFAULT_BROKER
                        } else {
                            SOURCE_DEFAULT
                        };
                        Entry {
                            name: d.name.into(),
                            value: cfg.get(d.name).unwrap_or(d.default).to_string(),
                            source,
                            kind: d.kind,
                            doc: d.doc,
                            read_only: false,
                        }
                    })
                    .collect()
            }
            RESOURCE_BROKER if name.is_empty() || name == broker.broker_id().to_string() => {
                broker_entries(broker)
            }
            RESOURCE_BROKER => {
                results.push(
                    base.with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(s(format!("unknown broker {name}")))),
                );
                continue;
            }
            other => {
                results.push(
                    base.with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(s(format!(
                            "config resource type {other} is not supported"
                        )))),
                );
                continue;
            }
        };
        let wanted = |n: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == n))
        };
        let configs = entries
            .into_iter()
            .filter(|e| wanted(&e.name))
            .map(|e| {
                let mut c = DescribeConfigsResourceResult::default()
                    .with_name(s(e.name.clone()))
                    .with_value(Some(s(e.value.clone())))
                    .with_read_only(e.read_only)
                    .with_config_source(e.source);
                if version >= 3 {
                    c.config_type = e.kind as i8;
                }
                if req.include_synonyms {
                    c.synonyms = vec![DescribeConfigsSynonym::default()
                        .with_name(s(e.name))
                        .with_value(Some(s(e.value)))
                        .with_source(e.source)];
                }
                if req.include_documentation && version >= 3 {
                    c.documentation = Some(s(e.doc));
                }
                c
            })
            .collect();
        results.push(base.with_configs(configs));
    }
    DescribeConfigsResponse::default().with_results(results)
}
