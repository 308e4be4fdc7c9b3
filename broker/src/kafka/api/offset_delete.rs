//! OffsetDelete: refused for topics an active member is subscribed to.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use floe_protocol::kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use floe_storage::error::StorageError;

use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: OffsetDeleteRequest,
    access: &crate::acl::Access,
) -> OffsetDeleteResponse {
    use crate::acl::{Operation, Resource};
    let known = super::group_known(broker, &req.group_id).await;
    if !known {
        return OffsetDeleteResponse::default().with_error_code(code::GROUP_ID_NOT_FOUND);
    }
    let mut delete = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let subscribed = broker
            .groups()
            .subscribed_to(&req.group_id, t.name.as_str())
            || broker
                .consumer_groups()
                .subscribed_to(&req.group_id, t.name.as_str());
        // The group's DELETE is checked before dispatch; each topic's READ here.
        let readable = access.allows(Resource::Topic(t.name.as_str()), Operation::Read);
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                let e = if !readable {
                    code::TOPIC_AUTHORIZATION_FAILED
                } else if subscribed {
                    code::GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    delete.push((t.name.to_string(), p.partition_index));
                    code::NONE
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(e)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    match broker
        .group_saver()
        .delete_offsets(&req.group_id, &delete)
        .await
    {
        Ok(()) => {}
        Err(StorageError::Fenced(_)) => {
            return OffsetDeleteResponse::default().with_error_code(code::NOT_COORDINATOR)
        }
        Err(_) => {
            return OffsetDeleteResponse::default().with_error_code(code::KAFKA_STORAGE_ERROR)
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
