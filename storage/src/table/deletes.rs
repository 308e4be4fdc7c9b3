//! Iceberg position-delete files: the rows of a data file the table must
//! not show although the Kafka log keeps them (the control records that
//! end transactions, the records of aborted ones).
//!
//! Each such data file gets one delete file of its own, next to it and
//! named after it (`<stem>.deletes.parquet`), written when the file enters
//! the table. Which rows a file hides never changes once it may enter the
//! table (every transaction it holds is decided), so the delete file is
//! written once, under a name a retried commit overwrites with the same
//! bytes, and goes when its data file goes: in the same snapshot, and from
//! the store when the data file is released.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use iceberg::spec::{DataContentType, DataFile, DataFileBuilder, DataFileFormat, Struct};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::error::{Result, StorageError};
use crate::segment::FIELD_ID_KEY;

/// Iceberg's reserved field id of a position delete's `file_path`.
const FILE_PATH_ID: i32 = 2147483546;
/// Iceberg's reserved field id of a position delete's `pos`.
const POS_ID: i32 = 2147483545;

/// How a delete file's name ends.
const SUFFIX: &str = ".deletes.parquet";

/// The object key of the delete file of the data file at `data_key`.
pub fn deletes_key(data_key: &str) -> String {
    format!("{}{SUFFIX}", data_key.trim_end_matches(".parquet"))
}

/// The data file a delete file belongs to, if `key` names one.
pub fn data_key_of(key: &str) -> Option<String> {
    key.strip_suffix(SUFFIX)
        .map(|stem| format!("{stem}.parquet"))
}

/// A position-delete Parquet file hiding rows `positions` (sorted) of the
/// data file at `data_uri`.
pub(super) fn encode(data_uri: &str, positions: &[i64]) -> Result<Bytes> {
    let field = |name: &str, ty: DataType, id: i32| {
        Field::new(name, ty, false)
            .with_metadata([(FIELD_ID_KEY.to_string(), id.to_string())].into())
    };
    let schema = Arc::new(Schema::new(vec![
        field("file_path", DataType::Utf8, FILE_PATH_ID),
        field("pos", DataType::Int64, POS_ID),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![data_uri; positions.len()])),
            Arc::new(Int64Array::from(positions.to_vec())),
        ],
    )?;
    let mut out = Vec::new();
    let props = WriterProperties::builder().build();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// The manifest entry of a delete file at `uri` of `size` bytes hiding
/// `count` rows of the data file at `data_uri`, in that file's table
/// partition.
pub(super) fn entry(
    uri: &str,
    size: u64,
    count: u64,
    data_uri: &str,
    partition: Struct,
) -> Result<DataFile> {
    DataFileBuilder::default()
        .content(DataContentType::PositionDeletes)
        .file_path(uri.to_string())
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(0)
        .record_count(count)
        .file_size_in_bytes(size)
        .referenced_data_file(Some(data_uri.to_string()))
        .build()
        .map_err(|e| StorageError::Corrupt(format!("delete file {uri}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_file_is_named_after_its_data_file_and_back() {
        let data = "t/data/day=3/0000000000001-ab.parquet";
        let deletes = deletes_key(data);
        assert_eq!(deletes, "t/data/day=3/0000000000001-ab.deletes.parquet");
        assert_eq!(data_key_of(&deletes).as_deref(), Some(data));
        assert_eq!(data_key_of(data), None);
    }

    #[test]
    fn a_delete_file_holds_the_path_and_positions_with_iceberg_field_ids() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let bytes = encode("file:///d/x.parquet", &[3, 7, 8]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let schema = reader.schema().clone();
        let ids: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.metadata()[FIELD_ID_KEY].as_str())
            .collect();
        assert_eq!(ids, vec!["2147483546", "2147483545"]);
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let pos = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(pos.values(), &[3, 7, 8]);
    }
}
