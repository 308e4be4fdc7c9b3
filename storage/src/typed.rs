//! Typed columns: how the keys and values of a schema topic are stored.
//!
//! A topic whose `<topic>-value` (or `-key`) subject has protobuf versions
//! stores that part of each record as a struct column shaped by the
//! message (see [`floe_schema::columns`]), beside a `<part>_raw` binary
//! column and the record's schema id. At a flush every value is decoded
//! into the struct and written back with [`RowEncoder`]; where that gives
//! exactly the producer's bytes (the wire prefix included) the raw column
//! is null, otherwise it keeps the producer's bytes. Kafka reads return the
//! raw bytes where present, else the prefix and the re-encoded row: byte
//! for byte what was produced, either way.
//!
//! Which message: the one `floe.validate.coerce` names, else the message
//! of the first record with a valid prefix; it is kept in the metadata
//! store with the Iceberg field ids of every column path, so ids stay
//! stable across schema versions. The columns of a flush follow the newest
//! live version of the subject that has the message; records of older
//! versions decode with it (protobuf is read by field number).
//!
//! A file names its [`PayloadLayout`] (the descriptors that shaped its
//! columns and each schema id's wire prefix) by a content hash in its
//! metadata; the layout itself lives in the metadata store, so a file stays
//! readable after its schema is deleted from the registry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::builder::{BinaryBuilder, Int32Builder};
use arrow_array::{Array, BinaryArray, Int32Array, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use base64::Engine as _;
use floe_schema::columns::{FieldIds, FIELD_ID_KEY};
use floe_schema::prost_reflect::{DescriptorPool, MessageDescriptor};
use floe_schema::typed::{Mismatch, RowEncoder, TypedBuilder};
use floe_schema::wire::{encode_prefix, parse_prefix};
use floe_schema::CompiledSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::columns::field_id;
use crate::error::{Result, StorageError};
use crate::meta::MetadataStore;
use crate::sync::lock;

/// The part of a record a layout types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// The record key (`<topic>-key`).
    Key,
    /// The record value (`<topic>-value`).
    Value,
}

impl Part {
    /// Both parts, in column order.
    pub const ALL: [Part; 2] = [Part::Key, Part::Value];

    /// The registry subject of this part of `topic` (TopicNameStrategy).
    pub fn subject(self, topic: &str) -> String {
        match self {
            Part::Key => format!("{topic}-key"),
            Part::Value => format!("{topic}-value"),
        }
    }

    /// The column: binary in raw files, the struct in typed ones.
    pub fn column(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }

    /// The producer's bytes where the typed columns do not re-encode them.
    pub fn raw_column(self) -> &'static str {
        match self {
            Part::Key => "key_raw",
            Part::Value => "value_raw",
        }
    }

    /// The schema id of each record.
    pub fn schema_id_column(self) -> &'static str {
        match self {
            Part::Key => "key_schema_id",
            Part::Value => "schema_id",
        }
    }

    /// The field id of the bytes column: `key`/`value` of raw files keep
    /// it as `key_raw`/`value_raw` (an Iceberg rename), so rows written
    /// before the topic had a schema stay in the table.
    pub fn raw_field_id(self) -> i32 {
        match self {
            Part::Key => field_id::KEY,
            Part::Value => field_id::VALUE,
        }
    }

    /// The file metadata key naming the layout.
    pub fn metadata_key(self) -> &'static str {
        match self {
            Part::Key => "floe.key.layout",
            Part::Value => "floe.value.layout",
        }
    }
}

/// A subject's live protobuf versions, oldest first: (schema id, compiled).
pub type Versions = Vec<(i32, Arc<CompiledSchema>)>;

/// Where the storage finds protobuf schemas: the broker's registry.
pub trait SchemaSource: Send + Sync {
    /// The live protobuf versions of `subject`.
    fn protobuf_versions(&self, subject: &str) -> Versions;
}

/// What the metadata store keeps per topic about its typed columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicColumns {
    /// The message values are stored as.
    #[serde(default)]
    pub value_message: Option<String>,
    /// The message keys are stored as.
    #[serde(default)]
    pub key_message: Option<String>,
    /// Field ids of every column path ever written.
    pub ids: FieldIds,
}

