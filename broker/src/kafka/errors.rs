//! The one place where floe's errors become Kafka error codes.

use floe_storage::{BackendError, StorageError};

/// Kafka error codes floe returns (see the protocol guide's error table).
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// UNKNOWN_SERVER_ERROR.
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// OFFSET_OUT_OF_RANGE.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// NOT_LEADER_OR_FOLLOWER.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// MESSAGE_TOO_LARGE.
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// INVALID_TOPIC_EXCEPTION.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// LEADER_NOT_AVAILABLE.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// OFFSET_METADATA_TOO_LARGE.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR.
    pub const NOT_COORDINATOR: i16 = 16;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// INCONSISTENT_GROUP_PROTOCOL.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// INVALID_GROUP_ID.
    pub const INVALID_GROUP_ID: i16 = 24;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// INVALID_SESSION_TIMEOUT.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// REBALANCE_IN_PROGRESS.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// NON_EMPTY_GROUP.
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// GROUP_ID_NOT_FOUND.
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// MEMBER_ID_REQUIRED.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// FENCED_INSTANCE_ID.
    pub const FENCED_INSTANCE_ID: i16 = 82;
    /// UNRELEASED_INSTANCE_ID: a static id still held by an active member.
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    /// FENCED_MEMBER_EPOCH.
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    /// UNSUPPORTED_ASSIGNOR.
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    /// A subscription regular expression that does not compile.
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
    /// STALE_MEMBER_EPOCH.
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// TOPIC_ALREADY_EXISTS.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REPLICATION_FACTOR.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// INVALID_CONFIG.
    pub const INVALID_CONFIG: i16 = 40;
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// INVALID_PRODUCER_EPOCH.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// The producer tried an operation its transaction's state does not allow.
    pub const INVALID_TXN_STATE: i16 = 48;
    /// The producer id is not the transactional id's.
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    /// The transaction timeout is out of range.
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    /// Another operation on the transactional id is in progress.
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    /// A newer producer with the same transactional id exists.
    pub const PRODUCER_FENCED: i16 = 90;
    /// The coordinator is loading its state.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// KAFKA_STORAGE_ERROR (retriable).
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// FENCED_LEADER_EPOCH.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 76;
    /// INVALID_TIMESTAMP.
    pub const INVALID_TIMESTAMP: i16 = 32;
    /// INVALID_RECORD.
    pub const INVALID_RECORD: i16 = 87;
    /// TOPIC_AUTHORIZATION_FAILED.
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    /// GROUP_AUTHORIZATION_FAILED.
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    /// CLUSTER_AUTHORIZATION_FAILED.
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    /// SECURITY_DISABLED: ACL requests to a broker without an authorizer.
    pub const SECURITY_DISABLED: i16 = 54;
    /// UNKNOWN_TOPIC_ID.
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    /// UNSUPPORTED_SASL_MECHANISM.
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    /// ILLEGAL_SASL_STATE.
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    /// SASL_AUTHENTICATION_FAILED.
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    /// RESOURCE_NOT_FOUND.
    pub const RESOURCE_NOT_FOUND: i16 = 91;
    /// DUPLICATE_RESOURCE.
    pub const DUPLICATE_RESOURCE: i16 = 92;
    /// UNACCEPTABLE_CREDENTIAL.
    pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
}

/// The Kafka error code for a storage error.
pub fn error_code(e: &StorageError) -> i16 {
    use StorageError::*;
    match e {
        UnknownTopic(_) | UnknownPartition(..) => code::UNKNOWN_TOPIC_OR_PARTITION,
        TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
        InvalidTopicName(..) | TopicCollides(..) => code::INVALID_TOPIC_EXCEPTION,
        InvalidPartitions(_) => code::INVALID_PARTITIONS,
        InvalidConfig(_) => code::INVALID_CONFIG,
        OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        Fenced(_) => code::NOT_LEADER_OR_FOLLOWER,
        OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        InvalidProducerEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
        CorruptMessage(_) => code::CORRUPT_MESSAGE,
        MessageTooLarge { .. } => code::MESSAGE_TOO_LARGE,
        InvalidRecord { .. } | InvalidRecords(_) => code::INVALID_RECORD,
        InvalidTimestamp(_) => code::INVALID_TIMESTAMP,
        Unsupported(_) => code::UNSUPPORTED_VERSION,
        // Retriable: a consumer retries rather than skipping what it
        // could not read.
        Backend(BackendError::ExternalCatalog(_)) | Corrupt(_) => code::UNKNOWN_SERVER_ERROR,
        Backend(_) | FlushFailed(_) | LogInconsistent { .. } => code::KAFKA_STORAGE_ERROR,
    }
}
