//! Writing: a topic's buffered records become one Parquet file whose
//! small partitions share row groups (flushes); rows already in the
//! segment layout become row groups of about a byte size (rewrites).

use super::buffer::TopicRows;
use super::*;

/// The largest Kafka timestamp (ms) that fits the microsecond columns.
pub const MAX_TIMESTAMP_MS: i64 = i64::MAX / 1000;

/// Parquet writer settings for segments.
#[derive(Debug, Clone, Copy)]
pub struct SegmentFormat {
    /// zstd level; 0 disables compression.
    pub zstd_level: i32,
}

impl Default for SegmentFormat {
    fn default() -> Self {
        SegmentFormat { zstd_level: 1 }
    }
}

/// Below this many bytes of rows per partition on average, a flush's file
/// is written without a codec: a zstd page pays a fresh compression context
/// (hundreds of KiB set up, then freed) that costs more than compressing
/// a few KiB saves, and at a thousand partitions per flush that setup was
/// a quarter of the broker's CPU. Such files are small by nature (intake
/// chunks, flushes spread over many partitions) and compaction or the
/// intake move rewrites them with the codec.
pub const SMALL_ROW_GROUP_BYTES: usize = 32 * 1024;

fn writer_properties(
    format: SegmentFormat,
    small_row_groups: bool,
    shared_row_groups: bool,
) -> Result<WriterProperties> {
    let payload_codec = if format.zstd_level > 0 && !small_row_groups {
        Compression::ZSTD(ZstdLevel::try_new(format.zstd_level)?)
    } else {
        Compression::UNCOMPRESSED
    };
    let column = |name: &str| ColumnPath::from(name);
    let (key_raw, value_raw) = (Part::Key.raw_column(), Part::Value.raw_column());
    let header_value = ColumnPath::new(vec![
        col::HEADERS.into(),
        "list".into(),
        "element".into(),
        "value".into(),
    ]);
    let mut b = WriterProperties::builder()
        // Kafka columns are small once encoded (delta for offsets and times,
        // dictionaries for the partition and timestamp type) and gain
        // nothing from a general codec, whose per-page context setup is
        // the main cost of small flushes. Payload columns (bytes, typed
        // fields, headers) get zstd.
        .set_compression(payload_codec)
        // Row groups are closed by the writer: per partition or shared
        // (flushes), or at a byte size (rewrites).
        .set_max_row_group_row_count(None)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_statistics_truncate_length(Some(64))
        .set_column_statistics_enabled(header_value.clone(), EnabledStatistics::None)
        .set_column_dictionary_enabled(header_value, false)
        .set_created_by(concat!("floe ", env!("CARGO_PKG_VERSION")).to_string());
    for name in [
        col::PARTITION,
        col::OFFSET,
        col::TIMESTAMP,
        col::TIMESTAMP_TYPE,
        col::APPEND_TIME,
        Part::Key.schema_id_column(),
        Part::Value.schema_id_column(),
    ] {
        b = b.set_column_compression(column(name), Compression::UNCOMPRESSED);
    }
    // Opaque bytes: dictionaries and statistics on them cost CPU and say
    // nothing useful (keys keep chunk statistics, for lookups by key).
    for name in [col::VALUE, value_raw, col::KEY, key_raw] {
        let stats = if name == col::VALUE || name == value_raw {
            EnabledStatistics::None
        } else {
            EnabledStatistics::Chunk
        };
        b = b
            .set_column_dictionary_enabled(column(name), false)
            .set_column_statistics_enabled(column(name), stats);
    }
    for name in [col::OFFSET, col::TIMESTAMP, col::APPEND_TIME] {
        b = b
            .set_column_dictionary_enabled(column(name), false)
            .set_column_encoding(column(name), Encoding::DELTA_BINARY_PACKED);
    }
    if small_row_groups {
        // A small row group is one page per column: a page index would
        // repeat the chunk statistics (and cost a tenth of the encoding).
        b = b.set_statistics_enabled(EnabledStatistics::Chunk);
    }
    if shared_row_groups {
        // The offset index (written whatever the statistics) lets a read
        // of one partition fetch only its pages; pages end where a mini
        // batch of rows reaches the limit, so the batches are small too.
        b = b
            .set_data_page_size_limit(SHARED_PAGE_BYTES)
            .set_write_batch_size(64);
    }
    Ok(b.build())
}

/// One partition's rows in a written file: a run of rows of one row group.
#[derive(Debug, Clone)]
pub struct WrittenSegment {
    /// Partition.
    pub partition: i32,
    /// Index of its row group in the file.
    pub row_group: i32,
    /// Index of its first row in the row group.
    pub first_row: i64,
    /// First offset.
    pub base_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// Rows.
    pub record_count: i64,
    /// Lowest timestamp.
    pub min_ts: i64,
    /// Highest timestamp.
    pub max_ts: i64,
    /// Compressed bytes: its share of the row group, by rows.
    pub size_bytes: i64,
}