impl Default for TopicColumns {
    fn default() -> Self {
        TopicColumns {
            value_message: None,
            key_message: None,
            ids: FieldIds::starting_after(field_id::LAST),
        }
    }
}

impl TopicColumns {
    /// The message of `part`, once chosen.
    pub fn message(&self, part: Part) -> Option<&String> {
        match part {
            Part::Key => self.key_message.as_ref(),
            Part::Value => self.value_message.as_ref(),
        }
    }

    /// Chooses the message of `part`.
    pub fn set_message(&mut self, part: Part, message: String) {
        match part {
            Part::Key => self.key_message = Some(message),
            Part::Value => self.value_message = Some(message),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct LayoutBody {
    message: String,
    /// The schema's descriptor pool (a FileDescriptorSet), base64.
    descriptors: String,
    /// Message indexes of the message in each schema id.
    indexes: BTreeMap<i32, Vec<i32>>,
}

/// What turns a file's typed columns back into the producers' bytes.
#[derive(Debug)]
pub struct PayloadLayout {
    /// Content hash, named in the file metadata.
    pub id: String,
    /// The message, in the schema that shaped the columns.
    pub message: MessageDescriptor,
    /// Canonical wire prefix of the message, per schema id.
    prefixes: HashMap<i32, (Vec<i32>, Vec<u8>)>,
    /// The stored form.
    pub body: Vec<u8>,
}

impl PayloadLayout {
    /// The layout of `message` as `pool` defines it, for records of the
    /// schema ids in `indexes` (each with the message's indexes there).
    pub fn build(
        pool: &DescriptorPool,
        message: &MessageDescriptor,
        indexes: BTreeMap<i32, Vec<i32>>,
    ) -> Result<PayloadLayout> {
        let body = LayoutBody {
            message: message.full_name().to_string(),
            descriptors: base64::engine::general_purpose::STANDARD.encode(pool.encode_to_vec()),
            indexes,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| StorageError::Corrupt(format!("layout encoding: {e}")))?;
        let digest = sha2::Sha256::digest(&body);
        let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self::decode(&id, body)
    }

    /// A stored layout.
    pub fn decode(id: &str, body: Vec<u8>) -> Result<PayloadLayout> {
        let corrupt = |what: String| StorageError::Corrupt(format!("layout {id}: {what}"));
        let parsed: LayoutBody =
            serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&parsed.descriptors)
            .map_err(|e| corrupt(e.to_string()))?;
        let pool = DescriptorPool::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        let message = pool
            .get_message_by_name(&parsed.message)
            .ok_or_else(|| corrupt(format!("no message {}", parsed.message)))?;
        let prefixes = parsed
            .indexes
            .into_iter()
            .map(|(id, ix)| {
                let prefix = encode_prefix(id, &ix);
                (id, (ix, prefix))
            })
            .collect();
        Ok(PayloadLayout {
            id: id.to_string(),
            message,
            prefixes,
            body,
        })
    }
}

/// A typed part as a flush writes it: the layout and the columns' fields.
#[derive(Debug, Clone)]
pub struct TypedPart {
    /// The layout.
    pub layout: Arc<PayloadLayout>,
    /// The struct column (with its field id).
    pub column: Field,
    /// The schema id column (with its field id).
    pub schema_id: Field,
}

impl TypedPart {
    /// The typed columns of `message` under `part`, ids from `ids`; None
    /// for a message without fields (Parquet has no empty groups).
    pub fn new(part: Part, layout: Arc<PayloadLayout>, ids: &mut FieldIds) -> Option<TypedPart> {
        let fields = floe_schema::columns::message_fields(&layout.message, part.column(), ids);
        if fields.is_empty() {
            return None;
        }
        let with_id = |f: Field, id: i32| {
            f.with_metadata(HashMap::from([(FIELD_ID_KEY.to_string(), id.to_string())]))
        };
        let column = with_id(
            Field::new(part.column(), DataType::Struct(fields), true),
            ids.id(part.column()),
        );
        let schema_id = with_id(
            Field::new(part.schema_id_column(), DataType::Int32, true),
            ids.id(&format!("{}.schema_id", part.column())),
        );
        Some(TypedPart {
            layout,
            column,
            schema_id,
        })
    }

    fn fields(&self) -> Fields {
        match self.column.data_type() {
            DataType::Struct(f) => f.clone(),
            _ => Fields::empty(),
        }
    }
}

/// How a flush writes each part: typed, or raw bytes (None).
#[derive(Debug, Clone, Default)]
pub struct WriteLayout {
    /// Keys.
    pub key: Option<TypedPart>,
    /// Values.
    pub value: Option<TypedPart>,
}

impl WriteLayout {
    /// The typed part of `part`.
    pub fn part(&self, part: Part) -> Option<&TypedPart> {
        match part {
            Part::Key => self.key.as_ref(),
            Part::Value => self.value.as_ref(),
        }
    }
}

/// The layouts a file was written with, for reading it back.
#[derive(Debug, Clone, Default)]
pub struct ReadLayout {
    /// Keys.
    pub key: Option<Arc<PayloadLayout>>,
    /// Values.
    pub value: Option<Arc<PayloadLayout>>,
}

impl ReadLayout {
    /// The layout of `part`.
    pub fn part(&self, part: Part) -> Option<&Arc<PayloadLayout>> {
        match part {
            Part::Key => self.key.as_ref(),
            Part::Value => self.value.as_ref(),
        }
    }
}

/// One part of a batch as typed columns.
pub struct SplitColumns {
    /// The struct column.
    pub typed: StructArray,
    /// The producer's bytes where the struct does not re-encode them.
    pub raw: BinaryArray,
    /// Each record's schema id (null for null values and values without a
    /// valid prefix).
    pub schema_ids: Int32Array,
}

/// Splits `values` into typed columns. Never fails on a record: one that
/// does not decode, names another message or re-encodes differently keeps
/// its bytes in the raw column.
pub fn split(part: &TypedPart, values: &BinaryArray) -> Result<SplitColumns> {
    let layout = &part.layout;
    let mismatch = |e: Mismatch| StorageError::Corrupt(format!("typed columns: {e}"));
    let mut builder = TypedBuilder::new(&layout.message, &part.fields()).map_err(mismatch)?;
    let n = values.len();
    let mut ids = Int32Builder::with_capacity(n);
    // Per row: where the payload starts, if the row is typed and its
    // prefix is the canonical one.
    let mut typed_at: Vec<Option<usize>> = Vec::with_capacity(n);
    for i in 0..n {
        if values.is_null(i) {
            builder.push(None);
            ids.append_null();
            typed_at.push(None);
            continue;
        }
        let v = values.value(i);
        let Ok(prefix) = parse_prefix(v) else {
            builder.push(None);
            ids.append_null();
            typed_at.push(None);
            continue;
        };
        ids.append_value(prefix.schema_id);
        match layout.prefixes.get(&prefix.schema_id) {
            Some((indexes, canonical)) if *indexes == prefix.message_indexes => {
                let held = builder.push(Some(&v[prefix.len..]));
                let exact_prefix = canonical.as_slice() == &v[..prefix.len];
                typed_at.push((held && exact_prefix).then_some(prefix.len));
            }
            _ => {
                builder.push(None);
                typed_at.push(None);
            }
        }
    }
    let typed = builder.finish();
    let encoder = RowEncoder::new(&layout.message, &typed).map_err(mismatch)?;
    let mut raw = BinaryBuilder::with_capacity(n, 0);
    let mut buf = Vec::new();
    for (i, at) in typed_at.iter().enumerate() {
        if values.is_null(i) {
            raw.append_null();
            continue;
        }
        let v = values.value(i);
        let exact = at.is_some_and(|len| {
            buf.clear();
            matches!(encoder.encode(i, &mut buf), Ok(true)) && buf.as_slice() == &v[len..]
        });
        if exact {
            raw.append_null();
        } else {
            raw.append_value(v);
        }
    }
    Ok(SplitColumns {
        typed,
        raw: raw.finish(),
        schema_ids: ids.finish(),
    })
}

/// Reads one part of a typed batch back as the producers' bytes.
pub struct TypedReader<'a> {
    layout: &'a PayloadLayout,
    encoder: RowEncoder<'a>,
    raw: &'a BinaryArray,
    schema_ids: &'a Int32Array,
}

impl<'a> TypedReader<'a> {
    /// A reader of the columns as [`split`] wrote them with `layout`.
    pub fn new(
        layout: &'a PayloadLayout,
        typed: &'a StructArray,
        raw: &'a BinaryArray,
        schema_ids: &'a Int32Array,
    ) -> Result<TypedReader<'a>> {
        let encoder = RowEncoder::new(&layout.message, typed)
            .map_err(|e| StorageError::Corrupt(format!("typed columns: {e}")))?;
        Ok(TypedReader {
            layout,
            encoder,
            raw,
            schema_ids,
        })
    }

