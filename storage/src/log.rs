//! The log: topics, partitions, the write path and the read path.
//!
//! Write path (DESIGN.md): a produce hands each partition's batches to
//! [`Log::append`] (`append.rs`). The partition leader (this broker) checks
//! them, assigns offsets in memory, deduplicates idempotent producers, and
//! appends the records to the topic's [`FlushBuffer`] as Arrow builders. A
//! flusher task per topic (`flush.rs`) encodes the buffer as ONE Parquet
//! file when it reaches its size or at the broker's next linger tick; a
//! small one goes into the shared intake object of that tick
//! ([`crate::intake`]), a large one is written as a file of its own. The
//! flusher then commits the segment rows, high watermarks and producer
//! states in ONE metadata-store transaction checked against the leader
//! epoch. Only then are the waiting produce requests answered. Intake
//! chunks move into the topic's own files at its table commit interval
//! (`intake_move.rs`, from the table commit in `table_sync.rs`).
//!
//! Read path (`read.rs`): [`Log::read`] serves from the partition's [`TailCache`] when it
//! can, otherwise from the segment index with ranged reads of a segment's
//! rows (its run of one row group).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use bytes::{Bytes, BytesMut};
use floe_protocol::records::{self, stamp_batch, RawBatch};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::PageIndexPolicy;
use tokio::sync::{watch, Notify};
use tracing::{debug, error, info, warn};

use crate::error::{Result, StorageError};
use crate::intake::{self, Claim, Intake, Ticket};
use crate::intake_cache::IntakeCache;
use crate::memory::{Gauge, Held, MemoryBudget, MemoryUse};
use crate::meta::{
    FlushCommit, MetadataStore, OpenTransactionRecord, PartitionRecord, ProducerStateRecord,
    SegmentRecord, TopicRecord, TransactionMarkerRecord,
};
use crate::metrics::FlushMetrics;
use crate::range_reader::RangeReader;
use crate::segment::{self, SegmentFormat, TopicRows};
use crate::sync::{lock, read_lock, write_lock};
use crate::table::io::StoreIo;
use crate::table::{NewFile, TableConfig, Tables};
use crate::tail_cache::TailCache;
use crate::topic_config::{collision_key, validate_topic_name, TopicConfig};
use crate::typed::Layouts;
use flush::{run_flusher, FlushBuffer, FlushSlot};
use footers::FooterCache;
use group_commit::GroupCommit;
use idempotence::plan_idempotence;
use shared_groups::SharedGroups;
use table_sync::{day_of, run_table_committer, TableLag};
use transactions::PartitionTxns;

mod append;
mod broker_configs;
mod check;
mod compaction;
mod flush;
mod footers;
mod group_commit;
mod idempotence;
mod intake_move;
mod key_compaction;
mod latest_per_key;
mod leadership;
mod read;
mod retention;
mod shared_groups;
mod table_sync;
mod table_txns;
mod transactions;

pub use check::{PartitionCheck, TopicCheck};
pub use compaction::CompactionStats;
pub use flush::PendingAppend;
pub use idempotence::ActiveProducer;
pub use leadership::Followed;
pub use table_sync::LiveFile;

/// Batches of an idempotent producer remembered per partition, as Kafka does.
const PRODUCER_RECENT_BATCHES: usize = 5;
/// Bound on a batch's decompressed size.
const MAX_UNCOMPRESSED_BATCH: usize = 128 * 1024 * 1024;
/// Most partitions a topic may have.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// This broker.
    pub broker_id: i32,
    /// Flush when a topic's buffer reaches this many bytes.
    pub flush_bytes: usize,
    /// Flush at the latest at the broker's next tick of this period after
    /// the first buffered record; also the least time between two intake
    /// objects.
    pub flush_linger: Duration,
    /// A flush of at least this many buffered bytes is written as a file
    /// of its own; smaller ones go into the shared intake object.
    pub intake_direct_bytes: usize,
    /// Broker-wide bounds on what the log holds in memory.
    pub memory: MemoryBudget,
    /// Parquet settings.
    pub format: SegmentFormat,
    /// Uncommitted files younger than this are not swept (a flush may be
    /// between its write and its commit).
    pub orphan_grace: Duration,
    /// How often retention and the orphan sweeper run.
    pub maintenance_interval: Duration,
    /// Iceberg tables.
    pub tables: TableConfig,
    /// Compaction rewrites runs of files smaller than half this into files
    /// of about this size.
    pub compaction_target_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            broker_id: 0,
            flush_bytes: 4 * 1024 * 1024,
            flush_linger: Duration::from_millis(10),
            intake_direct_bytes: 256 * 1024,
            memory: MemoryBudget::default(),
            format: SegmentFormat::default(),
            orphan_grace: Duration::from_secs(600),
            maintenance_interval: Duration::from_secs(30),
            tables: TableConfig::default(),
            compaction_target_bytes: 128 * 1024 * 1024,
        }
    }
}

