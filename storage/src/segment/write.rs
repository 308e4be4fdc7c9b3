//! Writing: records buffered per partition become one Parquet file, its
//! row groups closed per partition, shared by small partitions (flushes)
//! or at a byte size (rewrites).

use super::schema::{header_fields, header_item};
use super::*;

/// The largest Kafka timestamp (ms) that fits the microsecond columns.
pub const MAX_TIMESTAMP_MS: i64 = i64::MAX / 1000;

/// Records of one partition, buffered as Arrow builders until a flush.
pub struct PartitionRows {
    offsets: Int64Builder,
    timestamps: TimestampMicrosecondBuilder,
    timestamp_types: Int32Builder,
    keys: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
    values: BinaryBuilder,
    /// Rows buffered.
    pub len: usize,
    /// First offset buffered.
    pub base_offset: i64,
    /// Lowest timestamp.
    pub min_ts: i64,
    /// Highest timestamp.
    pub max_ts: i64,
}

impl PartitionRows {
    /// Empty rows starting at `base_offset`.
    pub fn new(base_offset: i64) -> Self {
        // Small to start with, grown as records come: a broker buffers
        // every partition it was sent to since the last flush, and the
        // builders' default capacities (1 024 rows) cost about 45 KiB per
        // partition per flush, most of it never used when a flush spreads
        // over a thousand partitions.
        const ROWS: usize = 16;
        let headers =
            ListBuilder::with_capacity(StructBuilder::from_fields(header_fields(), 0), ROWS)
                .with_field(header_item());
        PartitionRows {
            offsets: Int64Builder::with_capacity(ROWS),
            timestamps: TimestampMicrosecondBuilder::with_capacity(ROWS).with_timezone("UTC"),
            timestamp_types: Int32Builder::with_capacity(ROWS),
            keys: BinaryBuilder::with_capacity(ROWS, 0),
            headers,
            values: BinaryBuilder::with_capacity(ROWS, 0),
            len: 0,
            base_offset,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }

    /// Appends one record at `offset`. Header keys must be UTF-8 (checked by
    /// the caller, which can name the record).
    pub fn push(&mut self, offset: i64, timestamp: i64, timestamp_type: i8, r: &Record) {
        self.offsets.append_value(offset);
        // The caller refused timestamps beyond MAX_TIMESTAMP_MS.
        self.timestamps.append_value(timestamp.saturating_mul(1000));
        self.timestamp_types.append_value(i32::from(timestamp_type));
        self.keys.append_option(r.key.as_deref());
        self.values.append_option(r.value.as_deref());
        let sb = self.headers.values();
        for h in &r.headers {
            sb.field_builder::<StringBuilder>(0)
                .expect("header key builder")
                .append_value(std::str::from_utf8(&h.key).unwrap_or_default());
            sb.field_builder::<BinaryBuilder>(1)
                .expect("header value builder")
                .append_option(h.value.as_deref());
            sb.append(true);
        }
        self.headers.append(true);
        self.min_ts = self.min_ts.min(timestamp);
        self.max_ts = self.max_ts.max(timestamp);
        self.len += 1;
    }

    /// The first non-empty key or value buffered (to choose the message a
    /// schema topic's columns follow).
    pub fn first_payload(&self, part: Part) -> Option<&[u8]> {
        let b = match part {
            Part::Key => &self.keys,
            Part::Value => &self.values,
        };
        let (offsets, bytes) = (b.offsets_slice(), b.values_slice());
        offsets
            .windows(2)
            .find(|w| w[1] > w[0])
            .map(|w| &bytes[w[0] as usize..w[1] as usize])
    }

    fn finish(
        mut self,
        partition: i32,
        append_time: i64,
        layout: &WriteLayout,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let n = self.len;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![partition; n])),
            Arc::new(self.offsets.finish()),
            Arc::new(self.timestamps.finish()),
            Arc::new(self.timestamp_types.finish()),
        ];
        payload_columns(&mut cols, layout.part(Part::Key), self.keys.finish())?;
        cols.push(Arc::new(self.headers.finish()));
        payload_columns(&mut cols, layout.part(Part::Value), self.values.finish())?;
        cols.push(Arc::new(
            TimestampMicrosecondArray::from(vec![append_time.saturating_mul(1000); n])
                .with_timezone("UTC"),
        ));
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

/// A part's columns: its bytes, or its typed columns.
fn payload_columns(
    cols: &mut Vec<ArrayRef>,
    typed: Option<&TypedPart>,
    bytes: BinaryArray,
) -> Result<()> {
    match typed {
        None => cols.push(Arc::new(bytes)),
        Some(t) => {
            let split = typed::split(t, &bytes)?;
            cols.push(Arc::new(split.typed));
            cols.push(Arc::new(split.raw));
            cols.push(Arc::new(split.schema_ids));
        }
    }
    Ok(())
}

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

/// Each partition's rows, as batches.
type PartitionBatches = Vec<(i32, Vec<RecordBatch>)>;