    /// Appends row `i`'s bytes to `out`; false for a null.
    pub fn write(&self, i: usize, out: &mut Vec<u8>) -> Result<bool> {
        if !self.raw.is_null(i) {
            out.extend_from_slice(self.raw.value(i));
            return Ok(true);
        }
        if self.schema_ids.is_null(i) {
            return Ok(false);
        }
        let id = self.schema_ids.value(i);
        let (_, prefix) = self.layout.prefixes.get(&id).ok_or_else(|| {
            StorageError::Corrupt(format!(
                "typed row names schema id {id}, which layout {} lacks",
                self.layout.id
            ))
        })?;
        out.extend_from_slice(prefix);
        match self.encoder.encode(i, out) {
            Ok(true) => Ok(true),
            Ok(false) => Err(StorageError::Corrupt(format!(
                "typed row {i} is null but has schema id {id} and no raw bytes"
            ))),
            Err(e) => Err(StorageError::Corrupt(format!("typed columns: {e}"))),
        }
    }
}

/// The typed-column state of every topic, and the layouts files name:
/// what a flush writes with, and what a read needs to give the bytes back.
pub struct Layouts {
    meta: Arc<dyn MetadataStore>,
    source: OnceLock<Arc<dyn SchemaSource>>,
    topics: tokio::sync::Mutex<HashMap<String, TopicEntry>>,
    stored: Mutex<HashMap<String, Arc<PayloadLayout>>>,
}

