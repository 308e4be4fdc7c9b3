//! The flush pipeline: a topic's buffered records become one Parquet
//! file (an intake chunk, or a file of its own when large), committed in
//! one metadata-store transaction, and only then are the produce requests
//! waiting on the flush answered.
//!
//! Per topic, a flusher task decides when to flush (the buffer's size or
//! the broker's next linger tick) and starts each flush's encode and
//! upload; a committer task commits them in the order they were taken.
//! A failed commit rolls the topic back to its committed state, failing
//! every flush prepared on top of it.

use super::*;

type FlushResult = Option<std::result::Result<(), String>>;

/// Completion of one flush, awaited by the produce requests in it.
#[derive(Debug)]
pub(super) struct FlushSlot {
    tx: watch::Sender<FlushResult>,
}

impl FlushSlot {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(FlushSlot {
            tx: watch::channel(None).0,
        })
    }

    pub(super) fn complete(&self, r: std::result::Result<(), String>) {
        self.tx.send_replace(Some(r));
    }
}

/// A produce waiting for its flush.
#[derive(Debug)]
pub struct PendingAppend {
    rx: Option<watch::Receiver<FlushResult>>,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Broker timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

impl PendingAppend {
    /// A produce answered when `slot` completes (at once when None: the
    /// flush of a duplicate's original already completed).
    pub(super) fn new(slot: Option<&FlushSlot>, base_offset: i64, log_append_time: i64) -> Self {
        PendingAppend {
            rx: slot.map(|s| s.tx.subscribe()),
            base_offset,
            log_append_time,
        }
    }

    /// Waits until the records are committed (or the flush failed).
    pub async fn committed(mut self) -> Result<()> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(());
        };
        let r = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| StorageError::FlushFailed("the flusher stopped".into()))?;
        match r.as_ref() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(StorageError::FlushFailed(e.clone())),
            None => Err(StorageError::FlushFailed("no result".into())),
        }
    }
}

/// Records of a topic waiting for the next flush.
pub(super) struct FlushBuffer {
    pub(super) slot: Arc<FlushSlot>,
    pub(super) rows: TopicRows,
    pub(super) tail: Vec<(i32, i64, i64, Bytes)>,
    pub(super) producers: HashMap<(i32, i64), ProducerStateRecord>,
    /// Open transactions changed since the last flush, by partition and
    /// producer.
    pub(super) open_txns: HashMap<(i32, i64), OpenTransactionRecord>,
    /// Transaction markers appended since the last flush.
    pub(super) markers: Vec<TransactionMarkerRecord>,
    pub(super) first_append: Option<Instant>,
    /// Its bytes (the batches as produced), counted against the broker's
    /// buffer budget until the flush that takes them commits or fails.
    pub(super) held: Held,
}

impl FlushBuffer {
    pub(super) fn new(budget: &Arc<Gauge>) -> Self {
        FlushBuffer {
            slot: FlushSlot::new(),
            rows: TopicRows::new(),
            tail: Vec::new(),
            producers: HashMap::new(),
            open_txns: HashMap::new(),
            markers: Vec::new(),
            first_append: None,
            held: budget.hold(),
        }
    }

    /// Bytes buffered.
    pub(super) fn bytes(&self) -> usize {
        self.held.bytes()
    }
}

impl Log {
    /// First half of a flush: encode the buffer as Parquet and upload it,
    /// into the intake round `ticket` holds a place in, or else as a file
    /// of its own. Nothing is visible until [`Log::commit`].
    async fn prepare(
        &self,
        topic: &TopicLog,
        buf: FlushBuffer,
        ticket: Option<Ticket>,
    ) -> Result<PreparedFlush> {
        let started = Instant::now();
        let append_time = now_ms();
        let format = self.cfg.format;
        let FlushBuffer {
            rows,
            tail,
            producers,
            open_txns,
            markers,
            held,
            ..
        } = buf;
        let layout = self
            .layouts
            .write_layout(&topic.name, topic.coerce(), &|part| {
                rows.first_payloads(part)
            })
            .await?;
        let file = tokio::task::spawn_blocking(move || {
            segment::write_file(rows, append_time, format, &layout)
        })
        .await
        .map_err(|e| StorageError::FlushFailed(format!("encoder task: {e}")))??;
        let encoded = Instant::now();
        let size = file.bytes.len() as i64;
        let (path, claim) = match ticket {
            Some(ticket) => {
                let chunk = ticket.submit(file.bytes.clone()).await?;
                (chunk.path, Some(chunk.claim))
            }
            None => {
                let day = (append_time / 86_400_000).to_string();
                let path = self.data_path(topic, &day, &format!("{append_time:013}"));
                self.store
                    .put(&path, PutPayload::from_bytes(file.bytes.clone()))
                    .await?;
                (path.to_string(), None)
            }
        };

        debug!(
            topic = %topic.name,
            encode_ms = (encoded - started).as_secs_f64() * 1e3,
            upload_ms = encoded.elapsed().as_secs_f64() * 1e3,
            "prepared"
        );
        let mut high_watermarks = Vec::new();
        let mut segments = Vec::new();
        for rg in &file.segments {
            let Some(p) = topic.partition(rg.partition) else {
                self.discard(&path).await;
                return Err(StorageError::UnknownPartition(
                    topic.name.clone(),
                    rg.partition,
                ));
            };
            let epoch = lock(&p.state).leader_epoch;
            high_watermarks.push((rg.partition, epoch, rg.last_offset + 1));
            segments.push(rg.segment(&topic.name, &path, size, append_time));
        }
        let commit = FlushCommit {
            topic: topic.name.clone(),
            path: path.clone(),
            size_bytes: size,
            leader_id: self.cfg.broker_id,
            high_watermarks,
            segments,
            producers: producers.into_values().collect(),
            open_transactions: open_txns.into_values().collect(),
            markers,
            now_ms: append_time,
        };
        Ok(PreparedFlush {
            commit,
            path,
            claim,
            metadata: file.metadata,
            tail,
            started,
            _held: held,
        })
    }

