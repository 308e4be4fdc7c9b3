//! The transaction coordinator (KIP-98, transactions v1).
//!
//! Each transactional id has a state in the metadata store
//! ([`TransactionRecord`]): its producer id and epoch, Kafka's state name,
//! the partitions and group offsets of the open transaction. The decision
//! to commit or abort is saved (`PrepareCommit` / `PrepareAbort`) before
//! any marker is written, so a coordinator that restarts, or the next one,
//! finishes what was decided ([`TxnCoordinator::tick`]): markers are
//! written only where the producer still has a transaction open
//! ([`Log::write_marker`]), so finishing twice writes nothing twice.
//! Offsets a transaction commits for groups reach the group only when it
//! commits.
//!
//! The coordinator runs where the group coordinator does, and writes the
//! markers through this broker's log: a partition whose topic another
//! broker leads cannot join a transaction yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use floe_storage::log::{now_ms, Log};
use floe_storage::meta::{CommittedOffset, MetadataStore, TransactionRecord};
use floe_storage::StorageError;
use tracing::{info, warn};

use crate::groups::saver::GroupSaver;
use crate::kafka::errors::code;

/// Kafka's state names (DescribeTransactions and ListTransactions show them).
pub mod state {
    /// No transaction yet, or the last one finished.
    pub const EMPTY: &str = "Empty";
    /// A transaction is open.
    pub const ONGOING: &str = "Ongoing";
    /// Commit decided; markers being written.
    pub const PREPARE_COMMIT: &str = "PrepareCommit";
    /// Abort decided; markers being written.
    pub const PREPARE_ABORT: &str = "PrepareAbort";
    /// The last transaction committed.
    pub const COMPLETE_COMMIT: &str = "CompleteCommit";
    /// The last transaction aborted.
    pub const COMPLETE_ABORT: &str = "CompleteAbort";
}

/// Longest transaction timeout a producer may ask for
/// (`transaction.max.timeout.ms`, Kafka's default).
pub const MAX_TIMEOUT_MS: i32 = 900_000;

/// A refusal, as a Kafka error code.
pub type Refused = i16;

/// One transactional id, behind its own lock: requests for one id run one
/// at a time, those for different ids concurrently.
type Slot = Arc<tokio::sync::Mutex<Option<TransactionRecord>>>;

/// The transaction coordinator of this broker.
pub struct TxnCoordinator {
    meta: Arc<dyn MetadataStore>,
    log: Arc<Log>,
    saver: Arc<GroupSaver>,
    slots: Mutex<HashMap<String, Slot>>,
    /// Producer id to transactional id, for produce checks.
    by_producer: Mutex<HashMap<i64, String>>,
    loaded: tokio::sync::OnceCell<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxnCoordinator {
    /// A coordinator over the store's transactions (loaded at first use).
    pub fn new(meta: Arc<dyn MetadataStore>, log: Arc<Log>, saver: Arc<GroupSaver>) -> Arc<Self> {
        Arc::new(TxnCoordinator {
            meta,
            log,
            saver,
            slots: Mutex::new(HashMap::new()),
            by_producer: Mutex::new(HashMap::new()),
            loaded: tokio::sync::OnceCell::new(),
        })
    }

    async fn load(&self) -> Result<(), Refused> {
        self.loaded
            .get_or_try_init(|| async {
                let all = self.meta.load_transactions().await?;
                let mut slots = lock(&self.slots);
                let mut by_producer = lock(&self.by_producer);
                for t in all {
                    by_producer.insert(t.producer_id, t.transactional_id.clone());
                    slots.insert(
                        t.transactional_id.clone(),
                        Arc::new(tokio::sync::Mutex::new(Some(t))),
                    );
                }
                Ok::<_, StorageError>(())
            })
            .await
            .map(|_| ())
            .map_err(|e| {
                warn!(error = %e, "loading transactions failed");
                code::COORDINATOR_LOAD_IN_PROGRESS
            })
    }

    async fn slot(&self, id: &str) -> Result<Slot, Refused> {
        self.load().await?;
        Ok(lock(&self.slots)
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone())
    }

    async fn save(&self, t: &TransactionRecord) -> Result<(), Refused> {
        self.saver.save_transaction(t).await.map_err(|e| match e {
            StorageError::Fenced(_) => code::NOT_COORDINATOR,
            e => {
                warn!(transactional_id = %t.transactional_id, error = %e, "saving a transaction failed");
                code::COORDINATOR_NOT_AVAILABLE
            }
        })
    }

    /// InitProducerId with a transactional id: a producer id and a new
    /// epoch, fencing any earlier producer of the id; an open transaction
    /// of the id is aborted first, a decided one finished.
    pub async fn init_producer(
        &self,
        id: &str,
        timeout_ms: i32,
        claimed: (i64, i16),
    ) -> Result<(i64, i16), Refused> {
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(code::INVALID_TRANSACTION_TIMEOUT);
        }
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let now = now_ms();
        let mut t = match guard.take() {
            None => {
                let producer_id = self
                    .meta
                    .new_producer_id(now)
                    .await
                    .map_err(|_| code::COORDINATOR_NOT_AVAILABLE)?;
                let t = TransactionRecord {
                    transactional_id: id.to_string(),
                    producer_id,
                    producer_epoch: 0,
                    state: state::EMPTY.into(),
                    timeout_ms: timeout_ms.into(),
                    partitions: Vec::new(),
                    group_offsets: Vec::new(),
                    started_ms: 0,
                    updated_ms: now,
                    previous_producer: None,
                };
                self.save(&t).await?;
                lock(&self.by_producer).insert(producer_id, id.to_string());
                let out = (t.producer_id, t.producer_epoch);
                *guard = Some(t);
                return Ok(out);
            }
            Some(t) => t,
        };
        let result = async {
            // KIP-360: a producer re-initialising says who it was; only the
            // current one may.
            if claimed.0 >= 0 && (claimed.0, claimed.1) != (t.producer_id, t.producer_epoch) {
                return Err(code::PRODUCER_FENCED);
            }
            if t.state == state::ONGOING {
                // The new producer fences the old: its transaction aborts,
                // with markers at a new epoch.
                t.producer_epoch += 1;
                t.state = state::PREPARE_ABORT.into();
                self.save(&t).await?;
            }
            self.finish(&mut t).await?;
            if t.producer_epoch >= i16::MAX - 1 {
                let old = t.producer_id;
                t.producer_id = self
                    .meta
                    .new_producer_id(now)
                    .await
                    .map_err(|_| code::COORDINATOR_NOT_AVAILABLE)?;
                t.producer_epoch = 0;
                lock(&self.by_producer).remove(&old);
                lock(&self.by_producer).insert(t.producer_id, id.to_string());
            } else {
                t.producer_epoch += 1;
            }
            t.state = state::EMPTY.into();
            t.timeout_ms = timeout_ms.into();
            t.updated_ms = now;
            self.save(&t).await?;
            Ok((t.producer_id, t.producer_epoch))
        }
        .await;
        *guard = Some(t);
        result
    }

