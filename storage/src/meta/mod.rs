//! The metadata store: every state change that must survive a crash.
//!
//! One trait, and one implementation of it on SQL ([`sql::SqlStore`]) for
//! both databases: SQLite (embedded default, [`sqlite`]) and PostgreSQL
//! (several brokers, [`postgres`]). The DDL in `storage/ddl/` and the
//! statements are portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`) so both databases share them.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;

use crate::error::Result;
pub use notify::{ChangeCounts, Changed};
pub use placement::{LeaderMove, TopicLeader};

pub mod ddl;
pub mod faulty;
mod notify;
pub mod placement;
pub mod postgres;
pub mod runs;
pub mod sql;
pub mod sqlite;
mod statement;
mod transactions;

/// A topic as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    /// Name.
    pub name: String,
    /// UUID, as text.
    pub topic_id: String,
    /// Explicitly set configs.
    pub configs: BTreeMap<String, String>,
    /// Creation time.
    pub created_ms: i64,
}

/// A broker's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRecord {
    /// Broker id.
    pub broker_id: i32,
    /// This run of the broker process (a fresh id at every start).
    pub incarnation: String,
    /// Host clients of the first listener connect to.
    pub host: String,
    /// Port clients of the first listener connect to.
    pub port: i32,
    /// Rack (`broker.rack`).
    pub rack: Option<String>,
    /// When the registration lapses unless renewed.
    pub lease_expires_ms: i64,
    /// Every listener's advertised address, by name (empty for a broker
    /// from before named listeners: `host`/`port` are its only address).
    pub listeners: Vec<ListenerAddress>,
}

/// Where clients of one of a broker's listeners connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddress {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`, ...).
    pub name: String,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: i32,
}

impl BrokerRecord {
    /// The address clients that reached a broker through listener `name`
    /// are told for this one: its listener of that name, none if it has
    /// no such listener (Kafka leaves such brokers out), or `host`/`port`
    /// for a broker that registered no listeners by name.
    pub fn address(&self, name: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// A partition as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRecord {
    /// Partition index.
    pub partition: i32,
    /// Leader broker.
    pub leader_id: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Committed high watermark.
    pub high_watermark: i64,
    /// First offset still in the log.
    pub log_start_offset: i64,
}

/// A contiguous offset range of a partition in one file: a run of rows of
/// one row group (`first_row`, `record_count`). Small partitions of a
/// flush share a row group, sorted by (partition, offset); a larger one
/// has row groups of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// First offset.
    pub base_offset: i64,
    /// Last offset (inclusive).
    pub last_offset: i64,
    /// Number of rows.
    pub record_count: i64,
    /// Object path of the Parquet file.
    pub path: String,
    /// Size of that file, so readers use explicit byte ranges.
    pub file_size: i64,
    /// Row group index in the file.
    pub row_group: i32,
    /// Index of the segment's first row in its row group.
    pub first_row: i64,
    /// Lowest record timestamp.
    pub min_timestamp: i64,
    /// Highest record timestamp.
    pub max_timestamp: i64,
    /// Compressed bytes of the segment's rows (its share of a shared row
    /// group).
    pub size_bytes: i64,
    /// When the broker wrote it.
    pub append_time_ms: i64,
}

impl SegmentRecord {
    /// Whether offsets of its span have no row: key compaction left out
    /// the records a later one of the same key replaced, and offsets are
    /// never reused, so a consumer sees the gap (as in Kafka).
    pub fn has_gaps(&self) -> bool {
        self.record_count < self.last_offset - self.base_offset + 1
    }
}

#[cfg(test)]
impl SegmentRecord {
    /// A dense segment of topic `t` for tests: its partition, offsets and
    /// file; 100 bytes, written at time 0.
    pub(crate) fn for_test(partition: i32, base: i64, last: i64, path: &str) -> Self {
        SegmentRecord {
            topic: "t".into(),
            partition,
            base_offset: base,
            last_offset: last,
            record_count: last - base + 1,
            path: path.into(),
            file_size: 100,
            row_group: 0,
            first_row: 0,
            min_timestamp: 0,
            max_timestamp: 0,
            size_bytes: 100,
            append_time_ms: 0,
        }
    }
}

/// Recent batches of one idempotent producer on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateRecord {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first.
    pub recent: Vec<(i32, i32, i64)>,
}

