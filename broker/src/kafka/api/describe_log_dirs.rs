//! DescribeLogDirs: one "log directory", the object store floe writes to,
//! with the stored bytes of every partition asked for (tools read sizes
//! from it). Object storage has no fixed capacity: total and usable bytes
//! are unknown (-1).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use floe_protocol::kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use super::s;
use crate::Broker;

/// Kafka's value for a volume size it cannot tell.
const UNKNOWN_BYTES: i64 = -1;

/// A principal without DESCRIBE on the cluster gets
/// CLUSTER_AUTHORIZATION_FAILED, as in Kafka.
pub(super) fn handle(
    broker: &Arc<Broker>,
    req: DescribeLogDirsRequest,
    access: &crate::acl::Access,
) -> DescribeLogDirsResponse {
    use crate::acl::{Operation, Resource};
    if !access.allows(Resource::Cluster, Operation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(crate::kafka::errors::code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let log = broker.log();
    // None asks for every partition of every topic; a topic or partition
    // this broker does not have is left out, as Kafka does.
    let wanted: Vec<(Arc<floe_storage::log::TopicLog>, Option<Vec<i32>>)> = match req.topics {
        None => log.topics().into_iter().map(|t| (t, None)).collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| log.topic(t.topic.as_str()).map(|l| (l, Some(t.partitions))))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|(t, only)| {
            let partitions = t
                .partitions()
                .iter()
                .filter(|p| only.as_ref().is_none_or(|o| o.contains(&p.index)))
                .map(|p| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(p.stored_bytes())
                })
                .collect();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(s(t.name.clone())))
                .with_partitions(partitions)
        })
        .filter(|t| !t.partitions.is_empty())
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(s(broker.log_dir()))
        .with_topics(topics)
        .with_total_bytes(UNKNOWN_BYTES)
        .with_usable_bytes(UNKNOWN_BYTES)])
}