pub use crate::sync::now_ms;

/// A check of one produced record: Err names why it is refused; Ok(true)
/// means the check rewrote the record (a coerced value), so its batch is
/// rebuilt before it is stored.
pub type RecordCheck<'a> =
    dyn FnMut(&mut records::Record) -> std::result::Result<bool, String> + Send + 'a;

#[derive(Debug, Clone)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    slot: Option<Arc<FlushSlot>>,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    recent: VecDeque<BatchMeta>,
    /// Its last batch's timestamp (kept in memory only: unknown after a
    /// restart until the producer writes again).
    last_timestamp: Option<i64>,
}

impl ProducerEntry {
    fn record(&self, topic: &str, partition: i32, producer_id: i64) -> ProducerStateRecord {
        ProducerStateRecord {
            topic: topic.to_string(),
            partition,
            producer_id,
            producer_epoch: self.epoch,
            recent: self
                .recent
                .iter()
                .map(|b| (b.first_seq, b.last_seq, b.base_offset))
                .collect(),
        }
    }

    fn from_record(r: &ProducerStateRecord) -> Self {
        ProducerEntry {
            epoch: r.producer_epoch,
            recent: r
                .recent
                .iter()
                .map(|&(first_seq, last_seq, base_offset)| BatchMeta {
                    first_seq,
                    last_seq,
                    base_offset,
                    slot: None,
                })
                .collect(),
            last_timestamp: None,
        }
    }
}

/// The leader's view of one partition.
#[derive(Debug)]
struct PartitionState {
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    leader_epoch: i32,
    producers: HashMap<i64, ProducerEntry>,
    committed_producers: HashMap<i64, ProducerEntry>,
    txns: PartitionTxns,
}

/// One partition of a topic.
#[derive(Debug)]
pub struct PartitionLog {
    /// Partition index.
    pub index: i32,
    state: Mutex<PartitionState>,
    tail: Mutex<TailCache>,
    segments: RwLock<BTreeMap<i64, SegmentRecord>>,
    read_ahead: Mutex<Option<ReadAhead>>,
}

/// A segment read started in the background for the offset a consumer will
/// fetch next.
#[derive(Debug)]
struct ReadAhead {
    started: Instant,
    offset: i64,
    max_bytes: usize,
    leader_epoch: i32,
    handle: tokio::task::JoinHandle<Result<segment::RebuiltBatches>>,
    /// Its bytes, counted against the read-ahead budget until it is used
    /// or dropped.
    _held: Held,
}

/// Offsets and epoch of a partition at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSnapshot {
    /// Committed high watermark.
    pub high_watermark: i64,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// Last stable offset: the first offset of a transaction still open,
    /// else the high watermark.
    pub last_stable_offset: i64,
}

impl PartitionLog {
    fn new(index: i32, hw: i64, start: i64, epoch: i32, tail_share: Arc<AtomicUsize>) -> Self {
        PartitionLog {
            index,
            state: Mutex::new(PartitionState {
                next_offset: hw,
                high_watermark: hw,
                log_start_offset: start,
                leader_epoch: epoch,
                producers: HashMap::new(),
                committed_producers: HashMap::new(),
                txns: PartitionTxns::default(),
            }),
            tail: Mutex::new(TailCache::new(tail_share)),
            segments: RwLock::new(BTreeMap::new()),
            read_ahead: Mutex::new(None),
        }
    }

