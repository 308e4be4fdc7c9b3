//! Parquet segments: the on-disk form of a topic.
//!
//! A flush writes one file per topic. Inside it each partition's records
//! form one row group, sorted by (partition, offset), so a Fetch reads one
//! row group with ranged reads and an engine prunes by the column
//! statistics of `partition`, `offset`, `timestamp` and `append_time`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Int32Array, Int64Array, Int8Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use floe_protocol::records::{BatchBuilder, Record};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

pub use crate::columns::{col, field_id};
use crate::error::{Result, StorageError};
use crate::typed::{self, Part, ReadLayout, TypedPart, TypedReader, WriteLayout};

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow field metadata key Parquet writers turn into field ids.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata([(FIELD_ID_KEY.to_string(), id.to_string())].into())
}

fn header_fields() -> Fields {
    Fields::from(vec![
        with_id(
            Field::new("key", DataType::Utf8, false),
            field_id::HEADER_KEY,
        ),
        with_id(
            Field::new("value", DataType::Binary, true),
            field_id::HEADER_VALUE,
        ),
    ])
}

fn header_item() -> Arc<Field> {
    Arc::new(with_id(
        Field::new("element", DataType::Struct(header_fields()), false),
        field_id::HEADER,
    ))
}

/// The Arrow schema of a raw (schemaless) topic. Timestamps are
/// microseconds (Iceberg's `timestamptz`); Kafka's milliseconds are exact
/// multiples.
pub fn raw_schema() -> SchemaRef {
    topic_schema(&WriteLayout::default())
}

/// The Arrow schema of a file written with `layout`: the Kafka columns,
/// each part either as bytes (`key`, `value`) or as its typed struct, the
/// `<part>_raw` bytes and the schema id. The file's metadata names the
/// layouts it was written with.
pub fn topic_schema(layout: &WriteLayout) -> SchemaRef {
    use field_id as id;
    let payload = |part: Part| -> Vec<Field> {
        match layout.part(part) {
            None => vec![with_id(
                Field::new(part.column(), DataType::Binary, true),
                part.raw_field_id(),
            )],
            Some(t) => vec![
                t.column.clone(),
                with_id(
                    Field::new(part.raw_column(), DataType::Binary, true),
                    part.raw_field_id(),
                ),
                t.schema_id.clone(),
            ],
        }
    };
    let mut fields = vec![
        with_id(
            Field::new(col::PARTITION, DataType::Int32, false),
            id::PARTITION,
        ),
        with_id(Field::new(col::OFFSET, DataType::Int64, false), id::OFFSET),
        with_id(Field::new(col::TIMESTAMP, ts_type(), false), id::TIMESTAMP),
        with_id(
            Field::new(col::TIMESTAMP_TYPE, DataType::Int32, false),
            id::TIMESTAMP_TYPE,
        ),
    ];
    fields.extend(payload(Part::Key));
    fields.push(with_id(
        Field::new(col::HEADERS, DataType::List(header_item()), false),
        id::HEADERS,
    ));
    fields.extend(payload(Part::Value));
    fields.push(with_id(
        Field::new(col::APPEND_TIME, ts_type(), false),
        id::APPEND_TIME,
    ));
    let metadata: HashMap<String, String> = Part::ALL
        .iter()
        .filter_map(|p| {
            layout
                .part(*p)
                .map(|t| (p.metadata_key().to_string(), t.layout.id.clone()))
        })
        .collect();
    Arc::new(Schema::new(fields).with_metadata(metadata))
}

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

/// Footer key of a file with shared row groups: each partition's last
/// offset in it, as `partition:offset` pairs joined by commas.
pub const LAST_OFFSETS_KEY: &str = "floe.kafka.last.offsets";

fn encode_last_offsets(segments: &[WrittenSegment]) -> String {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for s in segments {
        let e = last.entry(s.partition).or_insert(s.last_offset);
        *e = (*e).max(s.last_offset);
    }
    let pairs: Vec<String> = last.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    pairs.join(",")
}

