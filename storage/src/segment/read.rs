//! Reading: the rows of a segment back into Kafka record batches, byte
//! for byte what the producer sent (offsets and leader epoch restamped).

use super::*;

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
/// `from_offset`, within `max_bytes`: a record that would not fit is left
/// for the next read, except the first when `at_least_one` (a fetch
/// returns at least one record whatever its limit, KIP-74), so a response
/// never exceeds the limit it was given otherwise. Batches are cut at
/// ~1 MiB and wherever the timestamp type changes. From the first row
/// taken on, offsets must go up by one (by at least one in a segment key
/// compaction thinned out, `gaps`): anything else is a corrupt row group,
/// refused rather than handed to a consumer as a gap.
pub fn rebuild_batches(
    batch: &RecordBatch,
    layout: &ReadLayout,
    from_offset: i64,
    max_bytes: usize,
    at_least_one: bool,
    gaps: bool,
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
        let in_order = if gaps {
            offset >= out.next_offset
        } else {
            offset == out.next_offset
        };
        if out.first_offset.is_some() && !in_order {
            return Err(StorageError::Corrupt(format!(
                "rows jump from offset {} to {offset}",
                out.next_offset - 1
            )));
        }
        let ts = timestamps.value(i);
        let ts_type = ts_types.value(i);
        if let Some(b) = &builder {
            if b.len() >= TARGET || ts_type != builder_type {
                let done = builder.take().expect("checked").finish(leader_epoch);
                out.size += done.len();
                out.bytes.push(done);
            }
        }
        hdrs.clear();
        for h in header_offsets[i] as usize..header_offsets[i + 1] as usize {
            hdrs.push((hkeys.value(h).as_bytes(), opt(hvals, h)));
        }
        let (key, value) = (keys.get(i, &mut key_buf)?, values.get(i, &mut value_buf)?);
        let (open, adds) = match &builder {
            Some(b) => (b.len(), b.record_len(offset, ts, key, value, &hdrs)),
            None => (0, BatchBuilder::single_record_len(key, value, &hdrs)),
        };
        let may_stop = !at_least_one || out.first_offset.is_some();
        if may_stop && out.size + open + adds > max_bytes {
            break;
        }
        out.first_offset.get_or_insert(offset);
        let b = builder.get_or_insert_with(|| {
            builder_type = ts_type;
            BatchBuilder::new(offset, ts, ts_type)
        });
        b.push(offset, ts, key, value, &hdrs);
        out.next_offset = offset + 1;
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

/// Visits each row of `batch` in order with its key (the producer's
/// bytes; None for a null key), whether its value is null (a tombstone)
/// and its append time in milliseconds: what key compaction decides by.
pub fn visit_keys(
    batch: &RecordBatch,
    layout: &ReadLayout,
    mut visit: impl FnMut(Option<&[u8]>, bool, i64),
) -> Result<()> {
    let keys = PayloadColumn::of(batch, Part::Key, layout)?;
    let value_is_null: Box<dyn Fn(usize) -> bool + '_> = match layout.part(Part::Value) {
        None => {
            let values = column::<BinaryArray>(batch, Part::Value.column())?;
            Box::new(move |i| values.is_null(i))
        }
        Some(_) => {
            let raw = column::<BinaryArray>(batch, Part::Value.raw_column())?;
            let ids = column::<Int32Array>(batch, Part::Value.schema_id_column())?;
            Box::new(move |i| raw.is_null(i) && ids.is_null(i))
        }
    };
    let append = Millis::of(batch, col::APPEND_TIME)?;
    let mut scratch = Vec::new();
    for i in 0..batch.num_rows() {
        let key = keys.get(i, &mut scratch)?;
        visit(key, value_is_null(i), append.value(i));
    }
    Ok(())
}

/// How many rows of `batches` (in offset order) lie below `offset`.
pub fn rows_below(batches: &[RecordBatch], offset: i64) -> Result<usize> {
    let mut below = 0;
    for b in batches {
        let offsets = column::<Int64Array>(b, col::OFFSET)?;
        let n = offsets.values().partition_point(|&o| o < offset);
        below += n;
        if n < b.num_rows() {
            break;
        }
    }
    Ok(below)
}

/// The offset of a batch of rows' last row, if it has rows.
pub fn last_offset(batch: &RecordBatch) -> Result<Option<i64>> {
    let offsets = column::<Int64Array>(batch, col::OFFSET)?;
    Ok((!offsets.is_empty()).then(|| offsets.value(offsets.len() - 1)))
}

/// (offset, timestamp) pairs of a row group, for ListOffsets by time.
pub fn offsets_and_timestamps(batch: &RecordBatch) -> Result<Vec<(i64, i64)>> {
    let offsets = column::<Int64Array>(batch, col::OFFSET)?;
    let timestamps = Millis::of(batch, col::TIMESTAMP)?;
    Ok((0..batch.num_rows())
        .map(|i| (offsets.value(i), timestamps.value(i)))
        .collect())
}