    /// Bytes of this partition's rows in object storage (each segment's
    /// share of its file), what DescribeLogDirs reports as its size.
    pub fn stored_bytes(&self) -> i64 {
        read_lock(&self.segments)
            .values()
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Current offsets and epoch.
    pub fn snapshot(&self) -> PartitionSnapshot {
        let s = lock(&self.state);
        PartitionSnapshot {
            high_watermark: s.high_watermark,
            log_start_offset: s.log_start_offset,
            leader_epoch: s.leader_epoch,
            last_stable_offset: s
                .txns
                .first_open()
                .map_or(s.high_watermark, |o| o.min(s.high_watermark)),
        }
    }
}

/// One topic.
pub struct TopicLog {
    /// Name.
    pub name: String,
    /// Kafka topic id.
    pub id: uuid::Uuid,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<Arc<PartitionLog>>>,
    buffer: Mutex<FlushBuffer>,
    wake: Notify,
    flushed: Notify,
    deleted: AtomicBool,
    /// When this log loaded it (see [`Log::follow`]).
    loaded: Instant,
    /// Another broker leads the topic now (or this one's epoch was
    /// fenced): nothing more is appended or flushed here.
    released: AtomicBool,
    generation: AtomicU64,
    table_lag: TableLag,
    /// Held by a table sync from start to end, and by the topic's
    /// deletion: a sync in flight does not publish the table again after
    /// the deletion dropped it.
    table_sync: tokio::sync::Mutex<()>,
}

impl TopicLog {
    /// How long the oldest records the topic's table does not hold yet
    /// have been committed to the log, in milliseconds (0 when the table
    /// holds everything).
    pub fn table_lag_ms(&self, now: i64) -> i64 {
        self.table_lag.lag_ms(now)
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        read_lock(&self.partitions).len() as i32
    }

    /// One partition.
    pub fn partition(&self, index: i32) -> Option<Arc<PartitionLog>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| read_lock(&self.partitions).get(i).cloned())
    }

    /// All partitions.
    /// The partition, or UnknownPartition.
    pub(super) fn require_partition(&self, index: i32) -> Result<Arc<PartitionLog>> {
        self.partition(index)
            .ok_or_else(|| StorageError::UnknownPartition(self.name.clone(), index))
    }

    pub fn partitions(&self) -> Vec<Arc<PartitionLog>> {
        read_lock(&self.partitions).clone()
    }

    /// Deleted, or led by another broker now: this log no longer writes it.
    fn closed(&self) -> bool {
        self.deleted.load(Ordering::SeqCst) || self.released.load(Ordering::SeqCst)
    }

    /// Effective configuration.
    pub fn config(&self) -> TopicConfig {
        read_lock(&self.config).clone()
    }

    /// Whether the topic's `floe.validate.mode` is `reject`, if set (read
    /// in place: the produce path asks on every request).
    pub fn validates(&self) -> Option<bool> {
        read_lock(&self.config).validates()
    }

    /// See [`TopicConfig::coerce`].
    pub fn coerce(&self) -> Option<Option<String>> {
        read_lock(&self.config).coerce()
    }
}

/// What a Fetch gets from one partition.
#[derive(Debug, Default)]
pub struct ReadResult {
    /// Record batches, in offset order.
    pub batches: Vec<Bytes>,
    /// Their total size.
    pub size: usize,
    /// Offsets at the time of the read.
    pub high_watermark: i64,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Last stable offset at the time of the read.
    pub last_stable_offset: i64,
}

/// The log of every topic this broker leads.
pub struct Log {
    cfg: LogConfig,
    meta: Arc<dyn MetadataStore>,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    topics: RwLock<HashMap<String, Arc<TopicLog>>>,
    /// Held by whatever puts a topic in `topics` (its creation here, a
    /// claim of its leadership), from the store's decision to the insert:
    /// a claim that raced a creation would bump the epoch under the
    /// created topic, whose every flush would then be fenced.
    placing: tokio::sync::Mutex<()>,
    commits: watch::Sender<u64>,
    footers: Mutex<FooterCache>,
    /// Produce buffers of every topic (see [`MemoryBudget::buffers`]).
    buffers: Arc<Gauge>,
    /// Read-ahead of every partition and the shared row groups kept for
    /// reads (see [`MemoryBudget::read_ahead`]).
    read_ahead: Arc<Gauge>,
    shared_groups: SharedGroups,
    /// Each partition's share of the tail-cache budget.
    tail_share: Arc<AtomicUsize>,
    /// Files this broker is reading now, with how many reads of each: a
    /// file the log and the table let go of is not deleted under them.
    reading: Mutex<HashMap<String, usize>>,
    /// Intake objects of this broker id present when this log opened:
    /// written by an earlier run, so no flush will commit a chunk of them
    /// (an earlier run still alive is fenced: this run claimed every topic
    /// it led), and their chunks only ever leave the store (moves). One
    /// that has none left is garbage at once, not after the orphan grace
    /// (a run killed between a move and the object's deletion).
    inherited_intake: Mutex<HashSet<String>>,
    tables: Arc<Tables>,
    layouts: Layouts,
    flush_metrics: FlushMetrics,
    intake: Intake,
    /// The intake objects this broker wrote lately (see
    /// [`MemoryBudget::intake`]).
    intake_cache: Arc<IntakeCache>,
    /// Broker configs set at run time (see `log/broker_configs.rs`).
    dynamic: RwLock<broker_configs::Dynamic>,
    group_commit: GroupCommit,
    /// The origin of the broker-wide flush ticks.
    ticks: Instant,
}