/// Inclusive offset ranges of one producer's batches in a partition.
pub type OffsetRanges = Vec<(i64, i64)>;

/// A producer's transaction still open in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransactionRecord {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Its batches so far, in order; empty once it ended.
    pub ranges: OffsetRanges,
}

/// A transaction's end in a partition: its control record's offset, and
/// the records it covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMarkerRecord {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The control record's offset.
    pub offset: i64,
    /// Producer id.
    pub producer_id: i64,
    /// The epoch the marker was written with.
    pub producer_epoch: i16,
    /// Commit (true) or abort.
    pub committed: bool,
    /// The transaction's batches in this partition.
    pub ranges: OffsetRanges,
}

/// The coordinator's state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Kafka's state name (`Empty`, `Ongoing`, `PrepareCommit`, ...).
    pub state: String,
    /// The producer's transaction timeout.
    pub timeout_ms: i64,
    /// The partitions in the transaction.
    pub partitions: Vec<(String, i32)>,
    /// Offsets the transaction commits for consumer groups, by group.
    pub group_offsets: Vec<(String, CommittedOffset)>,
    /// When the current transaction started (0 when none is open).
    pub started_ms: i64,
    /// Last change.
    pub updated_ms: i64,
    /// The producer (id, epoch) a transactions-v2 EndTxn came from before
    /// its epoch was bumped, so that a retry of it is recognised.
    pub previous_producer: Option<(i64, i16)>,
}

/// Everything one flush commits, atomically.
#[derive(Debug, Clone)]
pub struct FlushCommit {
    /// Topic name.
    pub topic: String,
    /// The Parquet file.
    pub path: String,
    /// Its size.
    pub size_bytes: i64,
    /// Broker making the commit.
    pub leader_id: i32,
    /// (partition, leader epoch the writer holds, new high watermark).
    pub high_watermarks: Vec<(i32, i32, i64)>,
    /// One per row group.
    pub segments: Vec<SegmentRecord>,
    /// Producer states after this flush.
    pub producers: Vec<ProducerStateRecord>,
    /// Transactions that opened, grew or ended in a partition with this
    /// flush (an empty `ranges`: ended).
    pub open_transactions: Vec<OpenTransactionRecord>,
    /// Transaction markers this flush writes.
    pub markers: Vec<TransactionMarkerRecord>,
    /// Commit time.
    pub now_ms: i64,
}

/// The term of a broker as the cluster's group coordinator: the
/// coordinator placement ([`placement::GROUP_COORDINATOR`]) names it at
/// this epoch. Every write of group state carries the term it was decided
/// in and is refused ([`crate::error::StorageError::Fenced`]) once the
/// placement names another broker or a later epoch, so a coordinator that
/// lost its seat cannot overwrite what its successor saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorTerm {
    /// The coordinating broker.
    pub broker_id: i32,
    /// The placement's epoch.
    pub epoch: i32,
}

/// A user's SCRAM credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialRecord {
    /// The user.
    pub user: String,
    /// "SCRAM-SHA-256" or "SCRAM-SHA-512".
    pub mechanism: String,
    /// The salt.
    pub salt: Vec<u8>,
    /// The iteration count.
    pub iterations: i32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// One access control entry, in Kafka's codes (the broker's `acl` module
/// gives them meaning; the store only keeps them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclRecord {
    /// Kafka's resource type code (topic 2, group 3, cluster 4, ...).
    pub resource_type: i8,
    /// The resource's name, or the prefix, or `*`.
    pub resource_name: String,
    /// Kafka's pattern type code (literal 3, prefixed 4).
    pub pattern_type: i8,
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// The client's address, or `*`.
    pub host: String,
    /// Kafka's operation code.
    pub operation: i8,
    /// Kafka's permission code (deny 2, allow 3).
    pub permission: i8,
}

/// A committed offset of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The offset (the next record the group will read).
    pub offset: i64,
    /// Leader epoch the client saw, or -1.
    pub leader_epoch: i32,
    /// Client-supplied metadata string.
    pub metadata: Option<String>,
    /// When it was committed.
    pub commit_time_ms: i64,
}

/// A consumer group member as of the group's last rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberRecord {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol metadata for the chosen protocol (the subscription).
    pub subscription: Vec<u8>,
    /// Assignment from the last SyncGroup.
    pub assignment: Vec<u8>,
}

