//! Compaction: runs of small files of a topic rewritten into one file.
//!
//! The one rule a rewrite must keep is that every committed record stays
//! exactly once and in offset order. A run is therefore chosen by where
//! its files' segments sit in each partition's index, never by when the
//! files were written: in every partition, the run's segments must be one
//! unbroken block of the index, so the output's segments take exactly the
//! place of the ones they replace. (Choosing by creation time merged files
//! around a hole once a compaction output, younger than the files after
//! it, was left out of a run: issue 13.) The metadata store checks the same
//! thing again when it swaps the files (`replace_files`), and the encoder
//! refuses rows that are not in increasing offset order.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use tracing::{debug, info};

use super::latest_per_key::{latest_per_key, TombstoneRule};
use super::{day_of, lock, now_ms, read_lock, reader_options, write_lock, Log, TopicLog};
use crate::error::{Result, StorageError};
use crate::meta::{FileRecord, FileReplacement, Keeps, SegmentRecord};
use crate::segment;

/// The end of a compaction output's file stem.
pub(super) const COMPACTED: &str = "-compacted";

/// The end of a key compaction's output's file stem (after [`COMPACTED`]).
const KEYS: &str = "-keys";

/// Whether a data file is a compaction's output.
pub(super) fn is_compacted(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(COMPACTED))
}

/// Whether a data file is a key compaction's output: its rows are clean
/// (no key twice) as of the compaction that wrote it.
pub(super) fn is_key_compacted(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(&format!("{COMPACTED}{KEYS}")))
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Files replaced.
    pub files_in: usize,
    /// Files written.
    pub files_out: usize,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Time spent rewriting (reads, encode, upload, commit).
    pub elapsed: Duration,
}

impl CompactionStats {
    fn add(&mut self, o: &CompactionStats) {
        self.files_in += o.files_in;
        self.files_out += o.files_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.elapsed += o.elapsed;
    }
}

/// Where a file's segments sit in each partition's index: partition →
/// (first, last) position in that partition's segments by base offset.
type Placement = BTreeMap<i32, (usize, usize)>;

/// The placement of every file whose segments form one block per
/// partition. A file whose segments are split by another file's in some
/// partition (which only a broken index can hold) gets none, so it is
/// never compacted.
fn placements(index: &BTreeMap<i32, Vec<SegmentRecord>>) -> HashMap<String, Placement> {
    let mut out: HashMap<String, Placement> = HashMap::new();
    let mut broken: HashSet<String> = HashSet::new();
    for (&partition, segs) in index {
        for (i, s) in segs.iter().enumerate() {
            let place = out.entry(s.path.clone()).or_default();
            match place.get_mut(&partition) {
                None => {
                    place.insert(partition, (i, i));
                }
                Some((_, last)) if *last + 1 == i => *last = i,
                Some(_) => {
                    broken.insert(s.path.clone());
                }
            }
        }
    }
    out.retain(|path, _| !broken.contains(path));
    out
}

/// Whether a run spanning `run` may take a file placed at `file`: in every
/// partition both hold, the file's block touches the run's at one end.
fn adjoins(run: &Placement, file: &Placement) -> bool {
    file.iter().all(|(p, &(lo, hi))| match run.get(p) {
        None => true,
        Some(&(run_lo, run_hi)) => lo == run_hi + 1 || hi + 1 == run_lo,
    })
}

