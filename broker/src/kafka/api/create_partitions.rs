//! CreatePartitions.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use floe_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::s;
use crate::kafka::errors::error_code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
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