/// A consumer group as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group id.
    pub group_id: String,
    /// Usually "consumer".
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol_name: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Leader member id.
    pub leader_id: Option<String>,
    /// Kafka state name.
    pub state: String,
    /// Members in join order.
    pub members: Vec<GroupMemberRecord>,
}

/// Partitions of one member, as (topic id, partition) pairs.
pub type MemberPartitions = Vec<(uuid::Uuid, i32)>;

/// A member of a consumer-protocol (KIP-848) group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerProtocolMemberRecord {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Subscribed regular expression.
    pub subscribed_regex: Option<String>,
    /// Server assignor the member asked for.
    pub assignor: Option<String>,
    /// Partitions given to the member.
    pub assigned: MemberPartitions,
    /// Partitions the member last reported owning.
    pub owned: MemberPartitions,
    /// The assignor's target for the member.
    pub target: MemberPartitions,
}

/// A consumer-protocol (KIP-848) group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerProtocolGroupRecord {
    /// Group id.
    pub group_id: String,
    /// Group epoch.
    pub group_epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor: String,
    /// Members.
    pub members: Vec<ConsumerProtocolMemberRecord>,
}

/// A schema as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Its id.
    pub id: i32,
    /// PROTOBUF, AVRO or JSON.
    pub schema_type: String,
    /// The text as registered.
    pub schema: String,
    /// References, a JSON array of {name, subject, version}.
    pub refs: String,
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersionRecord {
    /// Subject name.
    pub subject: String,
    /// Version, from 1.
    pub version: i32,
    /// The schema.
    pub schema_id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// Everything the schema registry keeps.
#[derive(Debug, Clone, Default)]
pub struct RegistryRecord {
    /// Every schema.
    pub schemas: Vec<SchemaRecord>,
    /// Every subject version.
    pub versions: Vec<SubjectVersionRecord>,
    /// (subject or "" for global, level).
    pub configs: Vec<(String, String)>,
    /// (principal, purpose).
    pub grants: Vec<(String, String)>,
}

/// What a topic's Iceberg table lags behind the log by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePending {
    /// Committed files the table does not hold yet: (path, size), oldest
    /// first.
    pub added: Vec<(String, i64)>,
    /// Files the table holds that the log dropped (retention, DeleteRecords).
    pub removed: Vec<String>,
}

/// One commit of a topic's Iceberg table.
#[derive(Debug, Clone)]
pub struct TableCommitRecord {
    /// Topic.
    pub topic: String,
    /// The pointer this commit was built on (None: the table is new).
    pub expected: Option<String>,
    /// The new metadata file.
    pub metadata_location: String,
    /// Files the new snapshot adds.
    pub added: Vec<String>,
    /// Files the new snapshot removes.
    pub removed: Vec<String>,
    /// The snapshot's time.
    pub now_ms: i64,
}

/// A committed file of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Object key.
    pub path: String,
    /// Size.
    pub size_bytes: i64,
    /// Commit time.
    pub created_ms: i64,
    /// Whether the topic's Iceberg table holds it.
    pub in_table: bool,
}

/// A compaction: files replaced by one file holding their segments' rows.
#[derive(Debug, Clone)]
pub struct FileReplacement {
    /// Topic.
    pub topic: String,
    /// The broker rewriting: only the topic's leader may.
    pub leader_id: i32,
    /// Files replaced.
    pub old_paths: Vec<String>,
    /// How many segments the old files had when the compaction read them;
    /// if retention dropped any since, the replacement is refused.
    pub old_segments: usize,
    /// The new file.
    pub path: String,
    /// Its size.
    pub size_bytes: i64,
    /// Its segments.
    pub segments: Vec<SegmentRecord>,
    /// Its place in write order (`files_in_order`): the oldest replaced
    /// file's.
    pub created_ms: i64,
    /// Which of the old rows the new file holds.
    pub keeps: Keeps,
}

/// Which rows of the files it replaces a rewrite keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeps {
    /// Every row at or above its partition's log start (merging small
    /// files, moving intake chunks, trimming below the log start).
    Every,
    /// Each key's latest row (key compaction): fewer rows, over exactly
    /// the same offsets, each partition's last row kept, so its segments
    /// take the place of the old ones without a hole in the index.
    LatestPerKey,
}