    /// The id's state, when the request's producer is its current one.
    fn current(
        t: &mut Option<TransactionRecord>,
        producer: (i64, i16),
    ) -> Result<&mut TransactionRecord, Refused> {
        let Some(t) = t.as_mut() else {
            return Err(code::INVALID_PRODUCER_ID_MAPPING);
        };
        if t.producer_id != producer.0 {
            return Err(code::INVALID_PRODUCER_ID_MAPPING);
        }
        if producer.1 < t.producer_epoch {
            return Err(code::PRODUCER_FENCED);
        }
        if producer.1 != t.producer_epoch {
            return Err(code::INVALID_PRODUCER_EPOCH);
        }
        Ok(t)
    }

    /// Opens the transaction if none is (AddPartitionsToTxn and
    /// AddOffsetsToTxn both do).
    fn begin(t: &mut TransactionRecord, now: i64) -> Result<(), Refused> {
        match t.state.as_str() {
            state::PREPARE_COMMIT | state::PREPARE_ABORT => Err(code::CONCURRENT_TRANSACTIONS),
            state::ONGOING => Ok(()),
            _ => {
                t.state = state::ONGOING.into();
                t.started_ms = now;
                Ok(())
            }
        }
    }

    /// AddPartitionsToTxn: the partitions join the open transaction.
    /// `local` says whether this broker can write a partition's markers.
    pub async fn add_partitions(
        &self,
        id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
        verify_only: bool,
    ) -> Result<(), Refused> {
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let t = Self::current(&mut guard, producer)?;
        if verify_only {
            let all_in =
                t.state == state::ONGOING && partitions.iter().all(|p| t.partitions.contains(p));
            return if all_in {
                Ok(())
            } else {
                Err(code::INVALID_TXN_STATE)
            };
        }
        let mut changed = t.clone();
        Self::begin(&mut changed, now_ms())?;
        for p in partitions {
            if !changed.partitions.contains(p) {
                changed.partitions.push(p.clone());
            }
        }
        if changed != *t {
            changed.updated_ms = now_ms();
            self.save(&changed).await?;
            *t = changed;
        }
        Ok(())
    }

    /// AddOffsetsToTxn: the transaction will commit offsets for a group.
    pub async fn add_offsets(&self, id: &str, producer: (i64, i16)) -> Result<(), Refused> {
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let t = Self::current(&mut guard, producer)?;
        if t.state != state::ONGOING {
            let mut changed = t.clone();
            Self::begin(&mut changed, now_ms())?;
            self.save(&changed).await?;
            *t = changed;
        }
        Ok(())
    }