    /// Deletes the file of a flush that will never be committed. A chunk
    /// shares its object with other flushes: the object goes when no chunk
    /// of it is left (`release_intake`, or the orphan sweeper).
    async fn discard(&self, path: &str) {
        if !intake::is_chunk(path) {
            let _ = self.store.delete(&Path::from(path)).await;
        }
    }

    /// Second half of a flush: one metadata-store transaction, then the
    /// records become visible and their producers are answered.
    async fn commit(&self, topic: &TopicLog, prepared: PreparedFlush) -> Result<()> {
        let PreparedFlush {
            commit,
            path,
            claim,
            metadata,
            tail,
            started,
            _held,
        } = prepared;
        let committing = Instant::now();
        let commit = Arc::new(commit);
        let committed = match self.group_commit.commit(commit.clone()).await {
            Ok(()) => Settled::Committed,
            Err(e) if e.outcome_unknown() => self.settle(&path, e).await,
            Err(e) => Settled::Refused(e),
        };
        // Settled either way: the intake object may go once nothing else
        // holds it (a chunk committed or not is judged by the store).
        drop(claim);
        match committed {
            Settled::Committed => {}
            Settled::Refused(e) => {
                // Never committed: the file is an orphan. Delete it now;
                // the sweeper is the backstop if this fails too.
                self.discard(&path).await;
                return Err(e);
            }
            // Perhaps committed: the file stays for the sweeper, which
            // deletes only what no commit references.
            Settled::Unknown(e) => return Err(e),
        }
        lock(&self.footers).insert(
            path.clone(),
            ArrowReaderMetadata::try_new(metadata, reader_options())?,
        );
        for s in &commit.segments {
            if let Some(p) = topic.partition(s.partition) {
                let mut st = lock(&p.state);
                st.high_watermark = st.high_watermark.max(s.last_offset + 1);
                write_lock(&p.segments).insert(s.base_offset, s.clone());
            }
        }
        for pr in &commit.producers {
            if let Some(p) = topic.partition(pr.partition) {
                lock(&p.state)
                    .committed_producers
                    .insert(pr.producer_id, ProducerEntry::from_record(pr));
            }
        }
        for o in &commit.open_transactions {
            if let Some(p) = topic.partition(o.partition) {
                lock(&p.state).txns.committed(o);
            }
        }
        for (partition, base, last, bytes) in tail {
            if let Some(p) = topic.partition(partition) {
                lock(&p.tail).push(base, last, bytes);
            }
        }
        self.commits.send_modify(|n| *n += 1);
        topic.table_lag.flushed(now_ms());
        let records: i64 = commit.segments.iter().map(|s| s.record_count).sum();
        self.flush_metrics.bytes.observe(commit.size_bytes as f64);
        self.flush_metrics.records.observe(records as f64);
        self.flush_metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        debug!(
            topic = %topic.name,
            %path,
            size = commit.size_bytes,
            prepare_ms = (committing - started).as_secs_f64() * 1e3,
            commit_ms = committing.elapsed().as_secs_f64() * 1e3,
            "flushed"
        );
        Ok(())
    }