struct TopicEntry {
    state: TopicColumns,
    /// Built parts by (part, live schema ids, message).
    parts: HashMap<(Part, Vec<i32>, String), TypedPart>,
}

impl Layouts {
    /// Layouts kept in `meta`; every topic is raw until
    /// [`Layouts::set_source`] names where schemas come from.
    pub fn new(meta: Arc<dyn MetadataStore>) -> Layouts {
        Layouts {
            meta,
            source: OnceLock::new(),
            topics: tokio::sync::Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
        }
    }

    /// Where schemas come from (set once, at startup).
    pub fn set_source(&self, source: Arc<dyn SchemaSource>) {
        let _ = self.source.set(source);
    }

    /// Forgets a deleted topic's state (the store drops it with the topic).
    pub async fn forget(&self, topic: &str) {
        self.topics.lock().await.remove(topic);
    }

    /// How a flush of `topic` writes its keys and values. `coerce` is the
    /// topic's `floe.validate.coerce` (the message values are wrapped in);
    /// `first_payloads` gives each partition's first buffered key or value,
    /// which names the message when nothing else has yet.
    pub async fn write_layout<'a>(
        &self,
        topic: &str,
        coerce: Option<Option<String>>,
        first_payloads: &(dyn Fn(Part) -> Vec<&'a [u8]> + Sync),
    ) -> Result<WriteLayout> {
        let mut out = WriteLayout::default();
        let Some(source) = self.source.get() else {
            return Ok(out);
        };
        // Most topics have no schema: they cost one registry lookup per
        // part and flush, nothing more.
        let parts: Vec<(Part, Versions)> = Part::ALL
            .iter()
            .map(|p| (*p, source.protobuf_versions(&p.subject(topic))))
            .filter(|(_, versions)| !versions.is_empty())
            .collect();
        if parts.is_empty() {
            return Ok(out);
        }
        let mut topics = self.topics.lock().await;
        if !topics.contains_key(topic) {
            let state = match self.meta.topic_columns(topic).await? {
                Some(body) => serde_json::from_str(&body)
                    .map_err(|e| StorageError::Corrupt(format!("typed columns of {topic}: {e}")))?,
                None => TopicColumns::default(),
            };
            let entry = TopicEntry {
                state,
                parts: HashMap::new(),
            };
            topics.insert(topic.to_string(), entry);
        }
        let Some(entry) = topics.get_mut(topic) else {
            return Ok(out);
        };
        let mut changed = false;
        for (part, versions) in parts {
            let message = match entry.state.message(part) {
                Some(m) => m.clone(),
                None => {
                    let named = match (part, &coerce) {
                        (Part::Value, Some(Some(m))) => Some(m.clone()),
                        (Part::Value, Some(None)) => first_message(&versions),
                        _ => None,
                    };
                    let Some(m) =
                        named.or_else(|| message_of_first(&versions, first_payloads(part)))
                    else {
                        continue;
                    };
                    entry.state.set_message(part, m.clone());
                    changed = true;
                    m
                }
            };
            let ids: Vec<i32> = versions.iter().map(|(id, _)| *id).collect();
            let key = (part, ids, message.clone());
            if let Some(t) = entry.parts.get(&key) {
                set_part(&mut out, part, t.clone());
                continue;
            }
            // The newest version that has the message shapes the columns.
            let Some((schema, desc)) = versions
                .iter()
                .rev()
                .find_map(|(_, s)| s.pool.get_message_by_name(&message).map(|d| (s.clone(), d)))
            else {
                continue;
            };
            let indexes: BTreeMap<i32, Vec<i32>> = versions
                .iter()
                .filter_map(|(id, s)| {
                    let d = s.pool.get_message_by_name(&message)?;
                    Some((*id, s.indexes_of(&d)?))
                })
                .collect();
            let layout = Arc::new(PayloadLayout::build(&schema.pool, &desc, indexes)?);
            let before = entry.state.ids.last_id();
            let Some(typed) = TypedPart::new(part, layout.clone(), &mut entry.state.ids) else {
                continue;
            };
            changed |= entry.state.ids.last_id() != before;
            self.meta
                .save_column_layout(&layout.id, &layout.body)
                .await?;
            lock(&self.stored).insert(layout.id.clone(), layout);
            entry.parts.insert(key, typed.clone());
            set_part(&mut out, part, typed);
        }
        if changed {
            // Before any file uses the ids: they must never be handed out
            // twice.
            let body = serde_json::to_string(&entry.state)
                .map_err(|e| StorageError::Corrupt(format!("typed columns: {e}")))?;
            self.meta.save_topic_columns(topic, &body).await?;
        }
        Ok(out)
    }

