//! CreatePartitions.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use floe_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
    access: &Access,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !access.allows(Resource::Topic(t.name.as_str()), Operation::Alter) {
            results.push(
                r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(s("Authorization failed."))),
            );
            continue;
        }
        match broker
            .log()
            .create_partitions(t.name.as_str(), t.count, req.validate_only)
            .await
        {
            Ok(()) => results.push(r),
            Err(e) => results.push(
                r.with_error_code(error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            ),
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