    /// Learns whether a flush whose commit failed without saying how (the
    /// reply was lost: the connection dropped during COMMIT) is committed,
    /// asking the store until it answers, for a while. Acknowledged is
    /// what the store holds: a committed flush must not be taken for an
    /// orphan (its file deleted under a committed index) nor rolled back
    /// (its producers told to retry what is already in the log).
    async fn settle(&self, path: &str, failure: StorageError) -> Settled {
        let mut wait = Duration::from_millis(50);
        for _ in 0..10 {
            match self.meta.file_committed(path).await {
                Ok(true) => {
                    warn!(%path, error = %failure, "a flush commit's reply was lost; the store holds it: committed");
                    return Settled::Committed;
                }
                Ok(false) => return Settled::Refused(failure),
                Err(e) => debug!(%path, error = %e, "asking whether a flush committed"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        error!(%path, error = %failure, "a flush commit's outcome is unknown (the metadata store does not answer); its file is kept for the sweeper");
        Settled::Unknown(failure)
    }

    /// Puts every partition back to its committed state after a failed
    /// flush, failing whatever was buffered since.
    fn roll_back(&self, topic: &TopicLog, reason: &str) {
        let mut buf = lock(&topic.buffer);
        // Flushes prepared on top of the failed one carry the old generation
        // and are failed by the committer.
        topic.generation.fetch_add(1, Ordering::SeqCst);
        let stale = std::mem::replace(&mut *buf, FlushBuffer::new(&self.buffers));
        stale.slot.complete(Err(reason.to_string()));
        for p in topic.partitions() {
            let mut st = lock(&p.state);
            st.next_offset = st.high_watermark;
            st.producers = st.committed_producers.clone();
            let hw = st.high_watermark;
            st.txns.roll_back(hw);
        }
    }
}

/// What became of a flush's commit.
enum Settled {
    /// In the store.
    Committed,
    /// Not in the store: the transaction was refused or rolled back.
    Refused(StorageError),
    /// The store could not say.
    Unknown(StorageError),
}

/// A flush between its upload and its commit.
struct PreparedFlush {
    commit: FlushCommit,
    /// The file's path: a chunk's or a file of its own.
    path: String,
    /// Keeps the intake object while the commit is pending.
    claim: Option<Claim>,
    metadata: Arc<parquet::file::metadata::ParquetMetaData>,
    tail: Vec<(i32, i64, i64, Bytes)>,
    started: Instant,
    /// The buffer's bytes stay counted until the commit.
    _held: Held,
}

/// A flush handed from the flusher to the committer.
struct InFlightFlush {
    generation: u64,
    slot: Arc<FlushSlot>,
    prepared: tokio::task::JoinHandle<Result<PreparedFlush>>,
}

/// Decides when to flush and starts each flush's encode and upload. Up to
/// two flushes are prepared while the committer commits, in order.
pub(super) async fn run_flusher(log: Arc<Log>, topic: Arc<TopicLog>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<InFlightFlush>(1);
    tokio::spawn(run_committer(log.clone(), topic.clone(), rx));
    loop {
        if topic.closed() {
            let buf = std::mem::replace(&mut *lock(&topic.buffer), FlushBuffer::new(&log.buffers));
            buf.slot
                .complete(Err(match topic.deleted.load(Ordering::SeqCst) {
                    true => format!("topic {} was deleted", topic.name),
                    false => format!("another broker leads topic {} now", topic.name),
                }));
            topic.flushed.notify_waiters();
            return;
        }
        let (first, bytes) = {
            let b = lock(&topic.buffer);
            (b.first_append, b.bytes())
        };
        let Some(first) = first else {
            topic.wake.notified().await;
            continue;
        };
        let deadline = log.next_tick(first);
        if bytes < log.cfg.flush_bytes && Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = topic.wake.notified() => {}
            }
            continue;
        }
        let (buf, generation) = {
            let mut b = lock(&topic.buffer);
            (
                std::mem::replace(&mut *b, FlushBuffer::new(&log.buffers)),
                topic.generation.load(Ordering::SeqCst),
            )
        };
        let slot = buf.slot.clone();
        // The place in the round is taken now, before the encode, so the
        // round this tick gathers waits for it.
        let ticket = (buf.bytes() < log.cfg.intake_direct_bytes).then(|| log.intake.join());
        let (l, t) = (log.clone(), topic.clone());
        let prepared = tokio::spawn(async move { l.prepare(&t, buf, ticket).await });
        if tx
            .send(InFlightFlush {
                generation,
                slot,
                prepared,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Commits prepared flushes in the order they were taken.
async fn run_committer(
    log: Arc<Log>,
    topic: Arc<TopicLog>,
    mut rx: tokio::sync::mpsc::Receiver<InFlightFlush>,
) {
    while let Some(f) = rx.recv().await {
        let prepared = f
            .prepared
            .await
            .unwrap_or_else(|e| Err(StorageError::FlushFailed(format!("encoder task: {e}"))));
        let current = topic.generation.load(Ordering::SeqCst);
        let result = match prepared {
            Ok(p) if f.generation != current => {
                log.discard(&p.path).await;
                Err(StorageError::FlushFailed(
                    "an earlier flush of this topic failed".into(),
                ))
            }
            Ok(p) => log.commit(&topic, p).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => f.slot.complete(Ok(())),
            Err(e) => {
                f.slot.complete(Err(e.to_string()));
                if f.generation == current {
                    warn!(topic = %topic.name, error = %e, "flush failed; rolling back to the committed state");
                    log.roll_back(&topic, &e.to_string());
                    if matches!(e, StorageError::Fenced(_)) {
                        topic.released.store(true, Ordering::SeqCst);
                        topic.wake.notify_one();
                    }
                }
            }
        }
        topic.flushed.notify_waiters();
    }
}
