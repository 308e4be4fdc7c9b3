//! Storage errors. The broker maps each to one Kafka error code, in one place.
//!
//! [`StorageError`] says what went wrong in Kafka's terms (an unknown
//! topic, an offset out of range, a fenced leader, an invalid record);
//! every failure of a system underneath is one variant of it,
//! [`StorageError::Backend`], whose [`BackendError`] says which system.

/// What can go wrong in the log or the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The topic does not exist.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// The topic exists, the partition does not.
    #[error("unknown partition {1} of topic {0}")]
    UnknownPartition(String, i32),
    /// CreateTopics of an existing topic.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// The name breaks Kafka's rules.
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopicName(String, &'static str),
    /// The name differs from an existing topic's only by '.' against '_'
    /// (Kafka refuses it: both map to the same metric names).
    #[error("topic '{0}' collides with existing topic: {1}")]
    TopicCollides(String, String),
    /// A partition count that is not allowed.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A config key or value that is not allowed.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Fetch or ListOffsets outside the log.
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// High watermark.
        end: i64,
    },
    /// This broker's leader epoch was superseded; it must not commit.
    #[error("leadership of {0} was lost (leader epoch fenced)")]
    Fenced(String),
    /// Idempotent producer sent a sequence gap.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The next sequence the broker expects.
        expected: i64,
        /// What arrived.
        got: i32,
    },
    /// Idempotent producer with an epoch older than the partition has seen.
    #[error("producer epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        /// The epoch on record.
        current: i16,
        /// What arrived.
        got: i16,
    },
    /// The batch does not parse or its CRC does not match.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A batch over max.message.bytes.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge {
        /// Batch size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record that parses but is not acceptable.
    #[error("invalid record {index}: {message}")]
    InvalidRecord {
        /// Index of the record in the partition's batches.
        index: i32,
        /// Why.
        message: String,
    },
    /// A record timestamp beyond what the table's microsecond columns hold
    /// (about year 294 000).
    #[error("record timestamp {0} is out of range")]
    InvalidTimestamp(i64),
    /// Records refused by the topic's validation: (index in the request's
    /// batches, why), one per bad record.
    #[error("{} invalid record(s); first: record {}: {}", .0.len(), .0.first().map_or(0, |e| e.0), .0.first().map_or("", |e| e.1.as_str()))]
    InvalidRecords(Vec<(i32, String)>),
    /// Transactions arrive in a later issue.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// Object storage failed.
    /// A flush this request waited for did not commit.
    #[error("flush failed: {0}")]
    FlushFailed(String),
    /// A system floe relies on failed (object store, metadata store,
    /// Parquet, Iceberg): nothing the request did wrong, worth a retry.
    #[error(transparent)]
    Backend(#[from] BackendError),

    /// Stored data contradicts itself (a bug or tampering).
    #[error("corrupt storage: {0}")]
    Corrupt(String),

    /// A partition's log breaks its own rules at an offset: a range inside
    /// [log start, high watermark) that no segment holds, rows out of
    /// offset order, a write or rewrite that would hide or double records.
    /// Refused and logged, never turned into a silent gap.
    #[error("log of {topic}-{partition} is inconsistent at offset {offset}: {detail}")]
    LogInconsistent {
        /// Topic.
        topic: String,
        /// Partition (-1: several).
        partition: i32,
        /// Where (-1: several).
        offset: i64,
        /// What is wrong.
        detail: String,
    },
}

impl StorageError {
    /// Whether a metadata-store write that failed with this error may have
    /// been made all the same: the database failed underneath (a dropped
    /// connection during COMMIT answers nothing about the COMMIT), as
    /// opposed to a refusal the transaction rolled back for.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, StorageError::Backend(BackendError::Metadata(_)))
    }
}

/// A failure of a system the log is built on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The object store failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Metadata(#[from] sqlx::Error),
    /// The metadata store cannot be used as it is (unreachable, a schema
    /// from a newer version, missing permissions); says what to do.
    #[error("metadata store: {0}")]
    MetadataUnusable(String),
    /// Parquet encode or decode failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Work in the background (a rewrite's encode) did not finish.
    #[error("background work failed: {0}")]
    Background(String),
    /// Iceberg metadata could not be read or written.
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    /// The external Iceberg catalog refused or failed.
    #[error("external catalog: {0}")]
    ExternalCatalog(String),
}

/// `?` on a backend's own error gives a [`StorageError::Backend`].
macro_rules! backend_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Backend(BackendError::from(e))
            }
        }
    )*};
}

backend_from!(
    object_store::Error,
    sqlx::Error,
    parquet::errors::ParquetError,
    arrow_schema::ArrowError,
    iceberg::Error
);

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
