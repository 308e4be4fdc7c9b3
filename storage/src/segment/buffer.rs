//! A topic's buffered records: ONE set of Arrow builders in arrival order,
//! whatever the number of partitions, put in (partition, offset) order
//! once, at the flush, by one `take` per column.
//!
//! Builders per partition cost a set of arrays per partition per flush (to
//! allocate, finish, concatenate into shared row groups and drop), which at
//! a thousand partitions was a third of the broker's CPU.

use std::ops::Range;

use arrow_array::UInt32Array;

use super::schema::{header_fields, header_item};
use super::*;

/// Records of one topic waiting for a flush.
pub struct TopicRows {
    partitions: Int32Builder,
    offsets: Int64Builder,
    timestamps: TimestampMicrosecondBuilder,
    timestamp_types: Int32Builder,
    keys: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
    values: BinaryBuilder,
    runs: BTreeMap<i32, Run>,
    len: usize,
}

/// One partition's records in a flush.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
    pub(super) rows: usize,
    /// About what its rows weigh in Arrow: payloads plus fixed columns.
    pub(super) bytes: usize,
    pub(super) min_ts: i64,
    pub(super) max_ts: i64,
    /// Its offsets follow each other (the append path guarantees it; a
    /// file is never written otherwise).
    pub(super) contiguous: bool,
    /// Arrival index of its first non-empty key and value.
    first_key: Option<usize>,
    first_value: Option<usize>,
}

/// Bytes a row costs besides its payloads: partition, offset, timestamp,
/// timestamp type, append time and the offsets of the variable columns.
const FIXED_ROW_BYTES: usize = 4 + 8 + 8 + 4 + 8 + 4 * 4;

impl Default for TopicRows {
    fn default() -> Self {
        TopicRows::new()
    }
}

impl TopicRows {
    /// No records.
    pub fn new() -> Self {
        // Small to start with and grown as records come: a broker holds a
        // buffer per topic it was sent to, and the builders' default
        // capacities (1 024 rows) cost about 45 KiB each.
        const ROWS: usize = 64;
        let headers =
            ListBuilder::with_capacity(StructBuilder::from_fields(header_fields(), 0), ROWS)
                .with_field(header_item());
        TopicRows {
            partitions: Int32Builder::with_capacity(ROWS),
            offsets: Int64Builder::with_capacity(ROWS),
            timestamps: TimestampMicrosecondBuilder::with_capacity(ROWS).with_timezone("UTC"),
            timestamp_types: Int32Builder::with_capacity(ROWS),
            keys: BinaryBuilder::with_capacity(ROWS, 0),
            headers,
            values: BinaryBuilder::with_capacity(ROWS, 0),
            runs: BTreeMap::new(),
            len: 0,
        }
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one record of `partition` at `offset`, which follows the
    /// partition's last one. Header keys must be UTF-8 (checked by the
    /// caller, which can name the record).
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp: i64,
        timestamp_type: i8,
        r: &Record,
    ) {
        let row = self.len;
        let run = self.runs.entry(partition).or_insert(Run {
            base_offset: offset,
            last_offset: offset - 1,
            rows: 0,
            bytes: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            contiguous: true,
            first_key: None,
            first_value: None,
        });
        run.contiguous &= offset == run.last_offset + 1;
        run.last_offset = offset;
        run.rows += 1;
        run.min_ts = run.min_ts.min(timestamp);
        run.max_ts = run.max_ts.max(timestamp);
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len());
        run.bytes += FIXED_ROW_BYTES + len(&r.key) + len(&r.value);
        if run.first_key.is_none() && len(&r.key) > 0 {
            run.first_key = Some(row);
        }
        if run.first_value.is_none() && len(&r.value) > 0 {
            run.first_value = Some(row);
        }

