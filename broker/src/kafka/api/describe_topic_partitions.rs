//! DescribeTopicPartitions (KIP-966; what Kafka 3.7+ admin clients use to
//! describe topics): topics by name in name order, or all of them, with
//! their partitions, paged by a partition limit and a cursor.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use floe_protocol::kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::authorized_operations::if_asked;
use crate::kafka::errors::code;
use crate::Broker;

/// Kafka's `max.request.partition.size.limit`: the most partitions one
/// response holds, whatever the client asks.
const MAX_PARTITIONS: usize = 2000;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: DescribeTopicPartitionsRequest,
    access: &Access,
) -> DescribeTopicPartitionsResponse {
    let describable = |name: &str| access.sees(Resource::Topic(name), Operation::Describe);
    let mut names: Vec<String> = if req.topics.is_empty() {
        let mut all: Vec<String> = broker.placed_topics().into_keys().collect();
        all.retain(|n| describable(n));
        all
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (from_topic, from_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(cursor) = &from_topic {
        if !req.topics.is_empty() && !names.contains(cursor) {
            // Kafka refuses a cursor outside the topics asked for.
            return DescribeTopicPartitionsResponse::default().with_topics(
                names
                    .iter()
                    .map(|n| topic_error(n, code::INVALID_REQUEST))
                    .collect(),
            );
        }
        names.retain(|n| n >= cursor);
    }
    let mut room = (req.response_partition_limit.max(1) as usize).min(MAX_PARTITIONS);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in &names {
        if room == 0 {
            next_cursor = Some(cursor(name, 0));
            break;
        }
        if !access.allows(Resource::Topic(name), Operation::Describe) {
            topics.push(topic_error(name, code::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let Some(t) = broker.placed(name) else {
            topics.push(topic_error(name, code::UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        let first = if from_topic.as_ref() == Some(name) {
            from_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        let node = BrokerId(t.leader_id);
        for (index, &epoch) in t.epochs.iter().enumerate().skip(first as usize) {
            let index = index as i32;
            if room == 0 {
                next_cursor = Some(cursor(name, index));
                break;
            }
            room -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(epoch)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(s(name.clone()))))
                .with_topic_id(t.id)
                .with_partitions(partitions)
                .with_topic_authorized_operations(if_asked(true, access, Resource::Topic(name))),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(s(topic)))
        .with_partition_index(partition)
}

fn topic_error(name: &str, error: i16) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(s(name))))
        .with_error_code(error)
}
