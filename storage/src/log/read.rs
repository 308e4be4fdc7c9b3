//! The read path: `Log::read` (read-ahead, tail cache, then the segments
//! through `RangeReader` with cached footers) and ListOffsets.

use super::shared_groups::{Decoded, Plan};
use super::*;

/// How long one read keeps adding segments once it has some records.
const READ_BUDGET: Duration = Duration::from_millis(300);

/// Segments one read asks the store for at once.
const SEGMENTS_AT_ONCE: usize = 4;

/// Segments one read plans at most before it looks at what it got.
const WINDOW: usize = 16;

/// The segments a read from `next` needs next, in order: the one holding
/// `next`, then those that follow it without a gap, below the high
/// watermark the read answers with, while their stored size stays within
/// `max_bytes` (at most [`WINDOW`]). Empty when no segment holds `next`.
fn plan_window(
    segs: &BTreeMap<i64, SegmentRecord>,
    next: i64,
    high_watermark: i64,
    max_bytes: usize,
) -> Vec<SegmentRecord> {
    let Some((_, first)) = segs
        .range(..=next)
        .next_back()
        .filter(|(_, s)| s.last_offset >= next)
    else {
        return Vec::new();
    };
    let mut window = vec![first.clone()];
    let mut size = first.size_bytes.max(0) as usize;
    for (_, s) in segs.range(first.last_offset + 1..) {
        let contiguous = window
            .last()
            .is_some_and(|l| s.base_offset == l.last_offset + 1);
        size += s.size_bytes.max(0) as usize;
        let full = size > max_bytes || window.len() == WINDOW;
        if !contiguous || full || s.base_offset >= high_watermark {
            break;
        }
        window.push(s.clone());
    }
    window
}

impl Log {
    /// Reads from `offset`, at most about `max_bytes` (at least one batch).
    ///
    /// Order of sources: the read-ahead prepared by the previous read of
    /// this partition, the tail cache, then the segments. After a segment
    /// read the next range is read ahead in the background, so a consumer
    /// catching up finds its next fetch ready.
    ///
    /// Transaction markers come as control batches; records of aborted
    /// and open transactions come too (Kafka's `read_uncommitted`).
    pub async fn read(
        self: &Arc<Self>,
        topic: &TopicLog,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        self.read_isolated(topic, partition, offset, max_bytes, false)
            .await
    }

    /// [`Log::read`] for `read_committed`: up to the last stable offset,
    /// without the records of aborted transactions.
    pub async fn read_committed(
        self: &Arc<Self>,
        topic: &TopicLog,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        self.read_isolated(topic, partition, offset, max_bytes, true)
            .await
    }

    async fn read_isolated(
        self: &Arc<Self>,
        topic: &TopicLog,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        committed_only: bool,
    ) -> Result<ReadResult> {
        let part = topic.require_partition(partition)?;
        let snap = part.snapshot();
        if committed_only && offset >= snap.last_stable_offset && offset <= snap.high_watermark {
            return Ok(ReadResult {
                high_watermark: snap.high_watermark,
                log_start_offset: snap.log_start_offset,
                last_stable_offset: snap.last_stable_offset,
                ..Default::default()
            });
        }
        let mut out = self.read_log(topic, &part, offset, max_bytes).await?;
        out.last_stable_offset = snap.last_stable_offset;
        let Some(first) = out
            .batches
            .first()
            .and_then(|b| records::BatchHeader::parse(b).ok())
        else {
            return Ok(out);
        };
        let view = lock(&part.state)
            .txns
            .view(first.base_offset, out.high_watermark);
        let past_stable = committed_only && snap.last_stable_offset < out.high_watermark;
        if view.is_empty() && !past_stable {
            return Ok(out);
        }
        let end = match committed_only {
            true => snap.last_stable_offset,
            false => i64::MAX,
        };
        out.batches = view.shape(std::mem::take(&mut out.batches), end, committed_only)?;
        out.size = out.batches.iter().map(Bytes::len).sum();
        Ok(out)
    }