        self.partitions.append_value(partition);
        self.offsets.append_value(offset);
        // The caller refused timestamps beyond MAX_TIMESTAMP_MS.
        self.timestamps.append_value(timestamp.saturating_mul(1000));
        self.timestamp_types.append_value(i32::from(timestamp_type));
        self.keys.append_option(r.key.as_deref());
        self.values.append_option(r.value.as_deref());
        let sb = self.headers.values();
        for h in &r.headers {
            run.bytes += h.key.len() + len(&h.value) + 8;
            sb.field_builder::<StringBuilder>(0)
                .expect("header key builder")
                .append_value(std::str::from_utf8(&h.key).unwrap_or_default());
            sb.field_builder::<BinaryBuilder>(1)
                .expect("header value builder")
                .append_option(h.value.as_deref());
            sb.append(true);
        }
        self.headers.append(true);
        self.len += 1;
    }

    /// Each partition's first non-empty key or value (to choose the
    /// message a schema topic's columns follow).
    pub fn first_payloads(&self, part: Part) -> Vec<&[u8]> {
        let b = match part {
            Part::Key => &self.keys,
            Part::Value => &self.values,
        };
        let (offsets, bytes) = (b.offsets_slice(), b.values_slice());
        self.runs
            .values()
            .filter_map(|run| match part {
                Part::Key => run.first_key,
                Part::Value => run.first_value,
            })
            .map(|i| &bytes[offsets[i] as usize..offsets[i + 1] as usize])
            .collect()
    }

    /// The rows in (partition, offset) order, with where each partition's
    /// run starts.
    pub(super) fn into_sorted(mut self) -> Result<SortedRows> {
        let mut starts = Vec::with_capacity(self.runs.len());
        let mut next = BTreeMap::new();
        let mut at = 0usize;
        for (p, run) in &self.runs {
            if !run.contiguous {
                return Err(StorageError::Corrupt(format!(
                    "partition {p}: offsets buffered for a flush are not contiguous"
                )));
            }
            starts.push((*p, at, run.clone()));
            next.insert(*p, at);
            at += run.rows;
        }
        let partitions = self.partitions.finish();
        // Rows of one partition arrive in offset order, so the buffer is in
        // order exactly when the partitions never go down (one partition,
        // or a producer that sent partitions one after the other): no copy
        // then. Otherwise a stable counting sort by partition orders it.
        let sorted = partitions.values().windows(2).all(|w| w[0] <= w[1]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(partitions.clone()),
            Arc::new(self.offsets.finish()),
            Arc::new(self.timestamps.finish()),
            Arc::new(self.timestamp_types.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.headers.finish()),
            Arc::new(self.values.finish()),
        ];
        let columns = if sorted {
            columns
        } else {
            let mut indices = vec![0u32; partitions.len()];
            for (i, p) in partitions.values().iter().enumerate() {
                let slot = next.get_mut(p).expect("every buffered partition has a run");
                indices[*slot] = i as u32;
                *slot += 1;
            }
            let indices = UInt32Array::from(indices);
            columns
                .iter()
                .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<_, _>>()?
        };
        Ok(SortedRows { columns, starts })
    }
}

/// Buffered rows in (partition, offset) order.
pub(super) struct SortedRows {
    /// Partition, offset, timestamp, timestamp type, key, headers, value.
    columns: Vec<ArrayRef>,
    /// Each partition's run, in partition order: (partition, first row,
    /// run).
    pub(super) starts: Vec<(i32, usize, Run)>,
}

impl SortedRows {
    /// Rows `range` in the file's schema: keys and values typed as
    /// `layout` says, every row appended at `append_time` (ms).
    pub(super) fn batch(
        &self,
        range: Range<usize>,
        append_time: i64,
        layout: &WriteLayout,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let n = range.len();
        let slice = |i: usize| self.columns[i].slice(range.start, n);
        let binary = |i: usize| -> Result<BinaryArray> {
            slice(i)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .cloned()
                .ok_or_else(|| StorageError::Corrupt("buffered payloads are not binary".into()))
        };
        let mut cols: Vec<ArrayRef> = vec![slice(0), slice(1), slice(2), slice(3)];
        payload_columns(&mut cols, layout.part(Part::Key), binary(4)?)?;
        cols.push(slice(5));
        payload_columns(&mut cols, layout.part(Part::Value), binary(6)?)?;
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