/// The metadata store.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The cluster id, created on first use.
    async fn cluster_id(&self) -> Result<String>;

    /// The broker configs set at run time (cluster-wide, by name).
    async fn broker_configs(&self) -> Result<BTreeMap<String, String>>;

    /// Replaces the broker configs set at run time with `configs`.
    async fn set_broker_configs(&self, configs: &BTreeMap<String, String>) -> Result<()>;

    /// Registers `broker` (a new incarnation of its id) unless another
    /// incarnation holds the id with a lease live at `now_ms`, other than
    /// `replacing` (an incarnation the caller knows to be dead). Returns
    /// the holder when refused.
    async fn register_broker(
        &self,
        broker: &BrokerRecord,
        replacing: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<BrokerRecord>>;

    /// Extends the lease of `incarnation` of `broker_id` to
    /// `lease_expires_ms`; false (and nothing changed) if that incarnation
    /// no longer holds the id.
    async fn renew_broker_lease(
        &self,
        broker_id: i32,
        incarnation: &str,
        lease_expires_ms: i64,
    ) -> Result<bool>;

    /// Ends the registration of `incarnation` of `broker_id` (a clean
    /// stop), if it still holds the id.
    async fn unregister_broker(&self, broker_id: i32, incarnation: &str) -> Result<()>;

    /// The brokers whose lease is live at `now_ms`, by id.
    async fn live_brokers(&self, now_ms: i64) -> Result<Vec<BrokerRecord>>;

    /// All topics with their configs.
    async fn list_topics(&self) -> Result<Vec<TopicRecord>>;

    /// Partitions of a topic, by index.
    async fn list_partitions(&self, topic: &str) -> Result<Vec<PartitionRecord>>;

    /// Creates a topic and its partitions, led by `leader_id`.
    /// Fails with `TopicExists` if the name is taken.
    async fn create_topic(
        &self,
        topic: &TopicRecord,
        partitions: i32,
        leader_id: i32,
    ) -> Result<()>;

    /// Deletes a topic and everything of it; returns the files it owned.
    async fn delete_topic(&self, topic: &str) -> Result<Vec<String>>;

    /// Grows a topic to `new_count` partitions.
    async fn add_partitions(&self, topic: &str, new_count: i32, leader_id: i32) -> Result<()>;

    /// Replaces the explicitly set configs of a topic.
    async fn set_topic_configs(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()>;

    /// Makes `broker_id` leader of every partition, bumping each leader
    /// epoch so that writes of any earlier leader are fenced.
    async fn claim_leadership(&self, broker_id: i32) -> Result<()>;

    /// Every topic's leader and partition count.
    async fn topic_leaders(&self) -> Result<Vec<TopicLeader>>;

    /// Gives every topic a live leader and evens the load, at most
    /// `max_fair_moves` moves for balance (see [`placement`]), in one
    /// transaction; each moved topic's leader epochs are bumped, which
    /// fences its former leader's commits. Returns the moves.
    async fn balance_leadership(
        &self,
        now_ms: i64,
        max_fair_moves: usize,
    ) -> Result<Vec<LeaderMove>>;

    /// Starts a new leadership of `topic` by `broker_id`, which the store
    /// names as its leader: bumps every partition's leader epoch (fencing
    /// commits of any earlier run of this broker) and returns the
    /// partitions; `None` if another broker leads the topic or it is gone.
    async fn claim_topic(
        &self,
        topic: &str,
        broker_id: i32,
    ) -> Result<Option<Vec<PartitionRecord>>>;

    /// All live segments (runs) of a topic, ordered by partition and offset.
    async fn list_segments(&self, topic: &str) -> Result<Vec<SegmentRecord>>;

    /// Producer states of a topic.
    async fn list_producer_states(&self, topic: &str) -> Result<Vec<ProducerStateRecord>>;

    /// Transactions open in the topic's partitions.
    async fn list_open_transactions(&self, topic: &str) -> Result<Vec<OpenTransactionRecord>>;

    /// The transaction markers of the topic's partitions, by partition and
    /// offset.
    async fn list_transaction_markers(&self, topic: &str) -> Result<Vec<TransactionMarkerRecord>>;

    /// Every transactional id's coordinator state.
    async fn load_transactions(&self) -> Result<Vec<TransactionRecord>>;

    /// Saves a transactional id's state, refused once `term` is over.
    async fn save_transaction(&self, term: CoordinatorTerm, t: &TransactionRecord) -> Result<()>;

    /// Commits a flush in one transaction. Fails with `Fenced` (and commits
    /// nothing) unless every partition is still led by `leader_id` at the
    /// stated epoch.
    async fn commit_flush(&self, commit: &FlushCommit) -> Result<()> {
        self.commit_flushes(&[commit]).await
    }

    /// Commits several flushes, in order, in one transaction: all of them
    /// or, if any is refused (as [`MetadataStore::commit_flush`] would),
    /// none. One transaction for the flushes of a whole intake round is
    /// what keeps commits per second independent of the number of topics.
    async fn commit_flushes(&self, commits: &[&FlushCommit]) -> Result<()>;

    /// Whether the file `path` is committed: how a flush whose commit's
    /// reply was lost (the connection dropped during COMMIT) learns what
    /// happened, instead of guessing.
    async fn file_committed(&self, path: &str) -> Result<bool>;

    /// Allocates a new producer id with epoch 0.
    async fn new_producer_id(&self, now_ms: i64) -> Result<i64>;

    /// Current epoch of a producer id, if known.
    async fn producer_epoch(&self, producer_id: i64) -> Result<Option<i16>>;

    /// Sets a producer's epoch.
    async fn set_producer_epoch(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<()>;

    /// Moves log starts of a topic's partitions forward (DeleteRecords,
    /// retention), as (partition, offset) pairs, in one transaction; runs
    /// wholly below a log start are dropped. Returns files none of whose
    /// runs remain and no Iceberg table holds, which the caller deletes
    /// from object storage (files a table holds wait for the table to drop
    /// them).
    async fn advance_log_starts(&self, topic: &str, starts: &[(i32, i64)]) -> Result<Vec<String>>;

    /// The committed files of a topic holding rows below their
    /// partition's log start (DeleteRecords or retention cut through
    /// them), oldest first: the rows Kafka no longer serves but the file,
    /// and so the table, still holds until it is trimmed.
    async fn files_below_log_start(&self, topic: &str) -> Result<Vec<String>>;

    /// Every file a commit references: the log's files and the files
    /// Iceberg tables still hold.
    async fn committed_files(&self) -> Result<HashSet<String>>;

    /// Those of the intake objects `objects` of which some committed file
    /// is a chunk (a path `<object>#<offset>`); in one query, however many.
    async fn objects_with_chunks(&self, objects: &[&str]) -> Result<HashSet<String>>;

    /// The typed-column state of a topic (JSON: messages and field ids).
    async fn topic_columns(&self, topic: &str) -> Result<Option<String>>;

    /// Replaces the typed-column state of a topic.
    async fn save_topic_columns(&self, topic: &str, body: &str) -> Result<()>;

    /// A typed-column layout by its content hash.
    async fn column_layout(&self, layout: &str) -> Result<Option<Vec<u8>>>;

    /// Stores a layout under its content hash (a no-op if present).
    async fn save_column_layout(&self, layout: &str, body: &[u8]) -> Result<()>;

    /// The topic's current Iceberg metadata file, if the table exists.
    async fn table_pointer(&self, topic: &str) -> Result<Option<String>>;

    /// What the topic's table has yet to add and remove. Intake chunks are
    /// never table files: they are moved into files of their own first,
    /// and a file written after a chunk still in the intake waits for it
    /// (the table's files are always the oldest part of the log, so what
    /// is left to move is one unbroken run of every partition's offsets).
    async fn table_pending(&self, topic: &str) -> Result<TablePending>;

    /// Swaps the table pointer from `expected` to the new location and
    /// records the files added and removed, in one transaction. Returns
    /// false (and changes nothing) if the pointer moved, or an added file
    /// left the log meanwhile.
    async fn commit_table(&self, commit: &TableCommitRecord) -> Result<bool>;

    /// The topic's committed files, oldest first.
    async fn files_in_order(&self, topic: &str) -> Result<Vec<FileRecord>>;

    /// Swaps the segments of `old_paths` for the new file's, in one
    /// transaction; false (nothing changed) if the old files lost segments
    /// meanwhile. The new file holds exactly the old files' rows, except
    /// that it may leave out rows below the log start (a trim); anything
    /// else is refused with `LogInconsistent`. The old files stay in object storage while a table
    /// holds them.
    async fn replace_files(&self, replacement: &FileReplacement) -> Result<bool>;

    /// Forgets files removed from the table at or before `cutoff_ms` (no
    /// remaining snapshot refers to them) and returns them for deletion.
    async fn release_table_files(&self, topic: &str, cutoff_ms: i64) -> Result<Vec<String>>;

    /// Stores (replaces) a group and its members, in `term`.
    async fn save_group(
        &self,
        term: CoordinatorTerm,
        group: &GroupRecord,
        now_ms: i64,
    ) -> Result<()>;

    /// Every stored group.
    async fn load_groups(&self) -> Result<Vec<GroupRecord>>;

    /// Stores (replaces) a consumer-protocol group and its members, in
    /// `term`.
    async fn save_consumer_protocol_group(
        &self,
        term: CoordinatorTerm,
        group: &ConsumerProtocolGroupRecord,
        now_ms: i64,
    ) -> Result<()>;

    /// Every stored consumer-protocol group.
    async fn load_consumer_protocol_groups(&self) -> Result<Vec<ConsumerProtocolGroupRecord>>;

    /// Changes other brokers made, as they announce them (PostgreSQL's
    /// NOTIFY): the counts move with each; `None` where the store has no
    /// such announcements (SQLite, used by one broker alone).
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<ChangeCounts>> {
        None
    }

    /// The whole schema registry.
    async fn load_registry(&self) -> Result<RegistryRecord>;

    /// A token that changes with every change of the registry (schemas,
    /// subjects, compatibility levels, grants), so brokers know when to
    /// load it again; `None` before the first change.
    async fn registry_change(&self) -> Result<Option<String>>;

    /// Registers a schema under a subject in one transaction: reuses the id
    /// of an identical schema (type, text, references) or allocates one,
    /// and adds the subject's next version unless the subject already has
    /// a live version of it. Returns (schema id, version).
    async fn register_schema(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        refs: &str,
        now_ms: i64,
    ) -> Result<(i32, i32)>;

    /// Soft-deletes (or, with `permanent`, removes) versions of a subject;
    /// `None` means all of them.
    async fn delete_subject_versions(
        &self,
        subject: &str,
        version: Option<i32>,
        permanent: bool,
    ) -> Result<()>;

    /// Sets (or with `None` clears) a compatibility level; "" is global.
    async fn set_compatibility(&self, subject: &str, level: Option<&str>) -> Result<()>;

    /// Replaces the purposes a principal may state.
    async fn set_grants(&self, principal: &str, purposes: &[String]) -> Result<()>;

    /// Deletes a group of either protocol, with its members and offsets,
    /// in `term`.
    async fn delete_group(&self, term: CoordinatorTerm, group_id: &str) -> Result<()>;

    /// Commits offsets of a group, in one transaction, in `term`.
    async fn commit_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()>;

    /// Committed offsets of a group.
    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>>;

    /// Deletes some committed offsets of a group, in `term`.
    async fn delete_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<()>;

    /// Ids of groups that have committed offsets.
    async fn groups_with_offsets(&self) -> Result<Vec<String>>;

    /// The SCRAM credentials of one user, or of every user.
    async fn scram_credentials(&self, user: Option<&str>) -> Result<Vec<ScramCredentialRecord>>;

    /// Stores (replaces) and deletes SCRAM credentials, (user, mechanism)
    /// for the deletions, in one transaction.
    async fn alter_scram_credentials(
        &self,
        upserts: &[ScramCredentialRecord],
        deletions: &[(String, String)],
    ) -> Result<()>;

    /// The cluster-wide value `name` (a secret every broker shares, say):
    /// stored as `fresh` if it has none yet; the stored value either way.
    async fn cluster_value_or_insert(&self, name: &str, fresh: &str) -> Result<String>;

    /// Every access control entry, and the change token they were read at
    /// (it moves with every change of them; None before the first).
    async fn acls(&self) -> Result<(Vec<AclRecord>, Option<String>)>;

    /// The ACLs' change token alone (cheap; see [`MetadataStore::acls`]).
    async fn acls_change(&self) -> Result<Option<String>>;

    /// Adds entries (those already present stay as they are) and removes
    /// entries (those absent are ignored), in one transaction.
    async fn alter_acls(&self, added: &[AclRecord], removed: &[AclRecord]) -> Result<()>;
}
