//! Parquet segments: the on-disk form of a topic.
//!
//! A flush writes one file per topic, sorted by (partition, offset): a
//! partition's records are a run of rows of one row group (small partitions
//! of a flush share one), so a Fetch reads its run with ranged reads and an
//! engine prunes by the column statistics of `partition`, `offset`,
//! `timestamp` and `append_time`.
//!
//! `schema.rs` is the file schema (columns, field ids, what the footer says
//! about the file); `buffer.rs` holds a topic's records until a flush;
//! `write.rs` turns them into a file;
//! `read.rs` turns a file's rows back into Kafka batches.

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

mod buffer;
mod read;
mod schema;
mod write;

pub use buffer::TopicRows;

pub use read::{
    last_offset, offsets_and_timestamps, rebuild_batches, row_run, rows_below, visit_keys,
    RebuiltBatches,
};
pub use schema::{
    is_current_layout, last_offsets, raw_schema, rows_schema, topic_schema, FIELD_ID_KEY,
    LAST_OFFSETS_KEY,
};
pub use write::{
    write_file, write_partitions, SegmentFormat, WrittenFile, WrittenSegment,
    COMPACTED_ROW_GROUP_BYTES, FLUSH_ROW_GROUP_BYTES, MAX_TIMESTAMP_MS, SMALL_ROW_GROUP_BYTES,
};

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
        // Records arrive interleaved across partitions, as producers send
        // them; the file has them by (partition, offset).
        let count = |p: i32| if p == 150 { 12_000 } else { 3 };
        let mut parts = TopicRows::new();
        for i in 0..12_000 {
            for p in (0..300).rev().filter(|p| i < count(*p)) {
                parts.push(p, p as i64 * 100 + i, 1000 + i, 0, &rec(i));
            }
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
    fn a_gap_in_a_partitions_offsets_is_refused() {
        let mut parts = TopicRows::new();
        parts.push(0, 10, 1, 0, &rec(1));
        parts.push(1, 5, 1, 0, &rec(1));
        parts.push(0, 12, 1, 0, &rec(1));
        let err = write_file(parts, 5, SegmentFormat::default(), &WriteLayout::default())
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    }

    #[test]
    fn write_then_rebuild_is_byte_exact_per_record() {
        let mut parts = TopicRows::new();
        for p in [1, 0] {
            for i in 0..50 {
                parts.push(p, 10 + i, 1000 + i, 0, &rec(i));
            }
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
        let rebuilt = rebuild_batches(
            &batches[0],
            &ReadLayout::default(),
            20,
            1 << 20,
            true,
            false,
            3,
        )
        .unwrap();
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
        let mut parts = TopicRows::new();
        for p in [0, 1] {
            for i in 0..10_000 {
                parts.push(p, i, 1000 + i, 0, &rec(i));
            }
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
            64 * 1024,
            false,
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
    fn rebuild_stays_within_max_bytes_beyond_it_only_for_a_first_record() {
        let mut parts = TopicRows::new();
        for i in 0..100 {
            parts.push(0, i, i, 0, &rec(1));
        }
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
        // A limit below one record: the first record all the same, alone.
        let small = rebuild_batches(&b[0], &ReadLayout::default(), 0, 1, true, false, 0).unwrap();
        assert_eq!(small.bytes.len(), 1);
        assert_eq!(small.next_offset, 1);
        // Unless something was read before it: then nothing.
        let none = rebuild_batches(&b[0], &ReadLayout::default(), 0, 1, false, false, 0).unwrap();
        assert!(none.bytes.is_empty() && none.first_offset.is_none());
        // Any limit above one record is never exceeded, and what is
        // left out would not have fitted.
        let one = small.size;
        for limit in [one, one + 1, 3 * one - 1, 3 * one, 10 * one + 7] {
            let r =
                rebuild_batches(&b[0], &ReadLayout::default(), 0, limit, true, false, 0).unwrap();
            assert!(r.size <= limit, "{} > {limit}", r.size);
            let more = rebuild_batches(
                &b[0],
                &ReadLayout::default(),
                0,
                limit + one,
                true,
                false,
                0,
            )
            .unwrap();
            assert!(
                more.next_offset > r.next_offset,
                "room for one more at {limit}"
            );
        }
    }
}