    async fn read_log(
        self: &Arc<Self>,
        topic: &TopicLog,
        part: &Arc<PartitionLog>,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let part = part.clone();
        let snap = part.snapshot();
        let mut out = ReadResult {
            high_watermark: snap.high_watermark,
            log_start_offset: snap.log_start_offset,
            last_stable_offset: snap.last_stable_offset,
            ..Default::default()
        };
        if offset < snap.log_start_offset || offset > snap.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: snap.log_start_offset,
                end: snap.high_watermark,
            });
        }
        if offset == snap.high_watermark {
            return Ok(out);
        }
        let ahead = lock(&part.read_ahead).take();
        let mut fetched = None;
        if let Some(ra) = ahead {
            if ra.offset == offset
                && ra.max_bytes == max_bytes
                && ra.leader_epoch == snap.leader_epoch
            {
                fetched = ra.handle.await.ok().and_then(|r| r.ok());
            } else {
                ra.handle.abort();
            }
        }
        if fetched.is_none() {
            if let Some((batches, _)) = lock(&part.tail).read(offset, max_bytes) {
                out.size = batches.iter().map(Bytes::len).sum();
                out.batches = batches;
                return Ok(out);
            }
        }
        let fetched = match fetched {
            Some(f) => f,
            None => {
                self.read_segments(
                    &topic.name,
                    &part,
                    offset,
                    max_bytes,
                    snap.high_watermark,
                    snap.leader_epoch,
                )
                .await?
            }
        };
        if fetched.next_offset < snap.high_watermark && !fetched.bytes.is_empty() {
            let (log, p, next) = (self.clone(), part.clone(), fetched.next_offset);
            let (hw, epoch) = (snap.high_watermark, snap.leader_epoch);
            let name = topic.name.clone();
            // Only within the read-ahead budget: with every partition of a
            // broker caught up at once, the rest read when asked.
            if let Some(held) = self.read_ahead.try_hold(max_bytes) {
                let handle = tokio::spawn(async move {
                    log.read_segments(&name, &p, next, max_bytes, hw, epoch)
                        .await
                });
                let previous = lock(&part.read_ahead).replace(ReadAhead {
                    started: Instant::now(),
                    offset: next,
                    max_bytes,
                    leader_epoch: epoch,
                    handle,
                    _held: held,
                });
                if let Some(old) = previous {
                    old.handle.abort();
                }
            }
        }
        out.size = fetched.size;
        out.batches = fetched.bytes;
        Ok(out)
    }

    /// Reads from the segments, starting exactly at `offset`: every offset
    /// in [log start, high watermark) is held by one segment, so a range no
    /// segment holds, or a segment without the offset it claims, is an
    /// error (logged, and retriable for the client), never a gap.
    async fn read_segments(
        &self,
        topic: &str,
        part: &PartitionLog,
        offset: i64,
        max_bytes: usize,
        high_watermark: i64,
        leader_epoch: i32,
    ) -> Result<segment::RebuiltBatches> {
        let mut out = segment::RebuiltBatches {
            bytes: Vec::new(),
            first_offset: None,
            next_offset: offset,
            size: 0,
        };
        let mut next = offset;
        let started = Instant::now();
        // Each segment is a read from the store: a partition in many small
        // segments (chunks of frequent flushes not yet moved into the
        // topic's files) is read SEGMENTS_AT_ONCE segments at a time, and
        // answers with what it has after READ_BUDGET rather than after the
        // client gave up on the fetch; the read-ahead goes on.
        'window: while next < high_watermark
            && (out.bytes.is_empty() || (out.size < max_bytes && started.elapsed() < READ_BUDGET))
        {
            let window = {
                let segs = read_lock(&part.segments);
                plan_window(
                    &segs,
                    next,
                    high_watermark,
                    max_bytes.saturating_sub(out.size),
                )
            };
            let missing = |next: i64, detail: String| {
                let start = lock(&part.state).log_start_offset;
                if next < start {
                    // Retention or DeleteRecords moved the log start
                    // while this read ran.
                    return StorageError::OffsetOutOfRange {
                        offset: next,
                        start,
                        end: high_watermark,
                    };
                }
                let e = StorageError::LogInconsistent {
                    topic: topic.to_string(),
                    partition: part.index,
                    offset: next,
                    detail,
                };
                error!(error = %e, "a read found a hole in the log");
                e
            };
            if window.is_empty() {
                return Err(missing(next, "no segment holds it".into()));
            }
            // The first segment is read from `next` with what is left of
            // max_bytes; the others whole, each within max_bytes too, and
            // taken below only while they fit.
            let (first_one, remaining) = (out.bytes.is_empty(), max_bytes.saturating_sub(out.size));
            let start = next;
            let mut launch = window.iter().enumerate().map(move |(i, seg)| match i {
                0 => self.read_segment(seg, start, remaining, first_one, leader_epoch),
                _ => self.read_segment(seg, seg.base_offset, remaining, false, leader_epoch),
            });
            let mut reads = futures::stream::FuturesOrdered::new();
            reads.extend(launch.by_ref().take(SEGMENTS_AT_ONCE));
            for seg in &window {
                let Some(read) = reads.next().await else {
                    break;
                };
                reads.extend(launch.next());
                let rebuilt = match read {
                    Err(StorageError::Corrupt(detail)) => {
                        return Err(missing(next, format!("{}: {detail}", seg.path)))
                    }
                    r => r?,
                };
                let fits = out.size + rebuilt.size <= max_bytes;
                if !out.bytes.is_empty() && (rebuilt.first_offset.is_none() || !fits) {
                    // The next record does not fit in what is left.
                    break 'window;
                }
                // A segment key compaction thinned out may start its
                // rows past `next`, within its span.
                let starts_right = match rebuilt.first_offset {
                    Some(first) if seg.has_gaps() => (next..=seg.last_offset).contains(&first),
                    first => first == Some(next),
                };
                if !starts_right {
                    return Err(missing(
                        next,
                        format!(
                            "segment [{}, {}] of {} starts its rows at {:?}",
                            seg.base_offset, seg.last_offset, seg.path, rebuilt.first_offset
                        ),
                    ));
                }
                out.first_offset
                    .get_or_insert(rebuilt.first_offset.unwrap_or(next));
                out.size += rebuilt.size;
                out.bytes.extend(rebuilt.bytes);
                next = rebuilt.next_offset;
                out.next_offset = next;
                if next <= seg.last_offset {
                    // Stopped inside the segment: max_bytes is reached.
                    break 'window;
                }
            }
        }
        Ok(out)
    }

    pub(super) fn object_path(&self, relative: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// A reader of the file `path` (`len` bytes): from memory when it is
    /// a chunk of an intake object this broker keeps, else from the store.
    pub(super) fn reader(&self, path: &str, len: u64) -> RangeReader {
        let reader = RangeReader::new(self.store.clone(), path, len);
        if !intake::is_chunk(path) {
            return reader;
        }
        match self.intake_cache.get(intake::split_chunk(path).0) {
            Some(object) => reader.in_memory(object),
            None => reader,
        }
    }

    pub(super) async fn footer(&self, path: &str, file_size: u64) -> Result<ArrowReaderMetadata> {
        if let Some(m) = lock(&self.footers).get(path) {
            return Ok(m);
        }
        let mut reader = self.reader(path, file_size);
        let meta = ArrowReaderMetadata::load_async(&mut reader, reader_options()).await?;
        lock(&self.footers).insert(path.to_string(), meta.clone());
        Ok(meta)
    }

    /// A segment's rows from offset `from` (its whole run when `from` is
    /// its base), at most `row_limit` rows, only `columns` if given.
    pub(super) async fn row_group_batches(
        &self,
        seg: &SegmentRecord,
        from: i64,
        row_limit: Option<usize>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>> {
        let count = seg.record_count.max(0) as usize;
        let skip = if from <= seg.base_offset {
            0
        } else if !seg.has_gaps() {
            ((from - seg.base_offset) as usize).min(count)
        } else {
            // Key compaction left gaps: the rows below `from`, counted
            // from the run's offsets alone.
            let offsets = self
                .read_row_group(
                    &seg.path,
                    seg.file_size,
                    seg.row_group,
                    Some((seg.first_row.max(0) as usize, count)),
                    None,
                    Some(&[crate::columns::col::OFFSET]),
                )
                .await?;
            segment::rows_below(&offsets, from)?.min(count)
        };
        // The segment's run of its row group (which small partitions of a
        // flush share), from `from` when offsets map to rows one to one.
        let run = (seg.first_row.max(0) as usize + skip, count - skip);
        self.read_row_group(
            &seg.path,
            seg.file_size,
            seg.row_group,
            Some(run),
            row_limit,
            columns,
        )
        .await
    }

    /// Rows of row group `row_group` of the file at `path`: the run
    /// (first row, count) if given, else all of them.
    pub(super) async fn read_row_group(
        &self,
        path: &str,
        file_size: i64,
        row_group: i32,
        run: Option<(usize, usize)>,
        row_limit: Option<usize>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>> {
        let _reading = self.reading(path);
        let size = file_size.max(0) as u64;
        let meta = self.footer(path, size).await?;
        let group = usize::try_from(row_group)
            .ok()
            .filter(|&i| i < meta.metadata().num_row_groups())
            .map(|i| meta.metadata().row_group(i))
            .ok_or_else(|| StorageError::Corrupt(format!("{path} has no row group {row_group}")))?;
        let group_rows = group.num_rows().max(0) as usize;
        // A run of a row group other partitions share: from the whole
        // group, decoded once for all of them, when it is read again.
        if let (None, Some((first, count))) = (columns, run) {
            if count < group_rows {
                if let Plan::FromGroup(cell) = self.shared_groups.plan(path, row_group) {
                    let decoded = {
                        let decoded_bytes = group.total_byte_size().max(0) as usize;
                        cell.get_or_try_init(|| async {
                            let Some(held) = self.shared_groups.reserve(decoded_bytes) else {
                                return Ok(None);
                            };
                            let batches = self
                                .read_row_group_with(&meta, path, size, row_group, None, None, None)
                                .await?;
                            let batch = match batches.first() {
                                Some(b) => {
                                    arrow_select::concat::concat_batches(&b.schema(), &batches)?
                                }
                                None => return Ok(None),
                            };
                            Ok::<_, StorageError>(Some(Decoded::new(batch, held)))
                        })
                        .await?
                        .clone()
                    };
                    match decoded {
                        Some(d) if first + count <= d.batch.num_rows() => {
                            let n = row_limit.map_or(count, |l| l.min(count));
                            return Ok(vec![d.batch.slice(first, n)]);
                        }
                        Some(_) => {
                            return Err(StorageError::Corrupt(format!(
                                "{path} row group {row_group} has fewer rows than its footer says"
                            )))
                        }
                        None => self.shared_groups.forget(path, row_group),
                    }
                }
            }
        }
        self.read_row_group_with(&meta, path, size, row_group, run, row_limit, columns)
            .await
    }

    /// [`Log::read_row_group`] with the footer in hand.
    #[allow(clippy::too_many_arguments)]
    async fn read_row_group_with(
        &self,
        meta: &ArrowReaderMetadata,
        path: &str,
        size: u64,
        row_group: i32,
        run: Option<(usize, usize)>,
        row_limit: Option<usize>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>> {
        let group_rows = meta
            .metadata()
            .row_group(row_group as usize)
            .num_rows()
            .max(0) as usize;
        let reader = self.reader(path, size);
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta.clone())
            .with_row_groups(vec![row_group as usize])
            .with_batch_size(4096);
        if let Some(cols) = columns {
            let schema = meta.parquet_schema();
            let idx: Vec<usize> = (0..schema.num_columns())
                .filter(|&i| {
                    cols.iter()
                        .any(|c| schema.column(i).path().parts()[0] == *c)
                })
                .collect();
            builder = builder.with_projection(ProjectionMask::leaves(schema, idx));
        }
        if let Some((first, count)) = run {
            builder = builder.with_row_selection(segment::row_run(group_rows, first, count));
        }
        if let Some(limit) = row_limit {
            builder = builder.with_limit(limit);
        }
        Ok(builder.build()?.try_collect().await?)
    }

    /// Reads one segment from `from`, within `max_bytes` (beyond it only
    /// for a first record when `at_least_one`).
    async fn read_segment(
        &self,
        seg: &SegmentRecord,
        from: i64,
        max_bytes: usize,
        at_least_one: bool,
        leader_epoch: i32,
    ) -> Result<segment::RebuiltBatches> {
        let _reading = self.reading(&seg.path);
        // Compressed size per row underestimates the rebuilt size, so this
        // limit reads at least what max_bytes needs.
        let per_row = (seg.size_bytes / seg.record_count.max(1)).max(1) as usize;
        let limit = (max_bytes / per_row).saturating_add(64);
        let batches = self.row_group_batches(seg, from, Some(limit), None).await?;
        let footer = self.footer(&seg.path, seg.file_size.max(0) as u64).await?;
        let layout = self.layouts.read_layout(footer.schema()).await?;
        let mut out = segment::RebuiltBatches {
            bytes: Vec::new(),
            first_offset: None,
            next_offset: from,
            size: 0,
        };
        for b in &batches {
            let budget = max_bytes.saturating_sub(out.size);
            let first_one = at_least_one && out.first_offset.is_none();
            let r = segment::rebuild_batches(
                b,
                &layout,
                out.next_offset,
                budget,
                first_one,
                seg.has_gaps(),
                leader_epoch,
            )?;
            // Rows of this batch from the next offset on that were not
            // taken: the next record did not fit.
            let left_behind = segment::last_offset(b)?.is_some_and(|last| last >= r.next_offset);
            let Some(first) = r.first_offset else {
                if left_behind {
                    break;
                }
                continue;
            };
            // Each batch of rows continues exactly where the previous ended
            // (or after it, in a segment with gaps).
            let in_order = if seg.has_gaps() {
                first >= out.next_offset
            } else {
                first == out.next_offset
            };
            if out.first_offset.is_some() && !in_order {
                return Err(StorageError::Corrupt(format!(
                    "rows jump from offset {} to {first}",
                    out.next_offset - 1
                )));
            }
            out.first_offset = out.first_offset.or(r.first_offset);
            out.size += r.size;
            out.bytes.extend(r.bytes);
            out.next_offset = r.next_offset;
            if left_behind {
                break;
            }
        }
        Ok(out)
    }

    /// ListOffsets: -1 latest, -2 earliest, -3 max timestamp, otherwise the
    /// first offset whose timestamp is at least `timestamp`. Returns
    /// (offset, timestamp), (-1, -1) when no record qualifies.
    pub async fn list_offset(
        &self,
        topic: &TopicLog,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64)> {
        let part = topic.require_partition(partition)?;
        let snap = part.snapshot();
        match timestamp {
            -1 | -5 => return Ok((snap.high_watermark, -1)),
            -2 | -4 => return Ok((snap.log_start_offset, -1)),
            _ => {}
        }
        let segs: Vec<SegmentRecord> = read_lock(&part.segments)
            .values()
            .filter(|s| {
                s.last_offset >= snap.log_start_offset && s.base_offset < snap.high_watermark
            })
            .cloned()
            .collect();
        if timestamp == -3 {
            let Some(best) = segs
                .iter()
                .max_by_key(|s| (s.max_timestamp, -s.base_offset))
            else {
                return Ok((-1, -1));
            };
            let target = best.max_timestamp;
            return self
                .first_in_segments(std::slice::from_ref(best), snap.log_start_offset, |t| {
                    t == target
                })
                .await;
        }
        let candidates: Vec<SegmentRecord> = segs
            .into_iter()
            .filter(|s| s.max_timestamp >= timestamp)
            .collect();
        self.first_in_segments(&candidates, snap.log_start_offset, |t| t >= timestamp)
            .await
    }

    /// The first (offset, timestamp) at or after `log_start` whose timestamp
    /// satisfies `wanted`, scanning `segs` in order; (-1, -1) if none does.
    async fn first_in_segments(
        &self,
        segs: &[SegmentRecord],
        log_start: i64,
        wanted: impl Fn(i64) -> bool,
    ) -> Result<(i64, i64)> {
        let cols = [segment::col::OFFSET, segment::col::TIMESTAMP];
        for s in segs {
            for b in self
                .row_group_batches(s, log_start.max(s.base_offset), None, Some(&cols))
                .await?
            {
                if let Some(&(o, t)) = segment::offsets_and_timestamps(&b)?
                    .iter()
                    .find(|(o, t)| wanted(*t) && *o >= log_start)
                {
                    return Ok((o, t));
                }
            }
        }
        Ok((-1, -1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, last: i64, size: i64) -> (i64, SegmentRecord) {
        let s = SegmentRecord {
            topic: "t".into(),
            partition: 0,
            base_offset: base,
            last_offset: last,
            record_count: last - base + 1,
            path: format!("f{base}"),
            file_size: size,
            row_group: 0,
            first_row: 0,
            min_timestamp: 0,
            max_timestamp: 0,
            size_bytes: size,
            append_time_ms: 0,
        };
        (base, s)
    }

    fn bases(w: &[SegmentRecord]) -> Vec<i64> {
        w.iter().map(|s| s.base_offset).collect()
    }

    #[test]
    fn a_window_follows_contiguous_segments_within_the_size_and_the_high_watermark() {
        let segs: BTreeMap<i64, SegmentRecord> = [
            seg(0, 9, 100),
            seg(10, 19, 100),
            seg(20, 29, 100),
            // A gap: 30..39 is nowhere.
            seg(40, 49, 100),
        ]
        .into();
        assert_eq!(bases(&plan_window(&segs, 5, 100, 1_000)), [0, 10, 20]);
        assert_eq!(bases(&plan_window(&segs, 5, 100, 250)), [0, 10]);
        assert_eq!(
            bases(&plan_window(&segs, 5, 100, 10)),
            [0],
            "at least the first"
        );
        assert_eq!(bases(&plan_window(&segs, 12, 20, 1_000)), [10]);
        assert!(plan_window(&segs, 35, 100, 1_000).is_empty());
        let many: BTreeMap<i64, SegmentRecord> = (0..40).map(|i| seg(i, i, 1)).collect();
        assert_eq!(plan_window(&many, 0, 40, 1_000).len(), WINDOW);
    }
}
