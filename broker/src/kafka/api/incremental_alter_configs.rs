//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's
//! explicit configs; SET and DELETE on a broker's dynamic configs.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use floe_protocol::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use floe_storage::topic_config::{config_def, ConfigType};
use floe_storage::StorageError;

use super::broker_configs;
use floe_protocol::configs::{
    OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT, RESOURCE_BROKER, RESOURCE_TOPIC,
};

use super::describe_configs::config_refusal;
use super::s;
use crate::acl::{Access, Operation};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
    access: &Access,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let base = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let name = r.resource_name.as_str();
        if let Some(error) = config_refusal(access, r.resource_type, name, Operation::AlterConfigs)
        {
            responses.push(base.with_error_code(error));
            continue;
        }
        if r.resource_type == RESOURCE_BROKER {
            let mut configs = broker.log().broker_configs();
            let mut refused = None;
            for c in &r.configs {
                match (c.config_operation, &c.value) {
                    (OP_SET, Some(v)) => {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    (OP_DELETE, _) => {
                        configs.remove(c.name.as_str());
                    }
                    (op, _) => {
                        refused = Some(format!(
                            "operation {op} is not valid for {}",
                            c.name.as_str()
                        ));
                        break;
                    }
                }
            }
            let (error, message) = match refused {
                Some(why) => (code::INVALID_REQUEST, Some(why)),
                None => {
                    broker_configs::alter(
                        broker,
                        r.resource_name.as_str(),
                        configs,
                        req.validate_only,
                    )
                    .await
                }
            };
            responses.push(
                base.with_error_code(error)
                    .with_error_message(message.map(s)),
            );
            continue;
        }
        if r.resource_type != RESOURCE_TOPIC {
            responses.push(
                base.with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(s("unsupported resource type"))),
            );
            continue;
        }
        let name = r.resource_name.to_string();
        let Some(cfg) = broker.topic_config(&name) else {
            responses.push(base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        let mut overrides = cfg.overrides.clone();
        let mut failure: Option<StorageError> = None;
        for c in &r.configs {
            let key = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string());
            let is_list = config_def(&key).is_some_and(|d| d.kind == ConfigType::List);
            match (c.config_operation, value) {
                (OP_SET, Some(v)) => {
                    overrides.insert(key, v);
                }
                (OP_DELETE, _) => {
                    overrides.remove(&key);
                }
                (OP_APPEND | OP_SUBTRACT, Some(v)) if is_list => {
                    let current = cfg.get(&key).unwrap_or_default().to_string();
                    let mut items: Vec<String> = current
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect();
                    for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                        if c.config_operation == OP_APPEND {
                            if !items.iter().any(|i| i == item) {
                                items.push(item.to_string());
                            }
                        } else {
                            items.retain(|i| i != item);
                        }
                    }
                    overrides.insert(key, items.join(","));
                }
                (op, _) => {
                    failure = Some(StorageError::InvalidConfig(format!(
                        "operation {op} is not valid for {key}"
                    )));
                    break;
                }
            }
        }
        let result = match failure {
            Some(e) => Err(e),
            None => {
                broker
                    .log()
                    .set_topic_configs(&name, overrides, req.validate_only)
                    .await
            }
        };
        match result {
            Ok(()) => responses.push(base),
            Err(e) => responses.push(
                base.with_error_code(error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            ),
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
