//! The file schema: the Kafka columns with their Iceberg field ids, a
//! topic's typed columns, and what a file's footer says about the file.

use super::*;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow field metadata key Parquet writers turn into field ids.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata([(FIELD_ID_KEY.to_string(), id.to_string())].into())
}

pub(super) fn header_fields() -> Fields {
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

pub(super) fn header_item() -> Arc<Field> {
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

/// Footer key of a file with shared row groups: each partition's last
/// offset in it, as `partition:offset` pairs joined by commas.
pub const LAST_OFFSETS_KEY: &str = "floe.kafka.last.offsets";

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
