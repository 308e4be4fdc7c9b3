//! Protobuf messages as Arrow (and Iceberg) types: the typed columns a
//! schema topic's values are stored as (issue 5; the mapping comes first,
//! the conversion of values follows).
//!
//! | protobuf | Arrow / Iceberg |
//! |---|---|
//! | `double`, `float` | Float64, Float32 (double, float) |
//! | `int32`, `sint32`, `sfixed32` | Int32 (int) |
//! | `int64`, `sint64`, `sfixed64`, `uint32`, `fixed32` | Int64 (long) |
//! | `uint64`, `fixed64` | Decimal128(20, 0) (decimal(20, 0)): Iceberg has no unsigned long |
//! | `bool`, `string`, `bytes` | Boolean, Utf8, Binary |
//! | enum | Utf8: the value's name, or its number in decimal when the schema does not define it |
//! | message | Struct |
//! | `repeated` | List |
//! | `map` | Map |
//! | oneof members | ordinary nullable fields (at most one is set) |
//! | `google.protobuf.Timestamp` | Timestamp(µs, UTC) (timestamptz) |
//! | `google.protobuf.Duration` | Int64, microseconds |
//! | wrappers (`Int32Value`, …) | the wrapped type, nullable |
//! | `Struct`, `Value`, `ListValue`, `Any`, `Empty`, `FieldMask` | Utf8 holding the value's JSON |
//! | a message nested within itself more than [`RECURSION_LIMIT`] times, deeper than [`MAX_DEPTH`], or past [`MAX_COLUMNS`] fields | Binary: its protobuf bytes |
//!
//! Every field is nullable (a field removed by a later schema version is
//! null in the rows written after it), except list elements and map keys.
//!
//! Each column has an Iceberg field id, in the Arrow field's metadata under
//! [`FIELD_ID_KEY`] (which Parquet writes as the column's field id). Ids are
//! assigned by [`FieldIds`], keyed by the path of protobuf field *numbers*
//! and the kind of column, so a renamed field keeps its id (an Iceberg
//! rename), an added field or one whose type Iceberg cannot promote gets a
//! new one, and ids never change across schema versions as long as the
//! caller keeps the [`FieldIds`] (floe keeps them in the metadata store).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// The Arrow metadata key Parquet writes as a column's field id.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

/// How many times a message type may appear within itself on one path
/// before the deeper occurrence is stored as protobuf bytes.
pub const RECURSION_LIMIT: usize = 3;

/// How deep structs nest in the columns; a message deeper down is stored
/// as its protobuf bytes.
pub const MAX_DEPTH: usize = 32;

/// How many fields of nested messages become columns; past that, a
/// message is stored as its protobuf bytes (a schema whose messages hold
/// many fields of messages holding many fields would otherwise make
/// columns by the million).
pub const MAX_COLUMNS: usize = 10_000;

/// Iceberg field ids by column path, stable across schema versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldIds {
    ids: BTreeMap<String, i32>,
    last: i32,
}

impl FieldIds {
    /// Ids start after `reserved` (the table's own columns take 1..=reserved).
    pub fn starting_after(reserved: i32) -> FieldIds {
        FieldIds {
            ids: BTreeMap::new(),
            last: reserved,
        }
    }

    /// The id of `path`, assigning the next free one on first sight.
    pub fn id(&mut self, path: &str) -> i32 {
        if let Some(id) = self.ids.get(path) {
            return *id;
        }
        self.last += 1;
        self.ids.insert(path.to_string(), self.last);
        self.last
    }

    /// The highest id assigned (Iceberg's `last-column-id`).
    pub fn last_id(&self) -> i32 {
        self.last
    }
}

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata(HashMap::from([(FIELD_ID_KEY.to_string(), id.to_string())]))
}

/// The Arrow fields of a message's columns, under `path` (for example
/// `"value"`), with ids from `ids`.
pub fn message_fields(message: &MessageDescriptor, path: &str, ids: &mut FieldIds) -> Fields {
    let mut walk = Walk {
        stack: vec![message.full_name().to_string()],
        columns: message.fields().len(),
    };
    struct_fields(message, path, ids, &mut walk)
}