/// One read of a file in flight (see [`Log::reading`]); ends on drop.
struct Reading<'a> {
    log: &'a Log,
    path: String,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut reading = lock(&self.log.reading);
        if let Some(n) = reading.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                reading.remove(&self.path);
            }
        }
    }
}

impl Log {
    /// Opens the log: claims leadership of every partition (bumping leader
    /// epochs), loads topics, segment index and producer states, and starts
    /// one flusher per topic plus the maintenance task.
    pub async fn open(
        cfg: LogConfig,
        meta: Arc<dyn MetadataStore>,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
    ) -> Result<Arc<Self>> {
        let tables = Arc::new(Tables::new(
            cfg.tables.clone(),
            StoreIo::new(&cfg.tables.root_uri, store.clone()),
            meta.clone(),
        )?);
        if prefix.as_ref().contains('#') {
            return Err(StorageError::InvalidConfig(format!(
                "the object-store prefix {prefix} may not contain '#' (it marks intake chunks)"
            )));
        }
        let intake_cache = Arc::new(IntakeCache::new(Gauge::new(cfg.memory.intake)));
        let intake = Intake::start(
            store.clone(),
            prefix.clone(),
            cfg.flush_linger,
            intake_cache.clone(),
            cfg.broker_id,
        );
        let read_ahead = Gauge::new(cfg.memory.read_ahead);
        let log = Arc::new(Log {
            intake,
            intake_cache,
            group_commit: GroupCommit::start(meta.clone()),
            ticks: Instant::now(),
            tables,
            layouts: Layouts::new(meta.clone()),
            flush_metrics: FlushMetrics::default(),
            meta: meta.clone(),
            store,
            prefix,
            topics: RwLock::new(HashMap::new()),
            placing: tokio::sync::Mutex::new(()),
            commits: watch::channel(0).0,
            footers: Mutex::new(FooterCache::new(cfg.memory.footers)),
            buffers: Gauge::new(cfg.memory.buffers),
            read_ahead: read_ahead.clone(),
            shared_groups: SharedGroups::new(read_ahead),
            tail_share: Arc::new(AtomicUsize::new(cfg.memory.tail_cache)),
            reading: Mutex::new(HashMap::new()),
            inherited_intake: Mutex::new(HashSet::new()),
            dynamic: RwLock::new(broker_configs::Dynamic::load(meta.as_ref()).await?),
            cfg,
        });
        // Before any flush of this run can write one.
        let inherited: HashSet<String> = log
            .store
            .list(Some(&log.object_path(intake::INTAKE_DIR)))
            .map_ok(|o| o.location.to_string())
            .try_filter(|object| futures::future::ready(log.wrote_intake(object)))
            .try_collect()
            .await?;
        *lock(&log.inherited_intake) = inherited;
        let read_at = Instant::now();
        let (leaders, records) = (meta.topic_leaders().await?, meta.list_topics().await?);
        log.follow(&leaders, &records, read_at).await?;
        info!(topics = read_lock(&log.topics).len(), "log opened");
        tokio::spawn(run_maintenance(Arc::downgrade(&log)));
        tokio::spawn(run_table_committer(Arc::downgrade(&log)));
        Ok(log)
    }

