//! DeleteRecords: move a partition's log start offset forward.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use floe_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: DeleteRecordsRequest,
    access: &Access,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let allowed = access.allows(Resource::Topic(t.name.as_str()), Operation::Delete);
        let topic = broker.log().topic(t.name.as_str()).filter(|_| allowed);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let Some(topic) = &topic else {
                parts.push(r.with_error_code(if allowed {
                    broker.not_led_here(t.name.as_str(), p.partition_index)
                } else {
                    code::TOPIC_AUTHORIZATION_FAILED
                }));
                continue;
            };
            match broker
                .log()
                .delete_records(topic, p.partition_index, p.offset)
                .await
            {
                Ok(low) => parts.push(r.with_low_watermark(low)),
                Err(e) => parts.push(r.with_error_code(error_code(&e))),
            }
        }
        // The files that hold rows below the new log start are rewritten
        // without them now (maintenance would, later), so the topic's
        // table stops showing them at its next commit.
        if let Some(topic) = topic.filter(|_| parts.iter().any(|r| r.error_code == code::NONE)) {
            let log = broker.log().clone();
            tokio::spawn(async move {
                if let Err(e) = log.trim(&topic).await {
                    tracing::warn!(topic = %topic.name, error = %e, "trimming after DeleteRecords failed; maintenance retries");
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
