//! What happens to intake chunks after their flush: a topic's chunks move
//! into a file of the topic's own (the file its Iceberg table lists), and
//! an intake object is deleted once no chunk of it is left.
//!
//! A move is a rewrite like compaction's, with the same rule: the chunks of
//! a run are one unbroken block of every partition's index, so the new
//! file's segments take exactly their place, swapped in one
//! `replace_files` transaction that the metadata store refuses if
//! retention or DeleteRecords took any of them meanwhile. A kill -9 before
//! the swap leaves the chunks as they were and the new file uncommitted
//! (swept); after it, the chunks are gone from the index and their object
//! is deleted here or by the sweeper.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use tracing::{info, warn};

use super::compaction::{is_compacted, plan_runs, segment_index, Rewrite};
use super::{lock, read_lock, Log, TopicLog};
use crate::error::Result;
use crate::intake::{self, split_chunk};
use crate::meta::FileRecord;

/// A topic's chunks move at once when they hold this much, without waiting
/// for the table commit interval.
pub(super) const MOVE_BYTES: u64 = 32 * 1024 * 1024;

/// A file of the topic's own whose partitions hold less than this each on
/// average moves with the chunks around it (see [`Log::move_intake`]).
const SMALL_RUN_BYTES: i64 = 64 * 1024;

impl Log {
    /// Bytes of the topic's log that sit in intake chunks.
    pub(super) fn intake_bytes(&self, topic: &TopicLog) -> u64 {
        crate::background::cpu_bound(|| {
            // A chunk holds runs of many partitions: counted once, by its
            // path's hash (no copy of every path).
            let mut chunks: HashMap<u64, u64> = HashMap::new();
            for p in topic.partitions() {
                for s in read_lock(&p.segments).values() {
                    if intake::is_chunk(&s.path) {
                        let mut h = std::hash::DefaultHasher::new();
                        std::hash::Hash::hash(s.path.as_str(), &mut h);
                        chunks.insert(std::hash::Hasher::finish(&h), s.file_size.max(0) as u64);
                    }
                }
            }
            chunks.values().sum()
        })
    }

    /// Moves every intake chunk of the topic into files of its own, one
    /// per run (see the module documentation). Returns how many chunks
    /// moved.
    pub async fn move_intake(&self, topic: &TopicLog) -> Result<usize> {
        if self.intake_bytes(topic) == 0 {
            return Ok(0);
        }
        let files = self.meta.files_in_order(&topic.name).await?;
        let index = segment_index(topic);
        let target = self.cfg.compaction_target_bytes;
        // Files a flush wrote straight to the topic's own directory move
        // along with the chunks around them when their partitions' runs
        // are small: between two chunks they hold rows of the same
        // partitions, and a move that left them out would be cut into a
        // run per chunk (at a thousand partitions, a move per flush, each
        // a file of a thousand tiny row groups). The table has not listed
        // them yet, so to it the moved file is still only new rows. A file
        // whose runs are worth their row groups stays as it is.
        let segments_of = crate::background::cpu_bound(|| {
            let mut segments_of: HashMap<&str, i64> = HashMap::new();
            for s in index.values().flatten() {
                *segments_of.entry(s.path.as_str()).or_default() += 1;
            }
            segments_of
        });
        let small_runs = |f: &FileRecord| {
            let runs = segments_of
                .get(f.path.as_str())
                .copied()
                .unwrap_or(1)
                .max(1);
            (f.size_bytes.max(0) / runs) < SMALL_RUN_BYTES
        };
        let candidates = self
            .candidates(files, |f| {
                intake::is_chunk(&f.path)
                    || (!f.in_table && !is_compacted(&f.path) && small_runs(f))
            })
            .await?;
        let mut moved = 0;
        let runs = crate::background::cpu_bound(|| plan_runs(candidates, &index, target, 1, None));
        for run in runs {
            if !run.iter().any(|f| intake::is_chunk(&f.path)) {
                // Nothing to move out of the intake: the table takes
                // these files as they are.
                continue;
            }
            if self
                .rewrite_run(topic, &run, Rewrite::Move)
                .await?
                .is_some()
            {
                moved += run.iter().filter(|f| intake::is_chunk(&f.path)).count();
                // The files of the topic's own that moved along were never
                // in the table: they go now, like the intake objects no
                // chunk is left of (those a read has in hand, later, by
                // the sweeper).
                let paths: Vec<String> = run.iter().map(|f| f.path.clone()).collect();
                self.delete_files(&paths).await;
            }
        }
        Ok(moved)
    }

    /// Deletes the intake objects this broker wrote that no chunk is left
    /// of: no flush of it is still committing one (the claim), the
    /// metadata store holds none, and no read here has one in hand.
    /// Anything else (another broker's objects too) is left to the
    /// sweeper.
    pub(super) async fn release_intake(&self, objects: BTreeSet<String>) {
        let free: Vec<&str> = objects
            .iter()
            .map(String::as_str)
            .filter(|object| {
                self.wrote_intake(object)
                    && self.intake.settled(object)
                    && !self.chunk_in_use(object)
            })
            .collect();
        if free.is_empty() {
            return;
        }
        let holding = match self.meta.objects_with_chunks(&free).await {
            Ok(holding) => holding,
            Err(e) => {
                warn!(error = %e, "could not check intake objects; the sweeper will");
                return;
            }
        };
        for object in free.into_iter().filter(|o| !holding.contains(*o)) {
            lock(&self.footers).retain(|path| split_chunk(path).0 != object);
            self.intake_cache.forget(object);
            match self.store.delete(&Path::from(object)).await {
                // Another topic's move, seeing the same last chunk gone,
                // deleted it first.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    warn!(%object, error = %e, "could not delete an intake object; the sweeper will retry")
                }
            }
        }
    }

    /// Whether a read on this broker has a chunk of `object` in hand.
    fn chunk_in_use(&self, object: &str) -> bool {
        lock(&self.reading)
            .keys()
            .any(|path| split_chunk(path).0 == object)
    }

    /// Deletes intake objects older than the grace period (or written by
    /// an earlier run, see `Log::inherited_intake`) that no commit
    /// references and no flush of this broker still holds. Returns how
    /// many went.
    pub(super) async fn sweep_intake(&self, committed: &HashSet<String>) -> Result<usize> {
        let live: HashSet<&str> = committed
            .iter()
            .filter(|p| intake::is_chunk(p))
            .map(|p| split_chunk(p).0)
            .collect();
        let cutoff = SystemTime::now() - self.cfg.orphan_grace;
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.object_path(intake::INTAKE_DIR)))
            .try_collect()
            .await?;
        let mut swept = 0;
        for obj in listed {
            let object = obj.location.to_string();
            let old = SystemTime::from(obj.last_modified) <= cutoff
                || lock(&self.inherited_intake).contains(&object);
            if old
                && !live.contains(object.as_str())
                && self.intake.settled(&object)
                && !self.chunk_in_use(&object)
            {
                info!(%object, "sweeping an intake object no chunk is left of");
                self.intake_cache.forget(&object);
                self.store.delete(&obj.location).await?;
                lock(&self.inherited_intake).remove(&object);
                swept += 1;
            }
        }
        Ok(swept)
    }
}