    /// TxnOffsetCommit: offsets held in the transaction until it commits.
    pub async fn commit_offsets(
        &self,
        id: &str,
        producer: (i64, i16),
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), Refused> {
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let t = Self::current(&mut guard, producer)?;
        if t.state != state::ONGOING {
            return Err(code::INVALID_TXN_STATE);
        }
        let mut changed = t.clone();
        for o in offsets {
            changed
                .group_offsets
                .retain(|(g, x)| !(g == group && x.topic == o.topic && x.partition == o.partition));
            changed.group_offsets.push((group.to_string(), o));
        }
        changed.updated_ms = now_ms();
        self.save(&changed).await?;
        *t = changed;
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction, and answers once
    /// every marker is in the log.
    pub async fn end(&self, id: &str, producer: (i64, i16), commit: bool) -> Result<(), Refused> {
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let t = Self::current(&mut guard, producer)?;
        let decided = if commit {
            state::PREPARE_COMMIT
        } else {
            state::PREPARE_ABORT
        };
        match (t.state.as_str(), commit) {
            (state::ONGOING, _) => {
                let mut changed = t.clone();
                changed.state = decided.into();
                changed.updated_ms = now_ms();
                self.save(&changed).await?;
                *t = changed;
            }
            // A retry of the same decision.
            (s, _) if s == decided => {}
            (state::COMPLETE_COMMIT, true) | (state::COMPLETE_ABORT, false) => return Ok(()),
            _ => return Err(code::INVALID_TXN_STATE),
        }
        self.finish(t).await
    }

    /// Writes the markers of a decided transaction and completes it
    /// (nothing to do unless it is `Prepare*`).
    async fn finish(&self, t: &mut TransactionRecord) -> Result<(), Refused> {
        let commit = match t.state.as_str() {
            state::PREPARE_COMMIT => true,
            state::PREPARE_ABORT => false,
            _ => return Ok(()),
        };
        let producer = (t.producer_id, t.producer_epoch);
        let mut pending = Vec::new();
        for (topic, partition) in &t.partitions {
            match self
                .log
                .write_marker(topic, *partition, producer, commit, 0)
                .await
            {
                Ok(Some(p)) => pending.push(p),
                Ok(None) => {}
                // Deleted since: nothing left to mark.
                Err(StorageError::UnknownTopic(_)) | Err(StorageError::UnknownPartition(..)) => {}
                Err(e) => {
                    warn!(transactional_id = %t.transactional_id, %topic, partition, error = %e, "writing a transaction marker failed; retried");
                    return Err(code::COORDINATOR_NOT_AVAILABLE);
                }
            }
        }
        for p in pending {
            if let Err(e) = p.committed().await {
                warn!(transactional_id = %t.transactional_id, error = %e, "a transaction marker's flush failed; retried");
                return Err(code::COORDINATOR_NOT_AVAILABLE);
            }
        }
        if commit && !t.group_offsets.is_empty() {
            let mut by_group: HashMap<&str, Vec<CommittedOffset>> = HashMap::new();
            for (g, o) in &t.group_offsets {
                by_group.entry(g).or_default().push(o.clone());
            }
            for (group, offsets) in by_group {
                self.saver
                    .commit_offsets(group, &offsets)
                    .await
                    .map_err(|_| code::COORDINATOR_NOT_AVAILABLE)?;
            }
        }
        let mut done = t.clone();
        done.state = if commit {
            state::COMPLETE_COMMIT
        } else {
            state::COMPLETE_ABORT
        }
        .into();
        done.partitions.clear();
        done.group_offsets.clear();
        done.started_ms = 0;
        done.updated_ms = now_ms();
        self.save(&done).await?;
        *t = done;
        Ok(())
    }

    /// Whether a transactional produce may write to a partition: the
    /// producer is its id's current one and the partition is in its open
    /// transaction.
    pub async fn check_produce(
        &self,
        id: &str,
        producer: (i64, i16),
        topic: &str,
        partition: i32,
    ) -> Result<(), Refused> {
        let slot = self.slot(id).await?;
        let mut guard = slot.lock().await;
        let t = match Self::current(&mut guard, producer) {
            Err(code::PRODUCER_FENCED) => return Err(code::INVALID_PRODUCER_EPOCH),
            r => r?,
        };
        let member = t
            .partitions
            .iter()
            .any(|(tp, p)| tp == topic && *p == partition);
        if t.state == state::ONGOING && member {
            Ok(())
        } else {
            Err(code::INVALID_TXN_STATE)
        }
    }

    /// Every transactional id's state (DescribeTransactions,
    /// ListTransactions).
    pub async fn all(&self) -> Result<Vec<TransactionRecord>, Refused> {
        self.load().await?;
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        let mut out = Vec::new();
        for s in slots {
            if let Some(t) = s.lock().await.clone() {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// One pass of the coordinator's duties: finishes decided
    /// transactions (after a restart) and aborts those open past their
    /// timeout, fencing their producer with a new epoch.
    pub async fn tick(&self) {
        if self.load().await.is_err() {
            return;
        }
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        let now = now_ms();
        for s in slots {
            let mut guard = s.lock().await;
            let Some(t) = guard.as_mut() else { continue };
            if t.state == state::ONGOING && now > t.started_ms + t.timeout_ms {
                info!(transactional_id = %t.transactional_id, "aborting a transaction open past its timeout");
                let mut changed = t.clone();
                changed.producer_epoch += 1;
                changed.state = state::PREPARE_ABORT.into();
                changed.updated_ms = now;
                if self.save(&changed).await.is_err() {
                    continue;
                }
                *t = changed;
            }
            let _ = self.finish(t).await;
        }
    }
}
