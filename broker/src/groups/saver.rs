//! Writes group state to the metadata store in the background, in order.
//!
//! Coordinators change groups under a lock that must not wait on the
//! database, so they hand the new state of a group here. Only the newest
//! state of each group matters: a save that has not been written yet is
//! replaced by the next one, and one task writes them, so an older state
//! can never overwrite a newer one. Deletes wait for any write in progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use floe_storage::log::now_ms;
use floe_storage::meta::{ConsumerProtocolGroupRecord, GroupRecord, MetadataStore};
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
    pending: Mutex<BTreeMap<String, SavedGroup>>,
    wake: Notify,
    writing: tokio::sync::Mutex<()>,
}

impl GroupSaver {
    /// Starts the writer task.
    pub fn start(meta: Arc<dyn MetadataStore>) -> Arc<Self> {
        let saver = Arc::new(GroupSaver {
            meta,
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
        self.meta.delete_group(group_id).await
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
        for group in batch.into_values() {
            let result = match &group {
                SavedGroup::Classic(g) => self.meta.save_group(g, now_ms()).await,
                SavedGroup::ConsumerProtocol(g) => {
                    self.meta.save_consumer_protocol_group(g, now_ms()).await
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