/// Each partition's last offset in a file with shared row groups (None
/// for a file whose row groups each hold one partition: their statistics
/// say it).
pub fn last_offsets(meta: &ParquetMetaData) -> Option<Result<Vec<(i32, i64)>>> {
    let value = meta
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == LAST_OFFSETS_KEY)?
        .value
        .as_deref()
        .unwrap_or("");
    let bad = || StorageError::Corrupt(format!("{LAST_OFFSETS_KEY} is {value:?}"));
    Some(
        value
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (p, o) = pair.split_once(':').ok_or_else(bad)?;
                Ok((p.parse().map_err(|_| bad())?, o.parse().map_err(|_| bad())?))
            })
            .collect(),
    )
}

/// The rows a read takes of a row group of `group_rows` rows: `count`
/// from `first` (a segment's run, or the part of it a read starts in).
pub fn row_run(group_rows: usize, first: usize, count: usize) -> RowSelection {
    let first = first.min(group_rows);
    let count = count.min(group_rows - first);
    let runs = [
        RowSelector::skip(first),
        RowSelector::select(count),
        RowSelector::skip(group_rows - first - count),
    ];
    RowSelection::from(
        runs.into_iter()
            .filter(|r| r.row_count > 0)
            .collect::<Vec<_>>(),
    )
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

/// Whether rows read from a file are in the current layout (files written
/// before microsecond timestamps are left as they are by compaction).
pub fn is_current_layout(schema: &Schema) -> bool {
    let want = raw_schema();
    [col::TIMESTAMP, col::TIMESTAMP_TYPE, col::APPEND_TIME]
        .iter()
        .all(
            |name| match (schema.field_with_name(name), want.field_with_name(name)) {
                (Ok(a), Ok(b)) => a.data_type() == b.data_type(),
                _ => false,
            },
        )
}

/// The schema of a file's rows: its Arrow schema without what its footer
/// says about the file itself ([`LAST_OFFSETS_KEY`]), so files of one
/// layout compare equal and a rewrite does not carry it over.
pub fn rows_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.metadata().contains_key(LAST_OFFSETS_KEY) {
        return schema.clone();
    }
    let mut metadata = schema.metadata().clone();
    metadata.remove(LAST_OFFSETS_KEY);
    Arc::new(Schema::new(schema.fields().clone()).with_metadata(metadata))
}

/// One part of a batch, as Kafka bytes.
enum PayloadColumn<'a> {
    Raw(&'a BinaryArray),
    Typed(TypedReader<'a>),
}

impl<'a> PayloadColumn<'a> {
    fn of(batch: &'a RecordBatch, part: Part, layout: &'a ReadLayout) -> Result<Self> {
        match layout.part(part) {
            None => column::<BinaryArray>(batch, part.column()).map(PayloadColumn::Raw),
            Some(l) => Ok(PayloadColumn::Typed(TypedReader::new(
                l,
                column::<StructArray>(batch, part.column())?,
                column::<BinaryArray>(batch, part.raw_column())?,
                column::<Int32Array>(batch, part.schema_id_column())?,
            )?)),
        }
    }

    /// Row `i`: borrowed from the column, or rebuilt into `scratch`.
    fn get<'b>(&'b self, i: usize, scratch: &'b mut Vec<u8>) -> Result<Option<&'b [u8]>>
    where
        'a: 'b,
    {
        match self {
            PayloadColumn::Raw(a) => Ok(opt(a, i)),
            PayloadColumn::Typed(t) => {
                scratch.clear();
                Ok(t.write(i, scratch)?.then_some(scratch.as_slice()))
            }
        }
    }
}

fn opt(a: &BinaryArray, i: usize) -> Option<&[u8]> {
    if a.is_null(i) {
        None
    } else {
        Some(a.value(i))
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            StorageError::Corrupt(format!("segment lacks column {name} of the expected type"))
        })
}

/// A timestamp column read as Kafka milliseconds: microseconds since this
/// layout, milliseconds in files written before it.
enum Millis<'a> {
    Micros(&'a TimestampMicrosecondArray),
    Millis(&'a TimestampMillisecondArray),
}

impl<'a> Millis<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Self> {
        match column::<TimestampMicrosecondArray>(batch, name) {
            Ok(a) => Ok(Millis::Micros(a)),
            Err(_) => column::<TimestampMillisecondArray>(batch, name).map(Millis::Millis),
        }
    }

    fn value(&self, i: usize) -> i64 {
        match self {
            Millis::Micros(a) => a.value(i).div_euclid(1000),
            Millis::Millis(a) => a.value(i),
        }
    }
}