    async fn load_topic(
        &self,
        t: &TopicRecord,
        parts: &[PartitionRecord],
    ) -> Result<Arc<TopicLog>> {
        let id = uuid::Uuid::parse_str(&t.topic_id)
            .map_err(|e| StorageError::Corrupt(format!("topic id: {e}")))?;
        let partitions: Vec<Arc<PartitionLog>> = parts
            .iter()
            .map(|p| {
                Arc::new(PartitionLog::new(
                    p.partition,
                    p.high_watermark,
                    p.log_start_offset,
                    p.leader_epoch,
                    self.tail_share.clone(),
                ))
            })
            .collect();
        for s in self.meta.list_segments(&t.name).await? {
            if let Some(p) = partitions.get(s.partition as usize) {
                write_lock(&p.segments).insert(s.base_offset, s);
            }
        }
        let open = self.meta.list_open_transactions(&t.name).await?;
        let markers = self.meta.list_transaction_markers(&t.name).await?;
        for p in &partitions {
            let open: Vec<_> = open.iter().filter(|o| o.partition == p.index).collect();
            let markers: Vec<_> = markers.iter().filter(|m| m.partition == p.index).collect();
            lock(&p.state).txns.load(&open, &markers);
        }
        for r in self.meta.list_producer_states(&t.name).await? {
            if let Some(p) = partitions.get(r.partition as usize) {
                let mut st = lock(&p.state);
                st.producers
                    .insert(r.producer_id, ProducerEntry::from_record(&r));
                st.committed_producers
                    .insert(r.producer_id, ProducerEntry::from_record(&r));
            }
        }
        Ok(Arc::new(TopicLog {
            name: t.name.clone(),
            id,
            config: RwLock::new(
                TopicConfig::new(t.configs.clone())?.with_defaults(self.topic_defaults()),
            ),
            partitions: RwLock::new(partitions),
            buffer: Mutex::new(FlushBuffer::new(&self.buffers)),
            wake: Notify::new(),
            flushed: Notify::new(),
            deleted: AtomicBool::new(false),
            loaded: Instant::now(),
            released: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            table_lag: TableLag::default(),
            table_sync: tokio::sync::Mutex::new(()),
        }))
    }

    /// Whether this broker id wrote an intake object. Only its writer
    /// deletes one before the orphan grace: another broker cannot know
    /// whether a flush of the writer is about to commit a chunk of it.
    fn wrote_intake(&self, object: &str) -> bool {
        intake::writer(object) == Some(self.cfg.broker_id)
    }

    /// The first broker-wide flush tick at or after `at`: every topic's
    /// flusher flushes on the same ticks, so one intake round gathers them.
    fn next_tick(&self, at: Instant) -> Instant {
        let period = self.cfg.flush_linger.as_nanos().max(1);
        let since = at.saturating_duration_since(self.ticks).as_nanos();
        let ticks = since.div_ceil(period);
        self.ticks + Duration::from_nanos((ticks * period).min(u64::MAX as u128) as u64)
    }

    /// What the write path measures (flush sizes and times).
    pub fn flush_metrics(&self) -> &FlushMetrics {
        &self.flush_metrics
    }

    /// The typed columns of schema topics (the broker names its registry
    /// as their schema source).
    pub fn layouts(&self) -> &Layouts {
        &self.layouts
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    /// This broker's id.
    pub fn broker_id(&self) -> i32 {
        self.cfg.broker_id
    }

    /// A topic this log leads, by name.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicLog>> {
        read_lock(&self.topics)
            .get(name)
            .filter(|t| !t.closed())
            .cloned()
    }