impl WrittenSegment {
    /// Its row in the segment index, once the file is at `path`.
    pub fn segment(
        &self,
        topic: &str,
        path: &str,
        file_size: i64,
        append_time_ms: i64,
    ) -> crate::meta::SegmentRecord {
        crate::meta::SegmentRecord {
            topic: topic.to_string(),
            partition: self.partition,
            base_offset: self.base_offset,
            last_offset: self.last_offset,
            record_count: self.record_count,
            path: path.to_string(),
            file_size,
            row_group: self.row_group,
            first_row: self.first_row,
            min_timestamp: self.min_ts,
            max_timestamp: self.max_ts,
            size_bytes: self.size_bytes,
            append_time_ms,
        }
    }
}

/// A finished file in memory.
pub struct WrittenFile {
    /// The file bytes.
    pub bytes: Bytes,
    /// Its parsed footer, kept for the read path.
    pub metadata: Arc<ParquetMetaData>,
    /// Its segments, in partition and offset order.
    pub segments: Vec<WrittenSegment>,
}

/// Encodes a topic's buffered records into one Parquet file, sorted by
/// (partition, offset). Small partitions share row groups, closed at a
/// partition boundary once they hold [`FLUSH_ROW_GROUP_BYTES`]; a partition
/// that large has its own. A partition's run of rows in a row group is a
/// segment.
pub fn write_file(
    rows: TopicRows,
    append_time: i64,
    format: SegmentFormat,
    layout: &WriteLayout,
) -> Result<WrittenFile> {
    let sorted = rows.into_sorted()?;
    let sizes: Vec<usize> = sorted.starts.iter().map(|(_, _, run)| run.bytes).collect();
    let close_after = shared_groups(&sizes);
    // Each row group's rows, and each partition's row group.
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let mut segments = Vec::with_capacity(sorted.starts.len());
    let mut group_start = 0;
    for ((partition, start, run), close) in sorted.starts.iter().zip(&close_after) {
        segments.push(WrittenSegment {
            partition: *partition,
            row_group: groups.len() as i32,
            first_row: (start - group_start) as i64,
            base_offset: run.base_offset,
            last_offset: run.last_offset,
            record_count: run.rows as i64,
            min_ts: run.min_ts,
            max_ts: run.max_ts,
            size_bytes: 0,
        });
        if *close {
            groups.push(group_start..start + run.rows);
            group_start = start + run.rows;
        }
    }
    let small = sizes.iter().sum::<usize>() / groups.len().max(1) < SMALL_ROW_GROUP_BYTES;
    let shared = groups.len() < segments.len();

    // The pieces given to the writer: each row group whole, or, for a
    // topic with typed columns, cut at chunk boundaries so that every core
    // types its share (typing decodes and re-encodes every value; the
    // Parquet encoding after it is sequential).
    let typed = layout.key.is_some() || layout.value.is_some();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = group_start;
    let chunk = if typed && threads > 1 {
        total.div_ceil(threads).max(1)
    } else {
        total.max(1)
    };
    let mut pieces: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    for g in &groups {
        let mut at = g.start;
        while at < g.end {
            let end = g.end.min((at / chunk + 1) * chunk);
            pieces.push((at..end, end == g.end));
            at = end;
        }
    }
    let schema = topic_schema(layout);
    let build = |pieces: &[(std::ops::Range<usize>, bool)]| -> Result<Vec<RecordBatch>> {
        pieces
            .iter()
            .map(|(range, _)| sorted.batch(range.clone(), append_time, layout, &schema))
            .collect()
    };
    let batches = if typed && threads > 1 && pieces.len() > 1 {
        let per_thread = pieces.len().div_ceil(threads);
        let built: Vec<Result<Vec<RecordBatch>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pieces
                .chunks(per_thread)
                .map(|chunk| scope.spawn(|| build(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StorageError::FlushFailed("typing rows panicked".into()))
                    })
                })
                .collect()
        });
        let mut batches = Vec::with_capacity(pieces.len());
        for b in built {
            batches.extend(b?);
        }
        batches
    } else {
        build(&pieces)?
    };

    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(
        &mut buf,
        schema,
        Some(writer_properties(format, small, shared)?),
    )?;
    for (batch, (_, ends_group)) in batches.iter().zip(&pieces) {
        writer.write(batch)?;
        if *ends_group {
            writer.flush()?;
        }
    }
    drop(batches);
    if shared {
        // Row-group statistics no longer say which partition ends where.
        writer.append_key_value_metadata(KeyValue::new(
            LAST_OFFSETS_KEY.to_string(),
            encode_last_offsets(&segments),
        ));
    }
    writer.close()?;
    finish_file(buf, segments)
}

/// The file's footer parsed, and each segment's share of its row group's
/// bytes.
fn finish_file(buf: Vec<u8>, mut segments: Vec<WrittenSegment>) -> Result<WrittenFile> {
    let bytes = Bytes::from(buf);
    let metadata = Arc::new(
        parquet::file::metadata::ParquetMetaDataReader::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
            .parse_and_finish(&bytes)?,
    );
    for seg in &mut segments {
        let rg = metadata.row_group(seg.row_group as usize);
        seg.size_bytes = rg.compressed_size() * seg.record_count / rg.num_rows().max(1);
    }
    Ok(WrittenFile {
        bytes,
        metadata,
        segments,
    })
}