fn extend(run: &mut Placement, file: &Placement) {
    for (&p, &(lo, hi)) in file {
        let e = run.entry(p).or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
}

/// The day (table partition) of a file: its directory's, or for an intake
/// chunk the day it was written.
pub(super) fn file_day(f: &FileRecord) -> String {
    day_of(&f.path)
        .map(str::to_string)
        .unwrap_or_else(|| (f.created_ms / 86_400_000).to_string())
}

/// What a rewrite is for: it names the output.
#[derive(Clone, Copy)]
pub(super) enum Rewrite {
    /// Small table files merged.
    Compact,
    /// Intake chunks moved into the topic's own file.
    Move,
    /// A file rewritten without its rows below the log start.
    Trim,
    /// A prefix of every partition's log rewritten with each key's latest
    /// record only (`cleanup.policy=compact`).
    Keys(TombstoneRule),
}

/// A file compaction may take, with what a run must agree on.
pub(super) struct Candidate {
    pub file: FileRecord,
    /// The file's columns.
    pub schema: SchemaRef,
}

/// Splits candidates (in the order they were written, which keeps runs
/// long) into runs of at least `min_files` files that are each one unbroken
/// block of every partition's index, of one day and one set of columns,
/// of at most about `target` bytes and, with `max_span_ms`, written within
/// that long of the run's first file (Kafka's `segment.ms`: a compacted
/// file that kept taking in new files would never be old enough for
/// retention.ms to delete).
pub(super) fn plan_runs(
    candidates: Vec<Option<Candidate>>,
    index: &BTreeMap<i32, Vec<SegmentRecord>>,
    target: u64,
    min_files: usize,
    max_span_ms: Option<i64>,
) -> Vec<Vec<FileRecord>> {
    let places = placements(index);
    let mut runs = Vec::new();
    let mut run: Vec<Candidate> = Vec::new();
    let mut span = Placement::new();
    let mut bytes = 0u64;
    let mut close = |run: &mut Vec<Candidate>, span: &mut Placement, bytes: &mut u64| {
        if run.len() >= min_files.max(1) {
            runs.push(run.drain(..).map(|c| c.file).collect());
        }
        run.clear();
        span.clear();
        *bytes = 0;
    };
    for c in candidates {
        // A file compaction may not take ends the run (it keeps the runs
        // in write order, which is what makes them long).
        let Some(c) = c else {
            close(&mut run, &mut span, &mut bytes);
            continue;
        };
        let Some(place) = places.get(&c.file.path).filter(|p| !p.is_empty()) else {
            close(&mut run, &mut span, &mut bytes);
            continue;
        };
        let fits = run.first().is_none_or(|first| {
            file_day(&first.file) == file_day(&c.file)
                && first.schema == c.schema
                && bytes < target
                && max_span_ms.is_none_or(|ms| c.file.created_ms - first.file.created_ms <= ms)
                && adjoins(&span, place)
        });
        if !fits {
            close(&mut run, &mut span, &mut bytes);
        }
        extend(&mut span, place);
        bytes += c.file.size_bytes.max(0) as u64;
        run.push(c);
    }
    close(&mut run, &mut span, &mut bytes);
    runs
}

impl Log {
    /// Compacts every topic as its `cleanup.policy` says: keys (see
    /// [`Log::compact_keys`]) where it holds `compact`, small files (see
    /// [`Log::compact`]) otherwise.
    pub async fn compact_all(&self) -> Result<CompactionStats> {
        let mut total = CompactionStats::default();
        for topic in self.topics() {
            total.add(&self.compact_topic(&topic, false).await?);
        }
        Ok(total)
    }

    /// Compacts one topic as its `cleanup.policy` says; `force` runs key
    /// compaction whatever the dirty ratio (an operator's request).
    pub async fn compact_topic(&self, topic: &TopicLog, force: bool) -> Result<CompactionStats> {
        if topic.config().compacted() {
            // Key compaction merges the files it rewrites too; merging
            // files apart from it would mix clean rows with dirty ones.
            self.compact_keys(topic, force).await
        } else {
            self.compact(topic).await
        }
    }

    /// Rewrites every file of the topic that holds rows below their
    /// partition's log start (DeleteRecords, or retention, cut through it)
    /// without them, so that the table, which drops only whole files,
    /// stops showing them at its next commit. Intake chunks are left to
    /// their move, which trims the same way. Returns the files rewritten.
    pub async fn trim(&self, topic: &TopicLog) -> Result<usize> {
        let below: HashSet<String> = self
            .meta
            .files_below_log_start(&topic.name)
            .await?
            .into_iter()
            .filter(|p| !p.contains('#'))
            .collect();
        if below.is_empty() {
            return Ok(0);
        }
        let mut trimmed = 0;
        for f in self.meta.files_in_order(&topic.name).await? {
            if below.contains(&f.path)
                && self
                    .rewrite_run(topic, std::slice::from_ref(&f), Rewrite::Trim)
                    .await?
                    .is_some()
            {
                trimmed += 1;
            }
        }
        Ok(trimmed)
    }

    /// The listed files in order, each with its Parquet schema if `take`
    /// chooses it for a rewrite, `None` (a run breaker) otherwise.
    pub(super) async fn candidates(
        &self,
        files: Vec<FileRecord>,
        take: impl Fn(&FileRecord) -> bool,
    ) -> Result<Vec<Option<Candidate>>> {
        let mut candidates = Vec::with_capacity(files.len());
        for f in files {
            candidates.push(if take(&f) {
                let footer = self.footer(&f.path, f.size_bytes.max(0) as u64).await?;
                Some(Candidate {
                    schema: segment::rows_schema(footer.schema()),
                    file: f,
                })
            } else {
                None
            });
        }
        Ok(candidates)
    }

    /// Rewrites runs of small files of a topic (smaller than half the
    /// target, all of one day, all already in the table, each run one
    /// unbroken block of every partition's offsets) into files of about
    /// the target size. The swap is one metadata-store transaction; the
    /// table follows in one snapshot at its next commit (the new file added
    /// and the old ones removed together). Old files stay readable, for
    /// Kafka fetches that found them a moment before and for older
    /// snapshots, until the snapshot retention has passed.
    pub async fn compact(&self, topic: &TopicLog) -> Result<CompactionStats> {
        let target = self.cfg.compaction_target_bytes;
        let files = self.meta.files_in_order(&topic.name).await?;
        // The index as it is now: segments committed after the listing
        // can only follow every listed file, and segments retention drops
        // meanwhile make the swap refuse.
        let index = segment_index(topic);
        let candidates = self
            .candidates(files, |f| {
                (f.size_bytes.max(0) as u64) < target / 2 && f.in_table
            })
            .await?;
        let mut stats = CompactionStats::default();
        let segment_ms = topic.config().segment_ms();
        let runs = crate::background::cpu_bound(|| {
            plan_runs(candidates, &index, target, 2, Some(segment_ms))
        });
        for run in runs {
            let started = Instant::now();
            if let Some(bytes_out) = self.rewrite_run(topic, &run, Rewrite::Compact).await? {
                stats.add(&CompactionStats {
                    files_in: run.len(),
                    files_out: 1,
                    bytes_in: run.iter().map(|f| f.size_bytes.max(0) as u64).sum(),
                    bytes_out,
                    elapsed: started.elapsed(),
                });
            }
        }
        Ok(stats)
    }

    /// Rewrites one run as one file; the new file's size, or None if the
    /// run changed meanwhile (or holds files of an older layout).
    pub(super) async fn rewrite_run(
        &self,
        topic: &TopicLog,
        run: &[FileRecord],
        kind: Rewrite,
    ) -> Result<Option<u64>> {
        let started = Instant::now();
        let mut schema: Option<SchemaRef> = None;
        for f in run {
            let footer = self.footer(&f.path, f.size_bytes.max(0) as u64).await?;
            let rows = segment::rows_schema(footer.schema());
            if !segment::is_current_layout(&rows) || schema.as_ref().is_some_and(|s| *s != rows) {
                return Ok(None);
            }
            schema = Some(rows);
        }
        let Some(schema) = schema else {
            return Ok(None);
        };
        let paths: HashSet<&str> = run.iter().map(|f| f.path.as_str()).collect();
        let by_partition = crate::background::cpu_bound(|| {
            let mut by_partition: BTreeMap<i32, Vec<SegmentRecord>> = BTreeMap::new();
            for p in topic.partitions() {
                for s in read_lock(&p.segments).values() {
                    if paths.contains(s.path.as_str()) {
                        by_partition.entry(p.index).or_default().push(s.clone());
                    }
                }
            }
            by_partition
        });
        let old_segments: usize = by_partition.values().map(Vec::len).sum();
        if old_segments == 0 {
            return Ok(None);
        }
        // Each file is fetched whole (rewrites read everything), then
        // decoded, cut into its segments' runs and encoded again on a
        // thread of lower priority: the CPU of a rewrite is what produce
        // and fetch leave.
        let mut files: HashMap<String, (Bytes, ArrowReaderMetadata)> = HashMap::new();
        for f in run {
            let _reading = self.reading(&f.path);
            let size = f.size_bytes.max(0) as u64;
            let footer = self.footer(&f.path, size).await?;
            let bytes = self.reader(&f.path, size).get_bytes(0..size).await?;
            files.insert(f.path.clone(), (bytes, footer));
        }
        let format = self.cfg.format;
        let segments = by_partition.clone();
        let starts: BTreeMap<i32, i64> = topic
            .partitions()
            .iter()
            .map(|p| (p.index, p.snapshot().log_start_offset))
            .collect();
        let keys = match kind {
            Rewrite::Keys(rule) => Some((rule, self.layouts.read_layout(&schema).await?)),
            _ => None,
        };
        // Key compaction leaves gaps; rewriting a file it wrote (a trim
        // after DeleteRecords, a merge once the topic is no longer
        // compacted) keeps them.
        let gaps = keys.is_some() || by_partition.values().flatten().any(|s| s.has_gaps());
        let cut_starts = starts.clone();
        let file = crate::background::run("rewrite", move || {
            let mut partitions = cut_runs(&files, &segments, &cut_starts, &schema)?;
            drop(files);
            if let Some((rule, layout)) = &keys {
                partitions = latest_per_key(partitions, layout, *rule)?;
            }
            segment::write_partitions(
                partitions,
                schema,
                format,
                segment::COMPACTED_ROW_GROUP_BYTES,
                gaps,
            )
        })
        .await?;
        let day = run.first().map(file_day).unwrap_or_else(|| "0".into());
        let now = now_ms();
        let clean = match kind {
            Rewrite::Keys(_) => true,
            Rewrite::Trim => run.iter().all(|f| is_key_compacted(&f.path)),
            Rewrite::Compact | Rewrite::Move => false,
        };
        let stem = match kind {
            // To the table a rewritten file brings no new columns (a
            // trim's or a key compaction's snapshot is an overwrite: rows
            // go); a key compaction's output, and a trim of one, stay
            // known as clean.
            _ if clean => format!("{now:013}{COMPACTED}{KEYS}"),
            Rewrite::Compact | Rewrite::Trim | Rewrite::Keys(_) => format!("{now:013}{COMPACTED}"),
            // Not "compacted": to the table a moved file is new data.
            Rewrite::Move => format!(
                "{now:013}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        let path = self.data_path(topic, &day, &stem);
        let size = file.bytes.len() as i64;
        self.store
            .put(&path, PutPayload::from_bytes(file.bytes.clone()))
            .await?;
        let mut segments: Vec<SegmentRecord> = file
            .segments
            .iter()
            .map(|rg| {
                let append = by_partition
                    .get(&rg.partition)
                    .and_then(|s| s.iter().map(|s| s.append_time_ms).max())
                    .unwrap_or(now);
                rg.segment(&topic.name, path.as_ref(), size, append)
            })
            .collect();
        if gaps {
            span_old_offsets(&mut segments, &by_partition, &starts);
        }
        let replacement = FileReplacement {
            topic: topic.name.clone(),
            leader_id: self.cfg.broker_id,
            old_paths: run.iter().map(|f| f.path.clone()).collect(),
            old_segments,
            path: path.to_string(),
            size_bytes: size,
            segments: segments.clone(),
            // The output takes its run's place in write order, so the
            // next plan sees it where its offsets are.
            created_ms: run.iter().map(|f| f.created_ms).min().unwrap_or(now),
            keeps: if matches!(kind, Rewrite::Keys(_)) {
                Keeps::LatestPerKey
            } else {
                Keeps::Every
            },
        };
        if !self.meta.replace_files(&replacement).await? {
            let _ = self.store.delete(&path).await;
            return Ok(None);
        }
        lock(&self.footers).insert(
            path.to_string(),
            ArrowReaderMetadata::try_new(file.metadata, reader_options())?,
        );
        for s in segments {
            if let Some(p) = topic.partition(s.partition) {
                {
                    let mut segs = write_lock(&p.segments);
                    segs.retain(|_, old| !paths.contains(old.path.as_str()));
                    segs.insert(s.base_offset, s.clone());
                }
                if matches!(kind, Rewrite::Keys(_)) {
                    // The tail cache still holds the records as produced.
                    lock(&p.tail).forget_through(s.last_offset);
                }
            }
        }
        let (files, bytes_in, ms) = (
            run.len(),
            run.iter().map(|f| f.size_bytes).sum::<i64>(),
            started.elapsed().as_millis() as u64,
        );
        match kind {
            Rewrite::Compact => {
                info!(topic = %topic.name, files, bytes_in, bytes_out = size, ms, "compacted")
            }
            Rewrite::Move => {
                debug!(topic = %topic.name, files, bytes_in, bytes_out = size, ms, "moved intake chunks (and the small files between them) into a table file")
            }
            Rewrite::Trim => {
                info!(topic = %topic.name, files, bytes_in, bytes_out = size, ms, "rewrote a file without its rows below the log start")
            }
            Rewrite::Keys(_) => {
                info!(topic = %topic.name, files, bytes_in, bytes_out = size, ms, "compacted keys: each key's latest record kept")
            }
        }
        Ok(Some(size.max(0) as u64))
    }
}

/// Makes a key compaction's segments of each partition cover exactly the
/// offsets the old ones did from the log start on (its rows start later
/// where the first records were replaced), each continuing where the
/// previous ended, so the index has no hole: a fetch of a replaced offset
/// gets the next record, as in Kafka.
fn span_old_offsets(
    segments: &mut [SegmentRecord],
    old: &BTreeMap<i32, Vec<SegmentRecord>>,
    starts: &BTreeMap<i32, i64>,
) {
    segments.sort_by_key(|s| (s.partition, s.base_offset));
    let mut next: Option<(i32, i64)> = None;
    for s in segments.iter_mut() {
        let from = match next {
            Some((p, n)) if p == s.partition => n,
            _ => {
                let old_first = old
                    .get(&s.partition)
                    .and_then(|o| o.iter().map(|o| o.base_offset).min())
                    .unwrap_or(s.base_offset);
                old_first.max(starts.get(&s.partition).copied().unwrap_or(0))
            }
        };
        s.base_offset = from.min(s.base_offset);
        next = Some((s.partition, s.last_offset + 1));
    }
}

/// Each partition's rows from the run's files (fetched whole, by path),
/// from its log start in `starts` on: every row group is decoded once,
/// however many partitions share it, and cut into its segments' runs, in
/// partition and offset order.
fn cut_runs(
    files: &HashMap<String, (Bytes, ArrowReaderMetadata)>,
    by_partition: &BTreeMap<i32, Vec<SegmentRecord>>,
    starts: &BTreeMap<i32, i64>,
    schema: &SchemaRef,
) -> Result<Vec<(i32, Vec<RecordBatch>)>> {
    let mut groups: HashMap<(&str, i32), Vec<RecordBatch>> = HashMap::new();
    for s in by_partition.values().flatten() {
        if let Entry::Vacant(slot) = groups.entry((s.path.as_str(), s.row_group)) {
            let (bytes, meta) = files.get(&s.path).ok_or_else(|| {
                StorageError::Corrupt(format!("{} is not among the run's files", s.path))
            })?;
            let group = usize::try_from(s.row_group)
                .ok()
                .filter(|&g| g < meta.metadata().num_row_groups())
                .ok_or_else(|| {
                    StorageError::Corrupt(format!("{} has no row group {}", s.path, s.row_group))
                })?;
            let rows: std::result::Result<Vec<RecordBatch>, _> =
                ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), meta.clone())
                    .with_row_groups(vec![group])
                    .with_batch_size(4096)
                    .build()?
                    .collect();
            slot.insert(rows?);
        }
    }
    let offset_column = schema.index_of(crate::columns::col::OFFSET)?;
    let mut partitions = Vec::with_capacity(by_partition.len());
    for (partition, segs) in by_partition {
        let start = starts.get(partition).copied().unwrap_or(0);
        let mut batches = Vec::new();
        for s in segs {
            let rows = &groups[&(s.path.as_str(), s.row_group)];
            let run = (s.first_row.max(0) as usize, s.record_count.max(0) as usize);
            for b in slice_rows(rows, run) {
                let b = from_offset(b, offset_column, start)?;
                if b.num_rows() > 0 {
                    batches.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
                }
            }
        }
        partitions.push((*partition, batches));
    }
    Ok(partitions)
}

/// The rows of `batch` (in offset order) at or above `start`: a rewrite
/// leaves out what lies below the log start, which Kafka no longer serves
/// and the table must stop showing.
fn from_offset(batch: RecordBatch, offset_column: usize, start: i64) -> Result<RecordBatch> {
    let offsets = batch
        .column(offset_column)
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .ok_or_else(|| StorageError::Corrupt("the offset column is not int64".into()))?;
    let below = offsets.values().partition_point(|&o| o < start);
    Ok(match below {
        0 => batch,
        n => batch.slice(n, batch.num_rows() - n),
    })
}

/// Rows `first..first + count` of a row group read as `batches`, as slices.
fn slice_rows(batches: &[RecordBatch], (first, count): (usize, usize)) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let (mut skip, mut left) = (first, count);
    for b in batches {
        if left == 0 {
            break;
        }
        if skip >= b.num_rows() {
            skip -= b.num_rows();
            continue;
        }
        let take = left.min(b.num_rows() - skip);
        out.push(b.slice(skip, take));
        skip = 0;
        left -= take;
    }
    out
}