/// `timestamp_type`: int32 since the Iceberg layout, int8 before it.
enum TimestampTypes<'a> {
    Int32(&'a Int32Array),
    Int8(&'a Int8Array),
}

impl<'a> TimestampTypes<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        match column::<Int32Array>(batch, col::TIMESTAMP_TYPE) {
            Ok(a) => Ok(TimestampTypes::Int32(a)),
            Err(_) => column::<Int8Array>(batch, col::TIMESTAMP_TYPE).map(TimestampTypes::Int8),
        }
    }

    fn value(&self, i: usize) -> i8 {
        match self {
            TimestampTypes::Int32(a) => a.value(i) as i8,
            TimestampTypes::Int8(a) => a.value(i),
        }
    }
}

/// Kafka batches rebuilt from Arrow rows.
#[derive(Debug, Default)]
pub struct RebuiltBatches {
    /// Concatenated record batches.
    pub bytes: Vec<Bytes>,
    /// Offset of the first record included, if any.
    pub first_offset: Option<i64>,
    /// Offset after the last record included.
    pub next_offset: i64,
    /// Total size.
    pub size: usize,
}

/// Turns rows (sorted by offset) into Kafka record batches, starting at
/// `from_offset`, until `max_bytes` is passed (the first batch is always
/// complete, as KIP-74 asks). Batches are cut at ~1 MiB and wherever the
/// timestamp type changes. From the first row taken on, offsets must go up
/// by one: anything else is a corrupt row group, refused rather than
/// handed to a consumer as a gap.
pub fn rebuild_batches(
    batch: &RecordBatch,
    layout: &ReadLayout,
    from_offset: i64,
    max_bytes: usize,
    leader_epoch: i32,
) -> Result<RebuiltBatches> {
    const TARGET: usize = 1 << 20;
    let offsets = column::<Int64Array>(batch, col::OFFSET)?;
    let timestamps = Millis::of(batch, col::TIMESTAMP)?;
    let ts_types = TimestampTypes::of(batch)?;
    let keys = PayloadColumn::of(batch, Part::Key, layout)?;
    let values = PayloadColumn::of(batch, Part::Value, layout)?;
    let (mut key_buf, mut value_buf) = (Vec::new(), Vec::new());
    let headers = column::<ListArray>(batch, col::HEADERS)?;
    let header_structs = headers
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| StorageError::Corrupt("headers are not structs".into()))?;
    let hkeys = header_structs
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| StorageError::Corrupt("header keys are not strings".into()))?;
    let hvals = header_structs
        .column(1)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| StorageError::Corrupt("header values are not binary".into()))?;
    let header_offsets = headers.value_offsets();

    let mut out = RebuiltBatches {
        bytes: Vec::new(),
        first_offset: None,
        next_offset: from_offset,
        size: 0,
    };
    let mut builder: Option<BatchBuilder> = None;
    let mut builder_type = 0i8;
    let mut hdrs: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    for i in 0..batch.num_rows() {
        let offset = offsets.value(i);
        if offset < from_offset && out.first_offset.is_none() {
            continue;
        }
        if out.first_offset.is_some() && offset != out.next_offset {
            return Err(StorageError::Corrupt(format!(
                "rows jump from offset {} to {offset}",
                out.next_offset - 1
            )));
        }
        out.first_offset.get_or_insert(offset);
        let ts = timestamps.value(i);
        let ts_type = ts_types.value(i);
        if let Some(b) = &builder {
            if b.len() >= TARGET || ts_type != builder_type {
                let done = builder.take().expect("checked").finish(leader_epoch);
                out.size += done.len();
                out.bytes.push(done);
            }
        }
        if builder.is_none() {
            if !out.bytes.is_empty() && out.size >= max_bytes {
                break;
            }
            builder = Some(BatchBuilder::new(offset, ts, ts_type));
            builder_type = ts_type;
        }
        hdrs.clear();
        for h in header_offsets[i] as usize..header_offsets[i + 1] as usize {
            hdrs.push((hkeys.value(h).as_bytes(), opt(hvals, h)));
        }
        let b = builder.as_mut().expect("set above");
        let (key, value) = (keys.get(i, &mut key_buf)?, values.get(i, &mut value_buf)?);
        b.push(offset, ts, key, value, &hdrs);
        out.next_offset = offset + 1;
        if out.size + b.len() >= max_bytes {
            let done = builder.take().expect("set above").finish(leader_epoch);
            out.size += done.len();
            out.bytes.push(done);
            break;
        }
    }
    if let Some(b) = builder {
        if !b.is_empty() {
            let done = b.finish(leader_epoch);
            out.size += done.len();
            out.bytes.push(done);
        }
    }
    Ok(out)
}