    /// The layouts a file with `schema` was written with.
    pub async fn read_layout(&self, schema: &Schema) -> Result<ReadLayout> {
        let mut out = ReadLayout::default();
        for (part, id) in layout_ids(schema) {
            let layout = self.layout(&id).await?;
            match part {
                Part::Key => out.key = Some(layout),
                Part::Value => out.value = Some(layout),
            }
        }
        Ok(out)
    }

    async fn layout(&self, id: &str) -> Result<Arc<PayloadLayout>> {
        if let Some(l) = lock(&self.stored).get(id) {
            return Ok(l.clone());
        }
        let body = self.meta.column_layout(id).await?.ok_or_else(|| {
            StorageError::Corrupt(format!(
                "a file names typed-column layout {id}, which is unknown"
            ))
        })?;
        let layout = Arc::new(PayloadLayout::decode(id, body)?);
        lock(&self.stored).insert(id.to_string(), layout.clone());
        Ok(layout)
    }
}

fn set_part(out: &mut WriteLayout, part: Part, typed: TypedPart) {
    match part {
        Part::Key => out.key = Some(typed),
        Part::Value => out.value = Some(typed),
    }
}

/// The layout ids a file's schema names, by part.
pub fn layout_ids(schema: &Schema) -> Vec<(Part, String)> {
    Part::ALL
        .iter()
        .filter_map(|p| {
            schema
                .metadata()
                .get(p.metadata_key())
                .map(|id| (*p, id.clone()))
        })
        .collect()
}

/// The first message of the newest version (what coercion wraps values in
/// when it names none).
fn first_message(versions: &[(i32, Arc<CompiledSchema>)]) -> Option<String> {
    let (_, s) = versions.last()?;
    s.file.messages().next().map(|m| m.full_name().to_string())
}