    /// A topic this log leads, by id.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<TopicLog>> {
        read_lock(&self.topics)
            .values()
            .find(|t| t.id == id && !t.closed())
            .cloned()
    }

    /// Every topic this log leads, sorted by name.
    pub fn topics(&self) -> Vec<Arc<TopicLog>> {
        let mut v: Vec<_> = read_lock(&self.topics)
            .values()
            .filter(|t| !t.closed())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A receiver that changes on every commit, for long polls.
    pub fn commit_notifications(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Creates a topic. `validate_only` checks without creating.
    pub async fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<TopicLog>>> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(StorageError::InvalidPartitions(format!(
                "number of partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
            )));
        }
        let configs = TopicConfig::new(configs)?.overrides;
        if self.topic(name).is_some() {
            return Err(StorageError::TopicExists(name.to_string()));
        }
        let key = collision_key(name);
        if let Some(other) = self
            .topics()
            .into_iter()
            .map(|t| t.name.clone())
            .find(|t| collision_key(t) == key)
        {
            return Err(StorageError::TopicCollides(name.to_string(), other));
        }
        if validate_only {
            return Ok(None);
        }
        let record = TopicRecord {
            name: name.to_string(),
            topic_id: uuid::Uuid::new_v4().to_string(),
            configs,
            created_ms: now_ms(),
        };
        let _placing = self.placing.lock().await;
        self.meta
            .create_topic(&record, partitions, self.cfg.broker_id)
            .await?;
        let parts = self.meta.list_partitions(name).await?;
        let topic = self.load_topic(&record, &parts).await?;
        {
            let mut topics = write_lock(&self.topics);
            if let Some(existing) = topics.get(name) {
                return Ok(Some(existing.clone()));
            }
            topics.insert(name.to_string(), topic.clone());
        }
        tokio::spawn(run_flusher(self.clone(), topic.clone()));
        self.share_tail_cache();
        info!(topic = name, partitions, "created topic");
        Ok(Some(topic))
    }

    /// Deletes a topic, its index rows and its files. A topic another
    /// broker leads is deleted in the store; its leader lets go of it at
    /// its next [`Log::follow`].
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let local = self.topic(name);
        let id = match &local {
            Some(t) => t.id,
            None => self.stored_topic(name).await?.1,
        };
        // Should the deletion fail, the next table commit registers the
        // entry again.
        let _syncing = match &local {
            Some(t) => Some(t.table_sync.lock().await),
            None => None,
        };
        self.tables.forget(name).await;
        let files = self.meta.delete_topic(name).await?;
        self.layouts.forget(name).await;
        if let Some(topic) = &local {
            topic.deleted.store(true, Ordering::SeqCst);
            write_lock(&self.topics).remove(name);
            self.share_tail_cache();
            topic.wake.notify_one();
        }
        self.delete_files(&files).await;
        let metadata = self.io_metadata_prefix(name, id);
        if let Err(e) = self.tables.io().file_io().delete_prefix(&metadata).await {
            warn!(topic = name, error = %e, "could not delete the table's metadata");
        }
        info!(topic = name, files = files.len(), "deleted topic");
        Ok(())
    }

    /// A topic as the store holds it, with its parsed id; UnknownTopic if
    /// it holds none of that name.
    async fn stored_topic(&self, name: &str) -> Result<(TopicRecord, uuid::Uuid)> {
        let record = self
            .meta
            .list_topics()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let id = uuid::Uuid::parse_str(&record.topic_id)
            .map_err(|e| StorageError::Corrupt(format!("topic id: {e}")))?;
        Ok((record, id))
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<()> {
        let Some(topic) = self.topic(name) else {
            return self
                .create_partitions_elsewhere(name, count, validate_only)
                .await;
        };
        check_growth(topic.partition_count(), count)?;
        if validate_only {
            return Ok(());
        }
        self.meta
            .add_partitions(name, count, self.cfg.broker_id)
            .await?;
        let mut parts = write_lock(&topic.partitions);
        for p in parts.len() as i32..count {
            parts.push(Arc::new(PartitionLog::new(
                p,
                0,
                0,
                0,
                self.tail_share.clone(),
            )));
        }
        drop(parts);
        self.share_tail_cache();
        Ok(())
    }

    /// Grows a topic another broker leads, in the store (its leader takes
    /// the new partitions in at its next [`Log::follow`]).
    async fn create_partitions_elsewhere(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<()> {
        let leader = self
            .meta
            .topic_leaders()
            .await?
            .into_iter()
            .find(|l| l.topic == name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        check_growth(leader.partitions, count)?;
        if validate_only {
            return Ok(());
        }
        self.meta
            .add_partitions(name, count, leader.leader_id)
            .await
    }

    /// What the log holds in memory now, by use.
    pub fn memory_use(&self) -> MemoryUse {
        let tail_cache = self
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| lock(&p.tail).size())
            .sum();
        MemoryUse {
            buffers: self.buffers.used(),
            tail_cache,
            read_ahead: self.read_ahead.used(),
            footers: lock(&self.footers).bytes(),
            intake: self.intake_cache.bytes(),
        }
    }

    /// The bounds of [`Log::memory_use`].
    pub fn memory_budget(&self) -> MemoryBudget {
        self.cfg.memory
    }

    /// Drops read-ahead no consumer came for (it holds read-ahead budget
    /// the partitions being read need).
    fn drop_stale_read_ahead(&self) {
        const STALE: Duration = Duration::from_secs(30);
        for t in self.topics() {
            for p in t.partitions() {
                let mut ahead = lock(&p.read_ahead);
                if ahead.as_ref().is_some_and(|a| a.started.elapsed() > STALE) {
                    if let Some(a) = ahead.take() {
                        a.handle.abort();
                    }
                }
            }
        }
    }

    /// Gives every partition an equal share of the tail-cache budget, and
    /// trims the caches already over it.
    fn share_tail_cache(&self) {
        let topics = self.topics();
        let partitions: usize = topics.iter().map(|t| t.partitions().len()).sum();
        let share = self.cfg.memory.tail_cache / partitions.max(1);
        self.tail_share.store(share, Ordering::SeqCst);
        for t in &topics {
            for p in t.partitions() {
                lock(&p.tail).trim();
            }
        }
    }

    /// Replaces the explicit configs of a topic.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let topic = self.topic(name);
        if topic.is_none() {
            // Led elsewhere: its leader takes the configs in at its next
            // follow.
            self.stored_topic(name).await?;
        }
        let cfg = TopicConfig::new(configs)?;
        if validate_only {
            return Ok(());
        }
        self.meta.set_topic_configs(name, &cfg.overrides).await?;
        if let Some(topic) = topic {
            *write_lock(&topic.config) = cfg.with_defaults(self.topic_defaults());
        }
        Ok(())
    }
}

