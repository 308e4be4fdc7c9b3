//! The log's side of the Iceberg tables: where a topic's table and data
//! files live, a table commit (`sync_table`: the intake move, then one
//! snapshot taking in what the log flushed or dropped since the last),
//! and the task committing each topic's table at its commit interval.

use super::*;

/// How far the topic's Iceberg table is behind its log, in time.
#[derive(Default)]
pub(super) struct TableLag {
    /// When the oldest flush the table does not hold yet was committed (0:
    /// none).
    unsynced_since_ms: AtomicI64,
    /// When the newest flush was committed.
    last_flush_ms: AtomicI64,
}

impl TableLag {
    /// See [`TopicLog::table_lag_ms`].
    pub(super) fn lag_ms(&self, now: i64) -> i64 {
        match self.unsynced_since_ms.load(Ordering::SeqCst) {
            0 => 0,
            since => (now - since).max(0),
        }
    }

    pub(super) fn flushed(&self, now: i64) {
        self.last_flush_ms.store(now, Ordering::SeqCst);
        let _ = self
            .unsynced_since_ms
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// After a table commit that took in every flush committed before
    /// `started`.
    pub(super) fn synced(&self, started: i64) {
        let since = if self.last_flush_ms.load(Ordering::SeqCst) < started {
            0
        } else {
            started
        };
        self.unsynced_since_ms.store(since, Ordering::SeqCst);
    }
}

impl Log {
    /// The Iceberg side (the broker keeps a handle of its own for the
    /// catalog it serves).
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// The object key under which a topic's table lives (data files under
    /// `data/`, Iceberg metadata under `metadata/`): `topics/<name>-<id>`,
    /// the name cut so that the directory's name fits in 255 bytes (a
    /// local store's limit; a Kafka name may have 249 characters).
    pub fn table_key(&self, topic: &TopicLog) -> String {
        self.table_key_of(&topic.name, topic.id)
    }

    /// [`Log::table_key`] by the topic's name and id.
    fn table_key_of(&self, name: &str, id: uuid::Uuid) -> String {
        const DIRECTORY_NAME_MAX: usize = 255;
        let id = id.simple().to_string();
        let keep = DIRECTORY_NAME_MAX - id.len() - 1;
        // Topic names are ASCII: any cut is at a character boundary.
        let name = &name[..name.len().min(keep)];
        self.object_path(&format!("topics/{name}-{id}")).to_string()
    }

