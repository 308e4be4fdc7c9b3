//! The operations a principal may perform on a resource, as the bit sets
//! Kafka returns when a client asks for authorized operations (Metadata,
//! DescribeCluster, DescribeGroups, DescribeTopicPartitions): of the
//! operations Kafka supports on each resource type, those the ACLs allow.

use crate::acl::{Access, Operation, Resource};

/// What a response says when the client did not ask (Kafka's
/// `Integer.MIN_VALUE`).
pub const NOT_ASKED: i32 = i32::MIN;

use Operation::*;

/// Operations Kafka supports on a topic.
const TOPIC: &[Operation] = &[
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
];

/// Operations Kafka supports on the cluster.
const CLUSTER: &[Operation] = &[
    Create,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
];

/// Operations Kafka supports on a consumer group.
const GROUP: &[Operation] = &[Read, Delete, Describe];

/// The set for `resource`, or [`NOT_ASKED`] when the client did not ask.
pub fn if_asked(asked: bool, access: &Access, resource: Resource<'_>) -> i32 {
    if !asked {
        return NOT_ASKED;
    }
    let supported = match resource {
        Resource::Topic(_) => TOPIC,
        Resource::Cluster => CLUSTER,
        Resource::Group(_) => GROUP,
        Resource::TransactionalId(_) => &[Describe, Write],
    };
    access.operations(resource, supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(ops: &[Operation]) -> i32 {
        ops.iter().fold(0, |acc, op| acc | 1 << (*op as i8))
    }

    #[test]
    fn the_sets_are_kafkas() {
        // READ..ALTER_CONFIGS but not CLUSTER_ACTION: 0b1101_1111_1000.
        assert_eq!(bits(TOPIC), 0x0df8);
        assert_eq!(bits(GROUP), (1 << 3) | (1 << 6) | (1 << 8));
        assert_eq!(bits(CLUSTER), 0x1fa0);
    }
}
