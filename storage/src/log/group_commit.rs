//! Group commit of flushes: the flushes waiting for the metadata store go
//! in together, in one transaction.
//!
//! The flushes of one intake round (one per topic) all finish their upload
//! at the same moment and reach here together. Committing each alone costs
//! one transaction, and on SQLite one fsync, per topic per linger: at a few
//! hundred topics that, not the object store, bounds throughput. Here one
//! committer takes everything queued while the previous transaction ran and
//! commits it in one, so the number of transactions follows the linger like
//! the number of intake objects does.
//!
//! All or nothing per transaction: if the batch is refused (a fenced
//! partition, a log that moved), each flush is committed alone, so one
//! refusal fails that flush and no other. If the store failed without
//! saying whether it committed, each flush is told so, and learns the
//! outcome itself (`Log::settle`). Flushes of one topic arrive in
//! their order and are committed in it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::Result;
use crate::meta::{FlushCommit, MetadataStore};

/// At most this many flushes share a transaction.
const MAX_BATCH: usize = 1024;

struct Job {
    commit: Arc<FlushCommit>,
    done: oneshot::Sender<Result<()>>,
}

/// The handle flushes commit through; the committer task ends with it.
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the committer task.
    pub(super) fn start(meta: Arc<dyn MetadataStore>) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(meta, rx));
        GroupCommit { jobs }
    }

    /// Commits one flush, together with whatever else is waiting.
    pub(super) async fn commit(&self, commit: Arc<FlushCommit>) -> Result<()> {
        let (done, result) = oneshot::channel();
        if self.jobs.send(Job { commit, done }).is_err() {
            return Err(stopped());
        }
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The failure of a batch whose outcome is unknown, for each of its flushes
/// (the error itself is not `Clone`).
fn lost(e: &crate::error::StorageError) -> crate::error::StorageError {
    let io = std::io::Error::other(format!("a group commit failed: {e}"));
    crate::error::BackendError::Metadata(sqlx::Error::Io(io)).into()
}

fn stopped() -> crate::error::StorageError {
    crate::error::StorageError::FlushFailed("the flush committer stopped".into())
}

async fn run(meta: Arc<dyn MetadataStore>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = std::time::Instant::now();
        let together = {
            let commits: Vec<&FlushCommit> = batch.iter().map(|j| j.commit.as_ref()).collect();
            meta.commit_flushes(&commits).await
        };
        tracing::debug!(
            flushes = batch.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group commit"
        );
        match together {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                let job = batch.pop().expect("one job");
                let _ = job.done.send(Err(e));
            }
            // The batch may be committed (the reply was lost): committing
            // its flushes again would be refused as out of place, and taken
            // for never committed. Each flush asks the store instead.
            Err(e) if e.outcome_unknown() => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(lost(&e)));
                }
            }
            Err(_) => {
                for job in batch.drain(..) {
                    let alone = meta.commit_flush(&job.commit).await;
                    let _ = job.done.send(alone);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::error::StorageError;
    use crate::meta::sql::SqlStore;
    use crate::meta::{SegmentRecord, TopicRecord};

    /// A flush of `records` records at `base` of partition 0 of `topic`.
    fn flush(topic: &str, path: &str, base: i64, records: i64) -> Arc<FlushCommit> {
        Arc::new(FlushCommit {
            topic: topic.into(),
            path: path.into(),
            size_bytes: 10,
            leader_id: 0,
            high_watermarks: vec![(0, 1, base + records)],
            segments: vec![SegmentRecord {
                topic: topic.into(),
                partition: 0,
                base_offset: base,
                last_offset: base + records - 1,
                record_count: records,
                path: path.into(),
                file_size: 10,
                row_group: 0,
                first_row: 0,
                min_timestamp: 1,
                max_timestamp: 1,
                size_bytes: 10,
                append_time_ms: 1,
            }],
            producers: vec![],
            open_transactions: vec![],
            markers: vec![],
            now_ms: 1,
        })
    }

    #[tokio::test]
    async fn a_refused_flush_fails_alone_and_the_rest_commit_in_order() {
        let store = SqlStore::sqlite_in_memory().await.unwrap();
        for name in ["a", "b", "c"] {
            let t = TopicRecord {
                name: name.into(),
                topic_id: format!("id-{name}"),
                configs: BTreeMap::new(),
                created_ms: 1,
            };
            store.create_topic(&t, 1, 0).await.unwrap();
        }
        store.claim_leadership(0).await.unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(store);
        let group = Arc::new(GroupCommit::start(meta.clone()));
        // Submitted together: two flushes of `a` in order, one of `b` that
        // leaves a hole (refused), one of `c`.
        let jobs = [
            flush("a", "a1", 0, 5),
            flush("a", "a2", 5, 3),
            flush("b", "b1", 7, 2),
            flush("c", "c1", 0, 4),
        ];
        let results = futures::future::join_all(jobs.iter().map(|c| {
            let group = group.clone();
            let c = c.clone();
            async move { group.commit(c).await }
        }))
        .await;
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert!(matches!(
            results[2],
            Err(StorageError::LogInconsistent { offset: 7, .. })
        ));
        let hw = |t: &'static str| {
            let meta = meta.clone();
            async move { meta.list_partitions(t).await.unwrap()[0].high_watermark }
        };
        assert_eq!((hw("a").await, hw("b").await, hw("c").await), (8, 0, 4));
        let files = meta.committed_files().await.unwrap();
        assert!(files.contains("a1") && files.contains("a2") && files.contains("c1"));
        assert!(!files.contains("b1"));
    }
}
