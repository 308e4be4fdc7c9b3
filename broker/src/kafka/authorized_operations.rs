//! The operations a principal may perform on a resource, as the bit sets
//! Kafka returns when a client asks for authorized operations (Metadata,
//! DescribeCluster, DescribeGroups, DescribeTopicPartitions). floe has no
//! ACLs yet, so every principal may do every operation a resource type
//! supports; the sets are Kafka's supported operations per resource type.

/// Kafka's `AclOperation` codes.
#[derive(Debug, Clone, Copy)]
#[repr(i8)]
enum Op {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// What a response says when the client did not ask (Kafka's
/// `Integer.MIN_VALUE`).
pub const NOT_ASKED: i32 = i32::MIN;

fn bits(ops: &[Op]) -> i32 {
    ops.iter().fold(0, |acc, op| acc | 1 << (*op as i8))
}

/// Operations on a topic.
pub fn topic() -> i32 {
    use Op::*;
    bits(&[
        Read,
        Write,
        Create,
        Delete,
        Alter,
        Describe,
        DescribeConfigs,
        AlterConfigs,
    ])
}

/// Operations on the cluster.
pub fn cluster() -> i32 {
    use Op::*;
    bits(&[
        Create,
        Alter,
        Describe,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
    ])
}

/// Operations on a consumer group.
pub fn group() -> i32 {
    use Op::*;
    bits(&[Read, Delete, Describe])
}

/// `set` when the client asked for it, else [`NOT_ASKED`].
pub fn if_asked(asked: bool, set: i32) -> i32 {
    if asked {
        set
    } else {
        NOT_ASKED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_are_kafkas() {
        // READ..ALTER_CONFIGS but not CLUSTER_ACTION: 0b1101_1111_1000.
        assert_eq!(topic(), 0x0df8);
        assert_eq!(group(), (1 << 3) | (1 << 6) | (1 << 8));
        assert_eq!(cluster(), 0x1fa0);
        assert_eq!(if_asked(false, topic()), i32::MIN);
    }
}