/// (offset, timestamp) pairs of a row group, for ListOffsets by time.
pub fn offsets_and_timestamps(batch: &RecordBatch) -> Result<Vec<(i64, i64)>> {
    let offsets = column::<Int64Array>(batch, col::OFFSET)?;
    let timestamps = Millis::of(batch, col::TIMESTAMP)?;
    Ok((0..batch.num_rows())
        .map(|i| (offsets.value(i), timestamps.value(i)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_protocol::records::{split_batches, RecordHeader, BATCH_HEADER_LEN};

    fn rec(i: i64) -> Record {
        Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
            value: (i % 5 != 0).then(|| Bytes::from(vec![i as u8; 100])),
            headers: vec![RecordHeader {
                key: Bytes::from_static(b"h"),
                value: (i % 2 == 0).then(|| Bytes::from_static(b"x")),
            }],
        }
    }

    /// A segment's rows, read as the broker does: its run of its row group.
    fn read_segment(file: &WrittenFile, seg: &WrittenSegment) -> Vec<RecordBatch> {
        let rows = file.metadata.row_group(seg.row_group as usize).num_rows() as usize;
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
            file.bytes.clone(),
            options,
        )
        .unwrap()
        .with_row_groups(vec![seg.row_group as usize])
        .with_row_selection(row_run(
            rows,
            seg.first_row as usize,
            seg.record_count as usize,
        ))
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
    }

    #[test]
    fn small_partitions_share_a_row_group_and_a_large_one_has_its_own() {
        let mut parts = BTreeMap::new();
        for p in 0..300 {
            // Partition 150 alone fills a row group.
            let n = if p == 150 { 12_000 } else { 3 };
            let mut rows = PartitionRows::new(p as i64 * 100);
            for i in 0..n {
                rows.push(p as i64 * 100 + i, 1000 + i, 0, &rec(i));
            }
            parts.insert(p, rows);
        }
        let file = write_file(parts, 5, SegmentFormat::default(), &WriteLayout::default()).unwrap();
        assert_eq!(file.segments.len(), 300);
        assert_eq!(file.metadata.num_row_groups(), 3);
        // The offset index is there, so a read of one partition can skip
        // the pages of the others.
        assert!(file.metadata.offset_index().is_some());
        let groups: Vec<i32> = file.segments.iter().map(|s| s.row_group).collect();
        assert!(groups[..150].iter().all(|g| *g == 0));
        assert_eq!(groups[150], 1);
        assert!(groups[151..].iter().all(|g| *g == 2));
        for seg in &file.segments {
            let batches = read_segment(&file, seg);
            let pairs: Vec<(i64, i64)> = batches
                .iter()
                .flat_map(|b| offsets_and_timestamps(b).unwrap())
                .collect();
            let base = seg.partition as i64 * 100;
            let n = if seg.partition == 150 { 12_000 } else { 3 };
            assert_eq!(pairs.len() as i64, n, "partition {}", seg.partition);
            assert_eq!(seg.record_count, n);
            assert_eq!((seg.base_offset, seg.last_offset), (base, base + n - 1));
            for (i, (o, t)) in pairs.iter().enumerate() {
                assert_eq!((*o, *t), (base + i as i64, 1000 + i as i64));
            }
            let parts = batches[0]
                .column_by_name(col::PARTITION)
                .unwrap()
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            assert!(parts.iter().all(|p| p == Some(seg.partition)));
        }
        // Shares of a row group's bytes add up to it.
        let shared: i64 = file
            .segments
            .iter()
            .filter(|s| s.row_group == 0)
            .map(|s| s.size_bytes)
            .sum();
        let whole = file.metadata.row_group(0).compressed_size();
        assert!(
            shared <= whole && shared >= whole - 150,
            "{shared} of {whole}"
        );
        // The footer says where each partition ends.
        let last = last_offsets(&file.metadata).unwrap().unwrap();
        assert_eq!(last.len(), 300);
        assert_eq!(last[150], (150, 15_000 + 12_000 - 1));
        assert_eq!(last[7], (7, 702));
    }

    #[test]
    fn write_then_rebuild_is_byte_exact_per_record() {
        let mut parts = BTreeMap::new();
        for p in [1, 0] {
            let mut rows = PartitionRows::new(10);
            for i in 0..50 {
                rows.push(10 + i, 1000 + i, 0, &rec(i));
            }
            parts.insert(p, rows);
        }
        let file = write_file(parts, 5, SegmentFormat::default(), &WriteLayout::default()).unwrap();
        // Two small partitions: one shared row group, partition 0 first.
        assert_eq!(file.metadata.num_row_groups(), 1);
        assert_eq!(file.segments.len(), 2);
        assert_eq!(file.segments[0].partition, 0);
        let seg = &file.segments[1];
        assert_eq!(
            (
                seg.row_group,
                seg.first_row,
                seg.base_offset,
                seg.last_offset
            ),
            (0, 50, 10, 59)
        );
        let batches = read_segment(&file, seg);
        let rebuilt = rebuild_batches(&batches[0], &ReadLayout::default(), 20, 1 << 20, 3).unwrap();
        assert_eq!(rebuilt.next_offset, 60);
        let all: Bytes = rebuilt.bytes.concat().into();
        let kb = split_batches(all).unwrap();
        assert_eq!(kb[0].header.base_offset, 20);
        assert_eq!(kb[0].header.partition_leader_epoch, 3);
        let recs = kb[0].records(1 << 20).unwrap();
        assert_eq!(recs.len(), 40);
        for (j, r) in recs.iter().enumerate() {
            let want = rec(10 + j as i64);
            assert_eq!(
                (&r.key, &r.value, &r.headers),
                (&want.key, &want.value, &want.headers)
            );
            assert_eq!(
                kb[0].header.base_timestamp + r.timestamp_delta,
                1010 + j as i64
            );
        }
        assert!(kb[0].bytes.len() > BATCH_HEADER_LEN);
    }

    #[test]
    fn compacted_files_split_partitions_into_contiguous_row_groups() {
        let mut parts = BTreeMap::new();
        for p in [0, 1] {
            let mut rows = PartitionRows::new(0);
            for i in 0..10_000 {
                rows.push(i, 1000 + i, 0, &rec(i));
            }
            parts.insert(p, rows);
        }
        let whole =
            write_file(parts, 5, SegmentFormat::default(), &WriteLayout::default()).unwrap();
        let batches: Vec<(i32, Vec<RecordBatch>)> = whole
            .segments
            .iter()
            .map(|seg| (seg.partition, read_segment(&whole, seg)))
            .collect();
        let split = write_partitions(
            batches,
            raw_schema(),
            SegmentFormat::default(),
            Some(64 * 1024),
        )
        .unwrap();
        assert!(
            split.segments.len() > 2,
            "{} row groups",
            split.segments.len()
        );
        for p in [0, 1] {
            let rgs: Vec<&WrittenSegment> =
                split.segments.iter().filter(|r| r.partition == p).collect();
            assert_eq!(rgs.first().unwrap().base_offset, 0);
            assert_eq!(rgs.last().unwrap().last_offset, 9_999);
            for w in rgs.windows(2) {
                assert_eq!(w[0].last_offset + 1, w[1].base_offset);
            }
            assert_eq!(rgs.iter().map(|r| r.record_count).sum::<i64>(), 10_000);
        }
        for (i, rg) in split.segments.iter().enumerate() {
            assert_eq!((rg.row_group, rg.first_row), (i as i32, 0));
            assert_eq!(
                split.metadata.row_group(i).num_rows(),
                rg.record_count,
                "row group {i}"
            );
        }
    }

    #[test]
    fn rebuild_respects_max_bytes_but_returns_one_batch() {
        let mut rows = PartitionRows::new(0);
        for i in 0..100 {
            rows.push(i, i, 0, &rec(1));
        }
        let mut parts = BTreeMap::new();
        parts.insert(0, rows);
        let file = write_file(
            parts,
            5,
            SegmentFormat { zstd_level: 0 },
            &WriteLayout::default(),
        )
        .unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.bytes)
                .unwrap()
                .build()
                .unwrap();
        let b: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let small = rebuild_batches(&b[0], &ReadLayout::default(), 0, 1, 0).unwrap();
        assert_eq!(small.bytes.len(), 1);
        assert!(small.next_offset >= 1 && small.next_offset < 100);
    }
}