    /// A new data file of the topic's table, in its day's directory (the
    /// table's partition): `<table>/data/day=<day>/<stem>-<uuid>.parquet`.
    pub(super) fn data_path(&self, topic: &TopicLog, day: &str, stem: &str) -> Path {
        Path::from(format!(
            "{}/data/day={day}/{stem}-{}.parquet",
            self.table_key(topic),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The topic's data files that hold rows the log serves now, oldest
    /// first, as URIs, and how many intake chunks hold rows not yet moved
    /// into them: the list a reader of the `data/` folder should read
    /// (files a rewrite replaced stay in the folder while older snapshots
    /// name them).
    pub async fn live_files(&self, topic: &TopicLog) -> Result<(Vec<LiveFile>, usize)> {
        let files = self.meta.files_in_order(&topic.name).await?;
        let chunks = files.iter().filter(|f| intake::is_chunk(&f.path)).count();
        let live = files
            .into_iter()
            .filter(|f| !intake::is_chunk(&f.path))
            .map(|f| LiveFile {
                uri: self.tables.io().uri(&f.path),
                size_bytes: f.size_bytes,
                in_table: f.in_table,
            })
            .collect();
        Ok((live, chunks))
    }

    pub(super) fn io_metadata_prefix(&self, name: &str, id: uuid::Uuid) -> String {
        self.tables
            .io()
            .uri(&format!("{}/metadata/", self.table_key_of(name, id)))
    }

    /// Commits what the topic's table lags behind the log by (files
    /// flushed since the last snapshot, files retention dropped), expires
    /// old snapshots and deletes files no snapshot refers to any more.
    pub async fn sync_table(&self, topic: &TopicLog) -> Result<()> {
        // A millisecond back: a flush committed in the same millisecond as
        // the pending files are read counts as not taken in.
        let started = now_ms() - 1;
        let _syncing = topic.table_sync.lock().await;
        if topic.closed() {
            return Ok(());
        }
        // The rows in intake chunks move into the topic's own files first,
        // which the table then takes in.
        self.move_intake(topic).await?;
        let pending = self.meta.table_pending(&topic.name).await?;
        // Files holding rows of open transactions wait; markers and
        // aborted records are hidden by delete files.
        let settled = self.table_ready(topic, pending.added).await?;
        let mut added = Vec::with_capacity(settled.ready.len());
        for ready in settled.ready {
            let footer = self.footer(&ready.path, ready.size).await?;
            added.push(NewFile {
                rewritten: compaction::is_compacted(&ready.path),
                key: ready.path,
                size: ready.size,
                footer: footer.metadata().clone(),
                hidden_rows: ready.hidden_rows,
            });
        }
        let released = self
            .tables
            .sync(&topic.name, &self.table_key(topic), added, pending.removed)
            .await?;
        if settled.held == 0 {
            topic.table_lag.synced(started);
        }
        self.delete_files(&released).await;
        self.delete_deletes_of(&released).await;
        Ok(())
    }
}

/// A data file holding rows the log serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Where it is (`file://` or `s3://`).
    pub uri: String,
    /// Its size.
    pub size_bytes: i64,
    /// Whether the table's latest snapshot lists it yet.
    pub in_table: bool,
}

/// The day directory (`day=N`, the table partition) a data file is in.
pub(super) fn day_of(path: &str) -> Option<&str> {
    path.split("/day=").nth(1).and_then(|r| r.split('/').next())
}

/// How many tables the committer commits at once.
const TABLE_SYNCS_AT_ONCE: usize = 8;

/// Commits each topic's table every `floe.iceberg.commit.interval.ms`.
pub(super) async fn run_table_committer(log: std::sync::Weak<Log>) {
    // When each topic's next commit is due.
    let mut due_at: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(log) = log.upgrade() else { return };
        let now = Instant::now();
        let mut due = Vec::new();
        for topic in log.topics() {
            let interval = read_lock(&topic.config).table_commit_interval();
            match due_at.get_mut(&topic.name) {
                // First seen (the broker started, or the topic is new): its
                // table is created or loaded now, and its commits fall at
                // its own phase of the interval, so a thousand topics
                // loaded together do not all commit in the same instant
                // every interval (a stall of every producer's acks).
                None => {
                    due_at.insert(topic.name.clone(), now + phase(&topic.name, interval));
                    due.push(topic);
                }
                Some(at) if *at <= now => {
                    *at = (*at + interval).max(now);
                    due.push(topic);
                }
                Some(_) => {}
            }
        }
        // Several at once: one round visits every topic (a broker with a
        // thousand topics creates or loads a thousand tables at start), and
        // a commit is mostly waiting on the store.
        futures::stream::iter(due)
            .for_each_concurrent(TABLE_SYNCS_AT_ONCE, |topic| {
                let log = &log;
                async move {
                    if let Err(e) = log.sync_table(&topic).await {
                        warn!(topic = %topic.name, error = %e, "iceberg commit failed; retrying next round");
                    }
                }
            })
            .await;
        due_at.retain(|name, _| log.topic(name).is_some());
    }
}

/// Where in its commit interval a topic commits: a fraction of `interval`
/// fixed by its name, in (0, interval].
fn phase(topic: &str, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    let fraction = (h.finish() % 1000 + 1) as f64 / 1000.0;
    interval.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_commit_at_phases_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        let phases: Vec<Duration> = (0..1000)
            .map(|t| phase(&format!("t{t}"), interval))
            .collect();
        assert!(phases.iter().all(|p| *p > Duration::ZERO && *p <= interval));
        // Every tenth of the interval holds some of them.
        for tenth in 0..10 {
            let (lo, hi) = (interval / 10 * tenth, interval / 10 * (tenth + 1));
            let n = phases.iter().filter(|p| **p > lo && **p <= hi).count();
            assert!((50..=150).contains(&n), "{n} topics in tenth {tenth}");
        }
        assert_eq!(phase("orders", interval), phase("orders", interval));
    }
}
