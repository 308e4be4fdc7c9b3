//! Moving the log start (DeleteRecords, `retention.ms`, `retention.bytes`)
//! and deleting what no segment, table or read holds any more.

use super::*;

impl Log {
    /// DeleteRecords: moves the log start to `offset` (-1 for the high
    /// watermark). Returns the new low watermark.
    pub async fn delete_records(
        &self,
        topic: &TopicLog,
        partition: i32,
        offset: i64,
    ) -> Result<i64> {
        let part = topic.require_partition(partition)?;
        let snap = part.snapshot();
        let target = if offset == -1 {
            snap.high_watermark
        } else {
            offset
        };
        if target < 0 || target > snap.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: snap.log_start_offset,
                end: snap.high_watermark,
            });
        }
        if target <= snap.log_start_offset {
            return Ok(snap.log_start_offset);
        }
        self.advance_log_starts(topic, &[(part, target)]).await?;
        Ok(target)
    }

    /// Moves the log starts of some partitions of a topic, in one commit.
    async fn advance_log_starts(
        &self,
        topic: &TopicLog,
        targets: &[(Arc<PartitionLog>, i64)],
    ) -> Result<()> {
        let starts: Vec<(i32, i64)> = targets.iter().map(|(p, t)| (p.index, *t)).collect();
        let files = self.meta.advance_log_starts(&topic.name, &starts).await?;
        for (part, target) in targets {
            {
                let mut st = lock(&part.state);
                st.log_start_offset = st.log_start_offset.max(*target);
                let start = st.log_start_offset;
                st.txns.forget_below(start);
            }
            write_lock(&part.segments).retain(|_, s| s.last_offset >= *target);
        }
        self.delete_files(&files).await;
        Ok(())
    }

    /// Marks a read of `path` in flight until the guard drops.
    pub(super) fn reading(&self, path: &str) -> Reading<'_> {
        *lock(&self.reading).entry(path.to_string()).or_insert(0) += 1;
        Reading {
            log: self,
            path: path.to_string(),
        }
    }

    pub(super) fn in_use(&self, path: &str) -> bool {
        lock(&self.reading).contains_key(path)
    }

    /// Deletes files nothing refers to any more, except those a read on
    /// this broker still has in hand: no commit refers to them now, so the
    /// orphan sweeper deletes them once they are free and past the grace
    /// period (which also covers reads on other brokers).
    pub(super) async fn delete_files(&self, files: &[String]) {
        let mut objects = std::collections::BTreeSet::new();
        for f in files {
            if intake::is_chunk(f) {
                objects.insert(intake::split_chunk(f).0.to_string());
                continue;
            }
            if self.in_use(f) {
                info!(file = %f, "file still being read; left for the sweeper");
                continue;
            }
            lock(&self.footers).remove(f);
            if let Err(e) = self.store.delete(&Path::from(f.as_str())).await {
                warn!(file = %f, error = %e, "could not delete file; the sweeper will retry");
            }
        }
        self.release_intake(objects).await;
    }

    /// Deletes the Iceberg delete files of released data files, where
    /// they have one (a missing one is no error).
    pub(super) async fn delete_deletes_of(&self, released: &[String]) {
        for f in released.iter().filter(|f| !intake::is_chunk(f)) {
            let key = crate::table::deletes::deletes_key(f);
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    warn!(file = %key, error = %e, "could not delete a delete file; the sweeper will retry")
                }
            }
        }
    }

    /// Applies retention.ms and retention.bytes to every partition.
    pub async fn enforce_retention(&self) -> Result<()> {
        let now = now_ms();
        for topic in self.topics() {
            let cfg = topic.config();
            if !cfg.deletes() || (cfg.retention_ms().is_none() && cfg.retention_bytes().is_none()) {
                continue;
            }
            let mut targets = Vec::new();
            for part in topic.partitions() {
                let segs: Vec<SegmentRecord> =
                    read_lock(&part.segments).values().cloned().collect();
                let mut total: i64 = segs.iter().map(|s| s.size_bytes).sum();
                let mut new_start = None;
                for s in &segs {
                    let expired = cfg
                        .retention_ms()
                        .is_some_and(|ms| s.max_timestamp < now - ms);
                    let oversize = cfg
                        .retention_bytes()
                        .is_some_and(|b| total - s.size_bytes >= b);
                    if !(expired || oversize) {
                        break;
                    }
                    total -= s.size_bytes;
                    new_start = Some(s.last_offset + 1);
                }
                if let Some(target) = new_start {
                    info!(topic = %topic.name, partition = part.index, target, "retention deletes segments");
                    targets.push((part, target));
                }
            }
            if !targets.is_empty() {
                self.advance_log_starts(&topic, &targets).await?;
            }
        }
        Ok(())
    }

    /// Deletes files under the data prefix that no commit references and
    /// that are older than the grace period. Returns how many went.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let committed = self.meta.committed_files().await?;
        let cutoff = SystemTime::now() - self.cfg.orphan_grace;
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.object_path("topics")))
            .try_collect()
            .await?;
        let mut swept = 0;
        for obj in listed {
            let path = obj.location.to_string();
            // Iceberg metadata is the tables' own to clean up.
            if path.contains("/metadata/") {
                continue;
            }
            let old = SystemTime::from(obj.last_modified) <= cutoff;
            // A table's delete file lives as long as its data file.
            let known = match crate::table::deletes::data_key_of(&path) {
                Some(data) => committed.contains(&data),
                None => committed.contains(&path),
            };
            if !known && old && !self.in_use(&path) {
                info!(file = %path, "sweeping uncommitted file");
                self.store.delete(&obj.location).await?;
                swept += 1;
            }
        }
        Ok(swept + self.sweep_intake(&committed).await?)
    }
}