/// Whether a topic of `current` partitions may grow to `count`.
fn check_growth(current: i32, count: i32) -> Result<()> {
    if count <= current {
        return Err(StorageError::InvalidPartitions(format!(
            "topic currently has {current} partitions, which is higher than or equal to the requested {count}"
        )));
    }
    if count > MAX_PARTITIONS {
        return Err(StorageError::InvalidPartitions(format!(
            "at most {MAX_PARTITIONS} partitions"
        )));
    }
    Ok(())
}

fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional)
}

async fn run_maintenance(log: std::sync::Weak<Log>) {
    let mut first = true;
    loop {
        let interval = match log.upgrade() {
            Some(l) => l.cfg.maintenance_interval,
            None => return,
        };
        if !first {
            tokio::time::sleep(interval).await;
        }
        first = false;
        let Some(log) = log.upgrade() else { return };
        if let Err(e) = log.enforce_retention().await {
            warn!(error = %e, "retention failed");
        }
        log.drop_stale_read_ahead();
        for topic in log.topics() {
            if log.intake_bytes(&topic) >= intake_move::MOVE_BYTES {
                if let Err(e) = log.move_intake(&topic).await {
                    warn!(topic = %topic.name, error = %e, "moving intake chunks failed");
                }
            }
        }
        for topic in log.topics() {
            if let Err(e) = log.trim(&topic).await {
                warn!(topic = %topic.name, error = %e, "trimming rows below the log start failed");
            }
        }
        if let Err(e) = log.compact_all().await {
            warn!(error = %e, "compaction failed");
        }
        match log.sweep_orphans().await {
            Ok(0) => {}
            Ok(n) => info!(files = n, "swept uncommitted files"),
            Err(e) => warn!(error = %e, "orphan sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::sql::SqlStore;
    use crate::object::open_object_store;

    #[tokio::test]
    async fn a_file_being_read_is_not_deleted_under_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let objects = open_object_store(dir.path().join("objects").to_str().unwrap()).unwrap();
        let meta = Arc::new(SqlStore::sqlite(&dir.path().join("meta.db")).await.unwrap());
        let cfg = LogConfig {
            orphan_grace: Duration::ZERO,
            maintenance_interval: Duration::from_secs(3600),
            tables: TableConfig {
                root_uri: objects.root_uri.clone(),
                ..TableConfig::default()
            },
            ..LogConfig::default()
        };
        let log = Log::open(cfg, meta, objects.store.clone(), objects.prefix)
            .await
            .unwrap();
        // The maintenance pass at opening (this test sweeps by itself).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = log.object_path("topics/t-0/data/day=1/released.parquet");
        let exists = || async { objects.store.head(&path).await.is_ok() };
        log.store
            .put(&path, PutPayload::from_static(b"rows"))
            .await
            .unwrap();

        let read = log.reading(path.as_ref());
        let again = log.reading(path.as_ref());
        log.delete_files(&[path.to_string()]).await;
        assert_eq!(log.sweep_orphans().await.unwrap(), 0);
        drop(read);
        log.delete_files(&[path.to_string()]).await;
        assert!(exists().await, "one read still holds it");
        drop(again);
        assert!(!log.in_use(path.as_ref()));
        assert_eq!(log.sweep_orphans().await.unwrap(), 1);
        assert!(!exists().await);
    }
}