/// The message the first of `payloads` (the first buffered key or value
/// of each partition) with a valid prefix names.
fn message_of_first(
    versions: &[(i32, Arc<CompiledSchema>)],
    payloads: Vec<&[u8]>,
) -> Option<String> {
    payloads.into_iter().find_map(|payload| {
        let prefix = parse_prefix(payload).ok()?;
        let (_, schema) = versions.iter().find(|(id, _)| *id == prefix.schema_id)?;
        schema
            .message_at(&prefix.message_indexes)
            .map(|m| m.full_name().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_schema::compile;
    use floe_schema::prost_reflect::{DynamicMessage, Value};
    use prost::Message as _;

    const V1: &str = r#"syntax = "proto3"; package t;
        message Order { string id = 1; int64 qty = 2; repeated string tags = 3; map<string, int32> m = 4; }
        message Other { string x = 1; }"#;

    fn order(pool: &DescriptorPool, id: &str, qty: i64) -> Vec<u8> {
        let mut m = DynamicMessage::new(pool.get_message_by_name("t.Order").unwrap());
        m.set_field_by_name("id", Value::String(id.into()));
        m.set_field_by_name("qty", Value::I64(qty));
        m.set_field_by_name("tags", Value::List(vec![Value::String("a".into())]));
        m.encode_to_vec()
    }

    fn layout(schema_id: i32) -> (CompiledSchema, TypedPart) {
        let c = compile(V1, &[]).unwrap();
        let msg = c.pool.get_message_by_name("t.Order").unwrap();
        let indexes = BTreeMap::from([(schema_id, c.indexes_of(&msg).unwrap())]);
        let layout = Arc::new(PayloadLayout::build(&c.pool, &msg, indexes).unwrap());
        let mut ids = FieldIds::starting_after(field_id::LAST);
        let part = TypedPart::new(Part::Value, layout, &mut ids).unwrap();
        (c, part)
    }

    #[test]
    fn canonical_values_need_no_raw_bytes_and_others_keep_theirs() {
        let (c, part) = layout(7);
        let prefix = encode_prefix(7, &[0]);
        let with = |payload: &[u8]| [prefix.as_slice(), payload].concat();
        let canonical = with(&order(&c.pool, "a", 3));
        // Field 2 before field 1: same message, other bytes.
        let mut reordered = with(&[0x10, 0x03]);
        reordered.extend_from_slice(&[0x0a, 0x01, b'a']);
        // An unknown field 9.
        let unknown = with(&[0x48, 0x01]);
        // A prefix naming another message, and no prefix at all.
        let other = [encode_prefix(7, &[1]), vec![0x0a, 0x01, b'x']].concat();
        let garbage = b"not protobuf".to_vec();
        // A non-minimal prefix for the right message: [0] as count 1, index 0.
        let long_prefix = {
            let mut p = vec![0, 0, 0, 0, 7, 2, 0];
            p.extend(order(&c.pool, "b", 1));
            p
        };
        let values: Vec<Option<&[u8]>> = vec![
            Some(&canonical),
            None,
            Some(&reordered),
            Some(&unknown),
            Some(&other),
            Some(&garbage),
            Some(&long_prefix),
            Some(&prefix),
        ];
        let array = BinaryArray::from(values.clone());
        let split = split(&part, &array).unwrap();
        let raw_rows: Vec<bool> = (0..array.len()).map(|i| !split.raw.is_null(i)).collect();
        assert_eq!(
            raw_rows,
            [false, false, true, true, true, true, true, false]
        );
        // The reordered value still has its typed row.
        assert!(split.typed.is_valid(2));
        assert!(split.typed.is_null(4) && split.typed.is_null(5));
        assert_eq!(split.schema_ids.value(0), 7);
        assert!(split.schema_ids.is_null(5));
        let reader =
            TypedReader::new(&part.layout, &split.typed, &split.raw, &split.schema_ids).unwrap();
        for (i, want) in values.iter().enumerate() {
            let mut out = Vec::new();
            let present = reader.write(i, &mut out).unwrap();
            assert_eq!(present.then_some(out.as_slice()), *want, "row {i}");
        }
    }

    #[test]
    fn layouts_round_trip_through_their_stored_form() {
        let (_, part) = layout(3);
        let back = PayloadLayout::decode(&part.layout.id, part.layout.body.clone()).unwrap();
        assert_eq!(back.message.full_name(), "t.Order");
        assert_eq!(back.prefixes, part.layout.prefixes);
        let (_, again) = layout(3);
        assert_eq!(again.layout.id, part.layout.id);
        assert_ne!(layout(4).1.layout.id, part.layout.id);
    }
}
