//! DeleteTopics, by name (v1-5) or by name or id (v6).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use floe_protocol::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::{code, error_code};
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: DeleteTopicsRequest,
    version: i16,
    access: &Access,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let topic = match &name {
            Some(n) => broker.placed(n.as_str()).map(|p| (n.to_string(), p)),
            None => broker.placed_by_id(id),
        };
        let base = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        // As Kafka: whether a topic exists is not said to a principal that
        // may not describe it; one that may must also be allowed DELETE.
        let named = name.as_ref().map(|n| n.to_string());
        let named = named.or_else(|| topic.as_ref().map(|(n, _)| n.clone()));
        let refused = named.as_deref().is_some_and(|n| {
            !access.allows(Resource::Topic(n), Operation::Describe)
                || (topic.is_some() && !access.allows(Resource::Topic(n), Operation::Delete))
        });
        if refused {
            responses.push(base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let Some((topic_name, topic)) = topic else {
            let c = if name.is_some() {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code::UNKNOWN_TOPIC_ID
            };
            responses.push(base.with_error_code(c));
            continue;
        };
        let base = base.with_name(Some(TopicName(s(topic_name.clone()))));
        let base = if version >= 6 {
            base.with_topic_id(topic.id)
        } else {
            base
        };
        match broker.log().delete_topic(&topic_name).await {
            Ok(()) => {
                broker.cluster().refresh_now(broker.log()).await;
                broker.metrics().forget_topic(&topic_name);
                responses.push(base)
            }
            Err(e) => {
                let r = base.with_error_code(error_code(&e));
                responses.push(if version >= 5 {
                    r.with_error_message(Some(s(e.to_string())))
                } else {
                    r
                })
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
