//! AlterConfigs: replace a topic's explicit configs, or a broker's dynamic
//! ones, with the given set.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use floe_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::broker_configs;
use floe_protocol::configs::{RESOURCE_BROKER, RESOURCE_TOPIC};

use super::describe_configs::config_refusal;
use super::s;
use crate::acl::{Access, Operation};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: AlterConfigsRequest,
    access: &Access,
) -> AlterConfigsResponse {
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
        // AlterConfigs replaces the resource's whole set.
        let configs: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        match r.resource_type {
            RESOURCE_TOPIC => {
                match broker
                    .log()
                    .set_topic_configs(r.resource_name.as_str(), configs, req.validate_only)
                    .await
                {
                    Ok(()) => responses.push(base),
                    Err(e) => responses.push(
                        base.with_error_code(error_code(&e))
                            .with_error_message(Some(s(e.to_string()))),
                    ),
                }
            }
            RESOURCE_BROKER => {
                let (error, message) = broker_configs::alter(
                    broker,
                    r.resource_name.as_str(),
                    configs,
                    req.validate_only,
                )
                .await;
                responses.push(
                    base.with_error_code(error)
                        .with_error_message(message.map(s)),
                );
            }
            other => responses.push(
                base.with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(s(format!(
                        "config resource type {other} is not supported"
                    )))),
            ),
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}