/// Where the mapping is: the messages expanded on the current path, and
/// how many fields have become columns so far.
struct Walk {
    stack: Vec<String>,
    columns: usize,
}

fn struct_fields(
    message: &MessageDescriptor,
    path: &str,
    ids: &mut FieldIds,
    walk: &mut Walk,
) -> Fields {
    message
        .fields()
        .map(|f| {
            let p = format!("{path}.{}", f.number());
            let dt = field_type(&f, &p, ids, walk);
            let id = typed_id(ids, &p, &dt);
            with_id(Field::new(f.name(), dt, true), id)
        })
        .collect()
}

/// The id of the column at `path` of type `dt`. The key names the kind
/// of column, so a field whose type changes across versions into one
/// Iceberg cannot promote to (a string becoming bytes, a scalar becoming a
/// message) gets a new id, and so a new column. Integer and floating
/// widths share a kind (int to long and float to double are Iceberg
/// promotions).
fn typed_id(ids: &mut FieldIds, path: &str, dt: &DataType) -> i32 {
    let kind = match dt {
        DataType::Int32 | DataType::Int64 => "int",
        DataType::Float32 | DataType::Float64 => "float",
        DataType::Decimal128(..) => "decimal",
        DataType::Boolean => "bool",
        DataType::Utf8 => "string",
        DataType::Binary => "bytes",
        DataType::Timestamp(..) => "timestamp",
        DataType::Struct(_) => "message",
        DataType::List(_) => "list",
        DataType::Map(..) => "map",
        _ => "other",
    };
    ids.id(&format!("{path}:{kind}"))
}

fn field_type(f: &FieldDescriptor, path: &str, ids: &mut FieldIds, walk: &mut Walk) -> DataType {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            return DataType::Binary;
        };
        let (Some(k), Some(v)) = (entry.get_field(1), entry.get_field(2)) else {
            return DataType::Binary;
        };
        let (kp, vp) = (format!("{path}.key"), format!("{path}.value"));
        let (kt, vt) = (
            value_type(&k.kind(), &kp, ids, walk),
            value_type(&v.kind(), &vp, ids, walk),
        );
        let (kid, vid) = (typed_id(ids, &kp, &kt), typed_id(ids, &vp, &vt));
        let key = with_id(Field::new("key", kt, false), kid);
        let value = with_id(Field::new("value", vt, true), vid);
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![key, value])),
            false,
        );
        return DataType::Map(Arc::new(entries), false);
    }
    if f.is_list() {
        let ep = format!("{path}.element");
        let et = value_type(&f.kind(), &ep, ids, walk);
        let eid = typed_id(ids, &ep, &et);
        let element = with_id(Field::new("element", et, false), eid);
        return DataType::List(Arc::new(element));
    }
    value_type(&f.kind(), path, ids, walk)
}

fn value_type(kind: &Kind, path: &str, ids: &mut FieldIds, walk: &mut Walk) -> DataType {
    match kind {
        Kind::Double => DataType::Float64,
        Kind::Float => DataType::Float32,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => DataType::Int32,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
            DataType::Int64
        }
        Kind::Uint64 | Kind::Fixed64 => DataType::Decimal128(20, 0),
        Kind::Bool => DataType::Boolean,
        Kind::String | Kind::Enum(_) => DataType::Utf8,
        Kind::Bytes => DataType::Binary,
        Kind::Message(m) => message_type(m, path, ids, walk),
    }
}