/// Encodes buffered partitions into one Parquet file, in partition order
/// (see [`write_partitions`] for its row groups).
pub fn write_file(
    partitions: BTreeMap<i32, PartitionRows>,
    append_time: i64,
    format: SegmentFormat,
    layout: &WriteLayout,
) -> Result<WrittenFile> {
    let rows: Vec<(i32, PartitionRows)> =
        partitions.into_iter().filter(|(_, r)| r.len > 0).collect();
    let typed = layout.key.is_some() || layout.value.is_some();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let schema = topic_schema(layout);
    let finish = |chunk: Vec<(i32, PartitionRows)>| -> Result<PartitionBatches> {
        chunk
            .into_iter()
            .map(|(p, r)| Ok((p, vec![r.finish(p, append_time, layout, &schema)?])))
            .collect()
    };
    let batches = if typed && threads > 1 && rows.len() > 1 {
        // Typing decodes and re-encodes every value: the partitions of a
        // flush are typed on every core (the Parquet encoding after it is
        // sequential).
        let per_thread = rows.len().div_ceil(threads);
        let mut chunks: Vec<Vec<(i32, PartitionRows)>> = Vec::new();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            chunks.push(rows.by_ref().take(per_thread).collect());
        }
        let finished: Vec<Result<PartitionBatches>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| scope.spawn(|| finish(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StorageError::FlushFailed(
                            "typing a partition panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let mut batches = Vec::new();
        for f in finished {
            batches.extend(f?);
        }
        batches
    } else {
        finish(rows)?
    };
    write_partitions(batches, schema, format, None)
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
/// sorted by offset, contiguous: anything else is refused) into one file,
/// in partition order. With `row_group_bytes` (rewrites), each partition's
/// rows form row groups of about that many bytes; without (flushes), small
/// partitions share row groups (see [`FLUSH_ROW_GROUP_BYTES`]). A
/// partition's run of rows in a row group is a segment. Every batch has
/// `schema`.
pub fn write_partitions(
    partitions: Vec<(i32, Vec<RecordBatch>)>,
    schema: SchemaRef,
    format: SegmentFormat,
    row_group_bytes: Option<usize>,
) -> Result<WrittenFile> {
    const SLICE_ROWS: usize = 4096;
    let sizes: Vec<usize> = partitions
        .iter()
        .map(|(_, batches)| {
            batches
                .iter()
                .flat_map(|batch| batch.columns())
                // The rows' own bytes: a slice of a larger buffer counts
                // its part.
                .map(|column| column.to_data().get_slice_memory_size().unwrap_or(0))
                .sum()
        })
        .collect();
    let close_after = match row_group_bytes {
        Some(_) => vec![true; sizes.len()],
        None => shared_groups(&sizes),
    };
    let groups = close_after.iter().filter(|c| **c).count();
    // Only flushes go without the codec (when their row groups are small):
    // rewrites keep it, so what they leave in the table stays compressed.
    let small = row_group_bytes.is_none()
        && sizes.iter().sum::<usize>() / groups.max(1) < SMALL_ROW_GROUP_BYTES;
    let shared = groups < sizes.len();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(
        &mut buf,
        schema,
        Some(writer_properties(format, small, shared)?),
    )?;
    let mut groups = RowGroups::default();
    for ((partition, batches), close) in partitions.into_iter().zip(close_after) {
        // A partition's rows in a file are one unbroken run of offsets.
        let mut previous: Option<i64> = None;
        for batch in &batches {
            let mut start = 0;
            while start < batch.num_rows() {
                let len = match row_group_bytes {
                    Some(_) => SLICE_ROWS.min(batch.num_rows() - start),
                    None => batch.num_rows() - start,
                };
                let slice = batch.slice(start, len);
                start += len;
                let offsets = column::<Int64Array>(&slice, col::OFFSET)?;
                let timestamps = Millis::of(&slice, col::TIMESTAMP)?;
                let seg = groups.segment_of(partition);
                for i in 0..slice.num_rows() {
                    let offset = offsets.value(i);
                    if previous.is_some_and(|p| offset != p + 1) {
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
                groups.rows += slice.num_rows() as i64;
                match row_group_bytes {
                    Some(max) => {
                        writer.write(&slice)?;
                        if writer.in_progress_size() >= max {
                            groups.close(&mut writer)?;
                        }
                    }
                    // A flush's row group is written whole at its close:
                    // one write, not one per partition.
                    None => groups.pending.push(slice),
                }
            }
        }
        if close {
            groups.close(&mut writer)?;
        }
    }
    groups.close(&mut writer)?;
    if shared {
        // Row-group statistics no longer say which partition ends where.
        writer.append_key_value_metadata(KeyValue::new(
            LAST_OFFSETS_KEY.to_string(),
            encode_last_offsets(&groups.done),
        ));
    }
    writer.close()?;
    let bytes = Bytes::from(buf);
    let metadata = Arc::new(
        parquet::file::metadata::ParquetMetaDataReader::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
            .parse_and_finish(&bytes)?,
    );
    let mut segments = groups.done;
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

/// The segments of a file being written: those of closed row groups, then
/// those of the open one (from `open_from`), which hold `rows` rows, some
/// of them `pending` (not yet given to the writer).
#[derive(Default)]
struct RowGroups {
    done: Vec<WrittenSegment>,
    open_from: usize,
    rows: i64,
    pending: Vec<RecordBatch>,
    closed: i32,
}

impl RowGroups {
    /// The open row group's segment of `partition`, started if need be.
    fn segment_of(&mut self, partition: i32) -> &mut WrittenSegment {
        let continues = self.done.len() > self.open_from
            && self.done.last().is_some_and(|s| s.partition == partition);
        if !continues {
            self.done.push(WrittenSegment {
                partition,
                row_group: self.closed,
                first_row: self.rows,
                base_offset: i64::MAX,
                last_offset: i64::MIN,
                record_count: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                size_bytes: 0,
            });
        }
        self.done.last_mut().expect("pushed above")
    }

    /// Ends the open row group, if it has rows.
    fn close(&mut self, writer: &mut ArrowWriter<&mut Vec<u8>>) -> Result<()> {
        if let Some(first) = self.pending.first() {
            let rows = arrow_select::concat::concat_batches(&first.schema(), &self.pending)?;
            self.pending.clear();
            writer.write(&rows)?;
        }
        if self.rows > 0 {
            writer.flush()?;
            self.closed += 1;
            self.open_from = self.done.len();
            self.rows = 0;
        }
        Ok(())
    }
}