/// Every partition's segments as they are now, in offset order.
pub(super) fn segment_index(topic: &TopicLog) -> BTreeMap<i32, Vec<SegmentRecord>> {
    crate::background::cpu_bound(|| {
        topic
            .partitions()
            .iter()
            .map(|p| (p.index, read_lock(&p.segments).values().cloned().collect()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Schema;
    use std::sync::Arc;

    fn seg(partition: i32, base: i64, last: i64, path: &str) -> SegmentRecord {
        SegmentRecord::for_test(partition, base, last, path)
    }

    fn candidate(path: &str) -> Option<Candidate> {
        written_at(path, 0)
    }

    fn written_at(path: &str, created_ms: i64) -> Option<Candidate> {
        Some(Candidate {
            file: FileRecord {
                path: format!("t/data/day=1/{path}"),
                size_bytes: 10,
                created_ms,
                in_table: true,
            },
            schema: Arc::new(Schema::empty()),
        })
    }

    #[test]
    fn a_run_spans_at_most_segment_ms_of_writes() {
        let index = index(&[
            ("a", &[(0, 0, 9)]),
            ("b", &[(0, 10, 19)]),
            ("c", &[(0, 20, 29)]),
            ("d", &[(0, 30, 39)]),
        ]);
        let files = || {
            vec![
                written_at("a", 0),
                written_at("b", 1000),
                written_at("c", 2500),
                written_at("d", 3000),
            ]
        };
        let runs = plan_runs(files(), &index, 1 << 20, 2, Some(2000));
        assert_eq!(names(runs), vec![vec!["a", "b"], vec!["c", "d"]]);
        let runs = plan_runs(files(), &index, 1 << 20, 2, None);
        assert_eq!(names(runs), vec![vec!["a", "b", "c", "d"]]);
    }

    /// A file's segments: (partition, base offset, last offset).
    type Segments<'a> = &'a [(i32, i64, i64)];

    fn index(files: &[(&str, Segments)]) -> BTreeMap<i32, Vec<SegmentRecord>> {
        let mut index: BTreeMap<i32, Vec<SegmentRecord>> = BTreeMap::new();
        for (path, segs) in files {
            for &(p, base, last) in *segs {
                index.entry(p).or_default().push(seg(
                    p,
                    base,
                    last,
                    &format!("t/data/day=1/{path}"),
                ));
            }
        }
        for segs in index.values_mut() {
            segs.sort_by_key(|s| s.base_offset);
        }
        index
    }

    fn names(runs: Vec<Vec<FileRecord>>) -> Vec<Vec<String>> {
        runs.into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|f| f.path.rsplit('/').next().unwrap().to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_run_never_spans_a_file_it_leaves_out() {
        // Written in the order x, e, f, y; offsets in the order x, y, e, f;
        // y is not in the table yet.
        let index = index(&[
            ("x", &[(0, 0, 19), (1, 0, 19)]),
            ("y", &[(0, 20, 39), (1, 20, 39)]),
            ("e", &[(0, 40, 49), (1, 40, 49)]),
            ("f", &[(0, 50, 59), (1, 50, 59)]),
        ]);
        let runs = plan_runs(
            vec![candidate("x"), candidate("e"), candidate("f"), None],
            &index,
            1 << 20,
            2,
            None,
        );
        assert_eq!(names(runs), vec![vec!["e", "f"]]);
    }

    #[test]
    fn runs_follow_offsets_in_every_partition() {
        // a holds only partition 0, b only partition 1, c and d both, d
        // first in partition 1 and last in partition 0: every partition's
        // block stays unbroken, so they form one run.
        let index = index(&[
            ("a", &[(0, 0, 9)]),
            ("b", &[(1, 10, 19)]),
            ("c", &[(0, 10, 19), (1, 20, 29)]),
            ("d", &[(0, 20, 29), (1, 0, 9)]),
        ]);
        let runs = plan_runs(
            vec![
                candidate("a"),
                candidate("b"),
                candidate("c"),
                candidate("d"),
            ],
            &index,
            1 << 20,
            2,
            None,
        );
        assert_eq!(names(runs), vec![vec!["a", "b", "c", "d"]]);
        // Taken in another order, a file that adjoins at the front joins.
        let runs = plan_runs(
            vec![candidate("c"), candidate("a"), candidate("b")],
            &index,
            1 << 20,
            2,
            None,
        );
        assert_eq!(names(runs), vec![vec!["c", "a", "b"]]);
    }

    #[test]
    fn a_file_split_by_another_is_never_compacted() {
        let index = index(&[
            ("a", &[(0, 0, 9), (0, 20, 29)]),
            ("b", &[(0, 10, 19)]),
            ("c", &[(0, 30, 39)]),
        ]);
        let runs = plan_runs(
            vec![candidate("a"), candidate("b"), candidate("c")],
            &index,
            1 << 20,
            2,
            None,
        );
        assert_eq!(names(runs), Vec::<Vec<String>>::new());
    }
}