fn message_type(
    m: &MessageDescriptor,
    path: &str,
    ids: &mut FieldIds,
    walk: &mut Walk,
) -> DataType {
    match m.full_name() {
        "google.protobuf.Timestamp" => {
            return DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "google.protobuf.Duration" => return DataType::Int64,
        "google.protobuf.DoubleValue" => return DataType::Float64,
        "google.protobuf.FloatValue" => return DataType::Float32,
        "google.protobuf.Int64Value" | "google.protobuf.UInt32Value" => return DataType::Int64,
        "google.protobuf.UInt64Value" => return DataType::Decimal128(20, 0),
        "google.protobuf.Int32Value" => return DataType::Int32,
        "google.protobuf.BoolValue" => return DataType::Boolean,
        "google.protobuf.StringValue" => return DataType::Utf8,
        "google.protobuf.BytesValue" => return DataType::Binary,
        "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.Any"
        | "google.protobuf.Empty"
        | "google.protobuf.FieldMask" => return DataType::Utf8,
        _ => {}
    }
    let seen = walk
        .stack
        .iter()
        .filter(|n| n.as_str() == m.full_name())
        .count();
    let fields = m.fields().len();
    if seen > RECURSION_LIMIT
        || fields == 0
        || walk.stack.len() >= MAX_DEPTH
        || walk.columns + fields > MAX_COLUMNS
    {
        // Too deep or too wide to expand (a schema decides, and may be
        // built to explode), or a message without fields (Parquet has no
        // empty groups): its bytes.
        return DataType::Binary;
    }
    walk.columns += fields;
    walk.stack.push(m.full_name().to_string());
    let fields = struct_fields(m, path, ids, walk);
    walk.stack.pop();
    DataType::Struct(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;

    fn depth_and_columns(fields: &Fields) -> (usize, usize) {
        let mut deepest = 0;
        let mut count = fields.len();
        for f in fields {
            if let DataType::Struct(inner) = f.data_type() {
                let (d, c) = depth_and_columns(inner);
                deepest = deepest.max(d);
                count += c;
            }
        }
        (deepest + 1, count)
    }

    #[test]
    fn deep_and_wide_schemas_map_to_bounded_columns() {
        // A chain of 300 message types, each holding the next.
        let mut chain = String::from("syntax = \"proto3\";\n");
        for i in 0..300 {
            chain += &format!("message M{i} {{ M{} next = 1; int32 x = 2; }}\n", i + 1);
        }
        chain += "message M300 { int32 x = 1; }\n";
        let c = compile(&chain, &[]).unwrap();
        let m = c.file.messages().next().unwrap();
        let cols = message_fields(&m, "value", &mut FieldIds::starting_after(10));
        let (depth, _) = depth_and_columns(&cols);
        assert_eq!(depth, MAX_DEPTH);
        // Ten levels of ten fields each of the next level: 10^10 paths.
        let mut wide = String::from("syntax = \"proto3\";\n");
        for i in 0..10 {
            let fields: String = (1..=10)
                .map(|n| format!("W{} f{n} = {n}; ", i + 1))
                .collect();
            wide += &format!("message W{i} {{ {fields} }}\n");
        }
        wide += "message W10 { int32 x = 1; }\n";
        let c = compile(&wide, &[]).unwrap();
        let m = c.file.messages().next().unwrap();
        let mut ids = FieldIds::starting_after(10);
        let cols = message_fields(&m, "value", &mut ids);
        let (_, count) = depth_and_columns(&cols);
        assert!(count <= MAX_COLUMNS, "{count}");
        assert!(ids.last_id() as usize <= MAX_COLUMNS + 10);
    }

    const V1: &str = r#"syntax = "proto3"; package t;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        import "google/protobuf/struct.proto";
        enum Kind { KIND_UNSPECIFIED = 0; A = 1; }
        message Node { string name = 1; repeated Node children = 2; }
        message Line { string sku = 1; uint64 qty = 2; }
        message Order {
          string id = 1;
          Kind kind = 2;
          repeated Line lines = 3;
          map<string, Line> by_sku = 4;
          google.protobuf.Timestamp at = 5;
          google.protobuf.Int32Value maybe = 6;
          google.protobuf.Struct extra = 7;
          oneof contact { string phone = 8; string email = 9; }
          Node tree = 10;
          fixed32 f = 11;
        }"#;

    fn id(f: &Field) -> i32 {
        f.metadata()[FIELD_ID_KEY].parse().unwrap()
    }

    #[test]
    fn messages_map_to_nested_arrow_types_with_ids() {
        let c = compile(V1, &[]).unwrap();
        let order = c.pool.get_message_by_name("t.Order").unwrap();
        let mut ids = FieldIds::starting_after(10);
        let fields = message_fields(&order, "value", &mut ids);
        let by_name = |n: &str| fields.iter().find(|f| f.name() == n).unwrap().clone();
        assert_eq!(by_name("id").data_type(), &DataType::Utf8);
        assert_eq!(id(&by_name("id")), 11);
        assert_eq!(by_name("kind").data_type(), &DataType::Utf8);
        assert_eq!(by_name("f").data_type(), &DataType::Int64);
        assert_eq!(
            by_name("at").data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(by_name("maybe").data_type(), &DataType::Int32);
        assert_eq!(by_name("extra").data_type(), &DataType::Utf8);
        assert!(by_name("phone").is_nullable() && by_name("email").is_nullable());
        let DataType::List(line) = by_name("lines").data_type().clone() else {
            panic!("lines is a list");
        };
        assert!(!line.is_nullable());
        let DataType::Struct(line_fields) = line.data_type() else {
            panic!("a line is a struct");
        };
        assert_eq!(line_fields[1].data_type(), &DataType::Decimal128(20, 0));
        assert!(matches!(
            by_name("by_sku").data_type(),
            DataType::Map(_, false)
        ));
        // The recursive tree is expanded a few levels (the outermost Node
        // and RECURSION_LIMIT Nodes within it), then kept as bytes.
        let mut t = by_name("tree").data_type().clone();
        let mut depth = 0;
        while let DataType::Struct(f) = t {
            let DataType::List(child) = f[1].data_type().clone() else {
                panic!("children is a list");
            };
            t = child.data_type().clone();
            depth += 1;
        }
        assert_eq!((depth, t), (RECURSION_LIMIT + 1, DataType::Binary));
        // Every id is unique.
        let mut all = Vec::new();
        fn walk(fields: &Fields, out: &mut Vec<i32>) {
            for f in fields {
                out.push(id(f));
                match f.data_type() {
                    DataType::Struct(inner) => walk(inner, out),
                    DataType::List(e) => walk(&Fields::from(vec![e.as_ref().clone()]), out),
                    DataType::Map(e, _) => {
                        if let DataType::Struct(kv) = e.data_type() {
                            walk(kv, out)
                        }
                    }
                    _ => {}
                }
            }
        }
        walk(&fields, &mut all);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(ids.last_id(), *all.last().unwrap());
    }

    #[test]
    fn ids_survive_renames_and_new_fields_get_new_ones() {
        let v1 = compile(V1, &[]).unwrap();
        let mut ids = FieldIds::starting_after(10);
        let before = message_fields(
            &v1.pool.get_message_by_name("t.Order").unwrap(),
            "value",
            &mut ids,
        );
        let v2 = compile(
            &V1.replace("string id = 1;", "string order_id = 1; string added = 12;"),
            &[],
        )
        .unwrap();
        let last = ids.last_id();
        let after = message_fields(
            &v2.pool.get_message_by_name("t.Order").unwrap(),
            "value",
            &mut ids,
        );
        let find = |fs: &Fields, n: &str| id(fs.iter().find(|f| f.name() == n).unwrap());
        assert_eq!(find(&before, "id"), find(&after, "order_id"));
        assert_eq!(find(&after, "added"), last + 1);
        assert_eq!(find(&before, "lines"), find(&after, "lines"));
        // A type Iceberg cannot promote to gets a new column; a wider
        // integer keeps its id.
        let v3 = compile(
            &V1.replace("string id = 1;", "bytes id = 1;")
                .replace("fixed32 f = 11;", "fixed64 f = 11;")
                .replace("Kind kind = 2;", "int64 kind = 2;"),
            &[],
        )
        .unwrap();
        let third = message_fields(
            &v3.pool.get_message_by_name("t.Order").unwrap(),
            "value",
            &mut ids,
        );
        assert!(find(&third, "id") > find(&after, "added"));
        assert_ne!(find(&third, "kind"), find(&before, "kind"));
        assert_ne!(
            find(&third, "f"),
            find(&before, "f"),
            "fixed64 is a decimal, not a long"
        );
        let v4 = compile(&V1.replace("fixed32 f = 11;", "sint32 f = 11;"), &[]).unwrap();
        let fourth = message_fields(
            &v4.pool.get_message_by_name("t.Order").unwrap(),
            "value",
            &mut ids,
        );
        assert_eq!(
            find(&fourth, "f"),
            find(&before, "f"),
            "int to long is a promotion"
        );
        let json = serde_json::to_string(&ids).unwrap();
        assert_eq!(serde_json::from_str::<FieldIds>(&json).unwrap(), ids);
    }
}