/// Row groups of compacted files close at about this many bytes, so an
/// engine can still skip most of a large file by row-group statistics.
pub const COMPACTED_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// A flush's small partitions share a row group, sorted by (partition,
/// offset), closed at a partition boundary once it holds this many bytes;
/// a partition this large has a row group of its own. Parquet pays per row
/// group (a writer and a block of footer per column: 60-80 µs), so a flush
/// spread over a thousand partitions pays it a few times, not a thousand.
pub const FLUSH_ROW_GROUP_BYTES: usize = 1024 * 1024;

/// Pages of a file with shared row groups close at about this size, so a
/// read of one partition (by the offset index) fetches little besides its
/// own rows.
const SHARED_PAGE_BYTES: usize = 64 * 1024;

/// Encodes rows already in the segment layout (each partition's batches
/// sorted by offset, contiguous unless `gaps`, increasing in any case:
/// anything else is refused) into one file, in partition order, each
/// partition's rows in row groups of about `row_group_bytes` (rewrites:
/// compaction, the intake move, key compaction, which leaves gaps). Every
/// batch has `schema`.
pub fn write_partitions(
    partitions: Vec<(i32, Vec<RecordBatch>)>,
    schema: SchemaRef,
    format: SegmentFormat,
    row_group_bytes: usize,
    gaps: bool,
) -> Result<WrittenFile> {
    const SLICE_ROWS: usize = 4096;
    let mut buf = Vec::new();
    // Rewrites keep the codec, so what they leave in the table stays
    // compressed.
    let mut writer = ArrowWriter::try_new(
        &mut buf,
        schema,
        Some(writer_properties(format, false, false)?),
    )?;
    let mut segments: Vec<WrittenSegment> = Vec::new();
    let mut row_groups = 0;
    let mut open = false;
    for (partition, batches) in partitions {
        // One batch per partition: a run of many small files gives each
        // partition many small slices, and every write pays per column.
        let batches = match batches.first() {
            Some(first) if batches.len() > 1 => {
                vec![arrow_select::concat::concat_batches(
                    &first.schema(),
                    &batches,
                )?]
            }
            _ => batches,
        };
        // A partition's rows in a file are one unbroken run of offsets.
        let mut previous: Option<i64> = None;
        for batch in &batches {
            let mut start = 0;
            while start < batch.num_rows() {
                let len = SLICE_ROWS.min(batch.num_rows() - start);
                let slice = batch.slice(start, len);
                start += len;
                let offsets = column::<Int64Array>(&slice, col::OFFSET)?;
                let timestamps = Millis::of(&slice, col::TIMESTAMP)?;
                if !open {
                    segments.push(WrittenSegment {
                        partition,
                        row_group: row_groups,
                        first_row: 0,
                        base_offset: i64::MAX,
                        last_offset: i64::MIN,
                        record_count: 0,
                        min_ts: i64::MAX,
                        max_ts: i64::MIN,
                        size_bytes: 0,
                    });
                    open = true;
                }
                let seg = segments.last_mut().expect("opened above");
                for i in 0..slice.num_rows() {
                    let offset = offsets.value(i);
                    if previous.is_some_and(|p| offset <= p || (!gaps && offset != p + 1)) {
                        return Err(StorageError::Corrupt(format!(
                            "partition {partition}: offset {offset} follows {previous:?} in a file being written"
                        )));
                    }
                    previous = Some(offset);
                    seg.base_offset = seg.base_offset.min(offset);
                    seg.last_offset = seg.last_offset.max(offset);
                    seg.min_ts = seg.min_ts.min(timestamps.value(i));
                    seg.max_ts = seg.max_ts.max(timestamps.value(i));
                }
                seg.record_count += slice.num_rows() as i64;
                writer.write(&slice)?;
                if writer.in_progress_size() >= row_group_bytes {
                    writer.flush()?;
                    row_groups += 1;
                    open = false;
                }
            }
        }
        if open {
            writer.flush()?;
            row_groups += 1;
            open = false;
        }
    }
    writer.close()?;
    finish_file(buf, segments)
}

fn encode_last_offsets(segments: &[WrittenSegment]) -> String {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for s in segments {
        let e = last.entry(s.partition).or_insert(s.last_offset);
        *e = (*e).max(s.last_offset);
    }
    let pairs: Vec<String> = last.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    pairs.join(",")
}

/// Where a flush closes its row groups, given each partition's bytes:
/// after partition `i` when `close_after[i]`.
fn shared_groups(sizes: &[usize]) -> Vec<bool> {
    let mut close_after = vec![false; sizes.len()];
    let mut open = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size >= FLUSH_ROW_GROUP_BYTES && open > 0 {
            close_after[i - 1] = true;
            open = 0;
        }
        open += size;
        if open >= FLUSH_ROW_GROUP_BYTES || i + 1 == sizes.len() {
            close_after[i] = true;
            open = 0;
        }
    }
    close_after
}
