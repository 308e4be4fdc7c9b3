//! Changing a broker resource's configs (AlterConfigs and
//! IncrementalAlterConfigs): the dynamic ones are cluster-wide topic
//! defaults (`floe_storage::topic_config::BROKER_TOPIC_DEFAULTS`), the same
//! whichever broker or the cluster default resource is named, since floe's
//! brokers share one metadata store; the rest of what DescribeConfigs shows
//! comes from floe's flags and is refused as Kafka refuses a static config.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::describe_configs::read_only_broker_configs;
use crate::kafka::errors::{code, error_code};
use crate::Broker;

/// Makes `configs` the dynamic configs of the broker resource `name` (""
/// for the cluster default): the error and message to answer.
pub(super) async fn alter(
    broker: &Arc<Broker>,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> (i16, Option<String>) {
    if !name.is_empty() && name != broker.broker_id().to_string() {
        return (
            code::INVALID_REQUEST,
            Some(format!(
                "unexpected broker id {name}: expected {} or an empty name (the cluster default)",
                broker.broker_id()
            )),
        );
    }
    let read_only = read_only_broker_configs(broker);
    let fixed: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|k| read_only.iter().any(|r| r == k))
        .collect();
    if !fixed.is_empty() {
        // Kafka's answer to a config that is not dynamic: the whole
        // resource refused.
        return (
            code::INVALID_REQUEST,
            Some(format!(
                "Cannot update these configs dynamically: [{}] (set by floe's flags)",
                fixed.join(", ")
            )),
        );
    }
    match broker
        .log()
        .set_broker_configs(configs, validate_only)
        .await
    {
        Ok(()) => (code::NONE, None),
        Err(e) => (error_code(&e), Some(e.to_string())),
    }
}
