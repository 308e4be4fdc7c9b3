//! Writes group state and committed offsets to the metadata store, in the
//! coordinator term this broker holds.
//!
//! Coordinators change groups under a lock that must not wait on the
//! database, so they hand the new state of a group here. Only the newest
//! state of each group matters: a save that has not been written yet is
//! replaced by the next one, and one task writes them, so an older state
//! can never overwrite a newer one. Deletes wait for any write in progress.
//!
//! Every write carries the term ([`CoordinatorTerm`]) the seat holds, and
//! the store refuses it once the coordinator placement moved on: a broker
//! that lost the seat (its lease lapsed, it stalled) cannot overwrite the
//! groups or offsets its successor saved. Without a term nothing is
//! written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use floe_storage::error::StorageError;
use floe_storage::log::now_ms;
use floe_storage::meta::{
    CommittedOffset, ConsumerProtocolGroupRecord, CoordinatorTerm, GroupRecord, MetadataStore,
    TransactionRecord,
};
use tokio::sync::Notify;
use tracing::warn;

use crate::groups::lock;

/// The state of one group, of either protocol.
#[derive(Debug, Clone)]
pub enum SavedGroup {
    /// A classic-protocol group.
    Classic(GroupRecord),
    /// A consumer-protocol (KIP-848) group.
    ConsumerProtocol(ConsumerProtocolGroupRecord),
}

impl SavedGroup {
    fn group_id(&self) -> &str {
        match self {
            SavedGroup::Classic(g) => &g.group_id,
            SavedGroup::ConsumerProtocol(g) => &g.group_id,
        }
    }
}

/// The background writer of group state.
pub struct GroupSaver {
    meta: Arc<dyn MetadataStore>,
    /// The term writes are made in; `None` while this broker does not
    /// coordinate the groups.
    term: Mutex<Option<CoordinatorTerm>>,
    pending: Mutex<BTreeMap<String, SavedGroup>>,
    wake: Notify,
    writing: tokio::sync::Mutex<()>,
}

impl GroupSaver {
    /// Starts the writer task.
    pub fn start(meta: Arc<dyn MetadataStore>) -> Arc<Self> {
        let saver = Arc::new(GroupSaver {
            meta,
            term: Mutex::new(None),
            pending: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(run(saver.clone()));
        saver
    }

    /// The metadata store it writes to.
    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    /// Makes the writes from now on in `term` (`None`: none are made).
    pub fn hold(&self, term: Option<CoordinatorTerm>) {
        *lock(&self.term) = term;
    }

    /// The term writes are made in, or `Fenced` when there is none.
    fn term(&self) -> floe_storage::Result<CoordinatorTerm> {
        lock(&self.term)
            .ok_or_else(|| StorageError::Fenced("this broker does not coordinate groups".into()))
    }

    /// Commits offsets of a group, in one transaction.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> floe_storage::Result<()> {
        self.meta
            .commit_offsets(self.term()?, group_id, offsets)
            .await
    }

    /// Saves a transactional id's state (the transaction coordinator runs
    /// in the group coordinator's term).
    pub async fn save_transaction(&self, t: &TransactionRecord) -> floe_storage::Result<()> {
        self.meta.save_transaction(self.term()?, t).await
    }

    /// Deletes some committed offsets of a group.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> floe_storage::Result<()> {
        self.meta
            .delete_offsets(self.term()?, group_id, partitions)
            .await
    }

    /// Queues the new state of a group.
    pub fn save(&self, group: SavedGroup) {
        lock(&self.pending).insert(group.group_id().to_string(), group);
        self.wake.notify_one();
    }

    /// Deletes a group (either protocol) with its offsets, dropping any save
    /// not yet written. The caller has removed it from memory first.
    pub async fn delete(&self, group_id: &str) -> floe_storage::Result<()> {
        let _writing = self.writing.lock().await;
        lock(&self.pending).remove(group_id);
        self.meta.delete_group(self.term()?, group_id).await
    }

    /// Drops every save not written yet (this broker stopped coordinating:
    /// its view of the groups is no longer the one to keep).
    pub fn discard_pending(&self) {
        lock(&self.pending).clear();
    }

    /// Writes everything queued (at shutdown).
    pub async fn flush(&self) {
        let _writing = self.writing.lock().await;
        self.write_pending().await;
    }

    async fn write_pending(&self) {
        let batch = std::mem::take(&mut *lock(&self.pending));
        let Some(term) = *lock(&self.term) else {
            return;
        };
        for group in batch.into_values() {
            let result = match &group {
                SavedGroup::Classic(g) => self.meta.save_group(term, g, now_ms()).await,
                SavedGroup::ConsumerProtocol(g) => {
                    self.meta
                        .save_consumer_protocol_group(term, g, now_ms())
                        .await
                }
            };
            if let Err(e) = result {
                warn!(group = group.group_id(), error = %e, "could not save group state");
            }
        }
    }
}

async fn run(saver: Arc<GroupSaver>) {
    loop {
        // `notify_one` leaves a permit when nobody waits, so a save queued
        // while a batch is being written wakes the next round at once.
        saver.wake.notified().await;
        let _writing = saver.writing.lock().await;
        saver.write_pending().await;
    }
}

/// A saver holding the coordinator seat of a store in which it is the
/// only broker, for the coordinators' tests.
#[cfg(test)]
pub(crate) async fn seated(meta: Arc<dyn MetadataStore>) -> Arc<GroupSaver> {
    let me = floe_storage::meta::BrokerRecord {
        broker_id: 1,
        incarnation: "test".into(),
        host: "localhost".into(),
        port: 9092,
        rack: None,
        listeners: Vec::new(),
        lease_expires_ms: i64::MAX,
    };
    meta.register_broker(&me, None, now_ms()).await.unwrap();
    meta.balance_leadership(now_ms(), 1).await.unwrap();
    let epoch = meta
        .topic_leaders()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.topic == floe_storage::meta::placement::GROUP_COORDINATOR)
        .map(|l| l.epochs[0])
        .unwrap();
    let saver = GroupSaver::start(meta);
    saver.hold(Some(CoordinatorTerm {
        broker_id: 1,
        epoch,
    }));
    saver
}
