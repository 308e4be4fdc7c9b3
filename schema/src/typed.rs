//! Protobuf values as typed columns, and back to the exact bytes.
//!
//! [`TypedBuilder`] decodes protobuf payloads (the bytes after the wire
//! prefix) into Arrow arrays shaped by [`crate::columns::message_fields`];
//! [`RowEncoder`] writes a row of those arrays back as protobuf bytes. The
//! encoding is the canonical one of protobuf's reference implementations:
//! fields in number order, implicit-presence fields only when not zero,
//! repeated scalars packed, map entries with both key and value, in the
//! order the producer sent them. A payload encoded that way comes back
//! byte for byte; any other (unknown fields, fields out of order, an
//! explicit zero, unpacked lists, non-minimal varints, a duplicated field)
//! decodes to the same typed values but re-encodes differently, and the
//! caller keeps the producer's bytes beside the row (see
//! [`TypedBuilder::finish`], which says which rows need that).
//!
//! Protobuf semantics on decode: the last occurrence of a singular field
//! wins, occurrences of a singular message merge, the last member of a
//! oneof clears the others, absent implicit-presence fields read as zero,
//! absent presence fields as null.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, MapArray, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, Fields};
use prost::Message as _;
use prost_reflect::{DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use crate::scan::{self, write_varint, zigzag32, zigzag64, Malformed, Scanner, WireValue};

/// Why a row cannot be written from its arrays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("typed columns do not match the message: {0}")]
pub struct Mismatch(pub String);

fn mismatch(what: impl Into<String>) -> Mismatch {
    Mismatch(what.into())
}

/// How a message-typed field is stored when it is not a struct.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Special {
    Timestamp,
    Duration,
    Wrapper,
    Json,
    Bytes,
}

fn special(m: &MessageDescriptor, dt: &DataType) -> Option<Special> {
    Some(match m.full_name() {
        "google.protobuf.Timestamp" => Special::Timestamp,
        "google.protobuf.Duration" => Special::Duration,
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => Special::Wrapper,
        "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.Any"
        | "google.protobuf.Empty"
        | "google.protobuf.FieldMask" => Special::Json,
        _ if matches!(dt, DataType::Binary) => Special::Bytes,
        _ => return None,
    })
}

/// A scalar read off the wire, widened to what its column holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar<'a> {
    Bool(bool),
    I32(i32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Enum(i32),
}

fn scalar<'a>(kind: &Kind, w: WireValue<'a>) -> Result<Scalar<'a>, Malformed> {
    Ok(match (kind, w) {
        (Kind::Bool, WireValue::Varint(v)) => Scalar::Bool(v != 0),
        (Kind::Int32, WireValue::Varint(v)) => Scalar::I32(v as i32),
        (Kind::Sint32, WireValue::Varint(v)) => Scalar::I32(zigzag32(v)),
        (Kind::Sfixed32, WireValue::Fixed32(v)) => Scalar::I32(v as i32),
        (Kind::Int64, WireValue::Varint(v)) => Scalar::I64(v as i64),
        (Kind::Sint64, WireValue::Varint(v)) => Scalar::I64(zigzag64(v)),
        (Kind::Sfixed64, WireValue::Fixed64(v)) => Scalar::I64(v as i64),
        (Kind::Uint32, WireValue::Varint(v)) => Scalar::I64(i64::from(v as u32)),
        (Kind::Fixed32, WireValue::Fixed32(v)) => Scalar::I64(i64::from(v)),
        (Kind::Uint64, WireValue::Varint(v)) | (Kind::Fixed64, WireValue::Fixed64(v)) => {
            Scalar::U64(v)
        }
        (Kind::Float, WireValue::Fixed32(v)) => Scalar::F32(f32::from_bits(v)),
        (Kind::Double, WireValue::Fixed64(v)) => Scalar::F64(f64::from_bits(v)),
        (Kind::String, WireValue::Len(b)) => {
            Scalar::Str(std::str::from_utf8(b).map_err(|_| Malformed)?)
        }
        (Kind::Bytes, WireValue::Len(b)) => Scalar::Bytes(b),
        (Kind::Enum(_), WireValue::Varint(v)) => Scalar::Enum(v as i32),
        _ => return Err(Malformed),
    })
}

fn zero(kind: &Kind) -> Scalar<'static> {
    match kind {
        Kind::Bool => Scalar::Bool(false),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Scalar::I32(0),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
            Scalar::I64(0)
        }
        Kind::Uint64 | Kind::Fixed64 => Scalar::U64(0),
        Kind::Float => Scalar::F32(0.0),
        Kind::Double => Scalar::F64(0.0),
        Kind::String => Scalar::Str(""),
        Kind::Bytes | Kind::Message(_) => Scalar::Bytes(&[]),
        Kind::Enum(_) => Scalar::Enum(0),
    }
}

fn packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// Reads a well-known message's fields 1 and 2 as varints (Timestamp and
/// Duration: seconds and nanos).
fn seconds_nanos(bytes: &[u8]) -> Result<(i64, i32), Malformed> {
    let (mut s, mut n) = (0i64, 0i32);
    for f in Scanner::new(bytes) {
        match f? {
            f if f.number == 1 => match f.value {
                WireValue::Varint(v) => s = v as i64,
                _ => return Err(Malformed),
            },
            f if f.number == 2 => match f.value {
                WireValue::Varint(v) => n = v as i32,
                _ => return Err(Malformed),
            },
            _ => {}
        }
    }
    Ok((s, n))
}

fn micros(bytes: &[u8]) -> Result<i64, Malformed> {
    let (s, n) = seconds_nanos(bytes)?;
    s.checked_mul(1_000_000)
        .and_then(|m| m.checked_add(i64::from(n) / 1000))
        .ok_or(Malformed)
}

/// One column's builder.
enum Col {
    Bool(BooleanBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    U64(Decimal128Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Enum(StringBuilder, EnumDescriptor),
    Timestamp(TimestampMicrosecondBuilder),
    Duration(Int64Builder),
    /// A wrapper message: its field 1 into the inner column.
    Wrapper(Box<Col>, FieldDescriptor),
    Json(StringBuilder, MessageDescriptor),
    Struct(Box<StructCol>),
    List(Box<ListCol>),
    Map(Box<MapCol>),
}

struct StructCol {
    fields: Fields,
    /// Descriptor and builder per Arrow field, in the Arrow order.
    children: Vec<(FieldDescriptor, Col)>,
    /// What decoding needs of each child's descriptor, looked up once.
    shapes: Vec<Shape>,
    /// How many oneofs the message has.
    oneofs: usize,
    /// Indexes into `children`, by field number (sorted).
    by_number: Vec<(u32, usize)>,
    nulls: NullBufferBuilder,
}

/// A child field's kind, oneof and presence.
struct Shape {
    kind: Kind,
    oneof: Option<usize>,
    presence: bool,
}

struct ListCol {
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    child: Col,
    kind: Kind,
}

struct MapCol {
    entries: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    entry: StructCol,
}

impl Col {
    fn new(f: &FieldDescriptor, kind: &Kind, dt: &DataType) -> Result<Col, Mismatch> {
        Ok(match (kind, dt) {
            (Kind::Message(m), DataType::Struct(fields)) => {
                Col::Struct(Box::new(StructCol::new(m, fields)?))
            }
            (Kind::Message(m), dt) => match special(m, dt) {
                Some(Special::Timestamp) => {
                    Col::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
                Some(Special::Duration) => Col::Duration(Int64Builder::new()),
                Some(Special::Wrapper) => {
                    let inner = m
                        .get_field(1)
                        .ok_or_else(|| mismatch(format!("{} has no field 1", m.full_name())))?;
                    Col::Wrapper(Box::new(Col::new(&inner, &inner.kind(), dt)?), inner)
                }
                Some(Special::Json) => Col::Json(StringBuilder::new(), m.clone()),
                Some(Special::Bytes) => Col::Bin(BinaryBuilder::new()),
                None => return Err(mismatch(format!("{}: {dt} for a message", f.name()))),
            },
            (Kind::Bool, DataType::Boolean) => Col::Bool(BooleanBuilder::new()),
            (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, DataType::Int32) => {
                Col::I32(Int32Builder::new())
            }
            (
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32,
                DataType::Int64,
            ) => Col::I64(Int64Builder::new()),
            (Kind::Uint64 | Kind::Fixed64, DataType::Decimal128(20, 0)) => {
                Col::U64(Decimal128Builder::new().with_data_type(DataType::Decimal128(20, 0)))
            }
            (Kind::Float, DataType::Float32) => Col::F32(Float32Builder::new()),
            (Kind::Double, DataType::Float64) => Col::F64(Float64Builder::new()),
            (Kind::String, DataType::Utf8) => Col::Str(StringBuilder::new()),
            (Kind::Bytes, DataType::Binary) => Col::Bin(BinaryBuilder::new()),
            (Kind::Enum(e), DataType::Utf8) => Col::Enum(StringBuilder::new(), e.clone()),
            _ => return Err(mismatch(format!("{}: {dt} for {kind:?}", f.name()))),
        })
    }

    /// A column for a field, list and map shapes included.
    fn for_field(f: &FieldDescriptor, dt: &DataType) -> Result<Col, Mismatch> {
        match dt {
            DataType::List(item) if f.is_list() => Ok(Col::List(Box::new(ListCol {
                field: item.clone(),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                child: Col::new(f, &f.kind(), item.data_type())?,
                kind: f.kind(),
            }))),
            DataType::Map(entries, _) if f.is_map() => {
                let (Kind::Message(entry), DataType::Struct(kv)) = (f.kind(), entries.data_type())
                else {
                    return Err(mismatch(format!("{}: map without entries", f.name())));
                };
                Ok(Col::Map(Box::new(MapCol {
                    entries: entries.clone(),
                    offsets: vec![0],
                    nulls: NullBufferBuilder::new(0),
                    entry: StructCol::new(&entry, kv)?,
                })))
            }
            _ if f.is_list() || f.is_map() => {
                Err(mismatch(format!("{}: {dt} for a repeated field", f.name())))
            }
            _ => Col::new(f, &f.kind(), dt),
        }
    }

    /// Appends a scalar (already checked against the column).
    fn push_scalar(&mut self, v: Scalar<'_>) {
        match (self, v) {
            (Col::Bool(b), Scalar::Bool(v)) => b.append_value(v),
            (Col::I32(b), Scalar::I32(v)) => b.append_value(v),
            (Col::I64(b), Scalar::I64(v)) => b.append_value(v),
            (Col::U64(b), Scalar::U64(v)) => b.append_value(i128::from(v)),
            (Col::F32(b), Scalar::F32(v)) => b.append_value(v),
            (Col::F64(b), Scalar::F64(v)) => b.append_value(v),
            (Col::Str(b), Scalar::Str(v)) => b.append_value(v),
            (Col::Bin(b), Scalar::Bytes(v)) => b.append_value(v),
            (Col::Enum(b, e), Scalar::Enum(n)) => match e.get_value(n) {
                Some(v) => b.append_value(v.name()),
                None => b.append_value(n.to_string()),
            },
            (col, _) => col.push_null(),
        }
    }

    /// Appends one occurrence of the field's value. With `apply` false
    /// nothing is appended: the value is only checked.
    fn push(
        &mut self,
        kind: &Kind,
        w: WireValue<'_>,
        apply: bool,
        depth: u32,
    ) -> Result<(), Malformed> {
        if depth > 100 {
            return Err(Malformed);
        }
        let bytes = || match w {
            WireValue::Len(b) => Ok(b),
            _ => Err(Malformed),
        };
        match self {
            Col::Struct(s) => s.push(bytes()?, apply, depth + 1),
            Col::Timestamp(b) => {
                let m = micros(bytes()?)?;
                if apply {
                    b.append_value(m);
                }
                Ok(())
            }
            Col::Duration(b) => {
                let m = micros(bytes()?)?;
                if apply {
                    b.append_value(m);
                }
                Ok(())
            }
            Col::Wrapper(inner, f) => {
                let mut v = zero(&f.kind());
                for field in Scanner::new(bytes()?) {
                    let field = field?;
                    if field.number == 1 {
                        v = scalar(&f.kind(), field.value)?;
                    }
                }
                if apply {
                    inner.push_scalar(v);
                }
                Ok(())
            }
            Col::Json(b, m) => {
                let msg = DynamicMessage::decode(m.clone(), bytes()?).map_err(|_| Malformed)?;
                let json = serde_json::to_string(&msg).map_err(|_| Malformed)?;
                if apply {
                    b.append_value(json);
                }
                Ok(())
            }
            Col::Bin(b) if matches!(kind, Kind::Message(_)) => {
                // A message kept as bytes: check it is one.
                let raw = bytes()?;
                for f in Scanner::new(raw) {
                    f?;
                }
                if apply {
                    b.append_value(raw);
                }
                Ok(())
            }
            col => {
                let v = scalar(kind, w)?;
                if apply {
                    col.push_scalar(v);
                }
                Ok(())
            }
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::I64(b) | Col::Duration(b) => b.append_null(),
            Col::U64(b) => b.append_null(),
            Col::F32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Str(b) | Col::Enum(b, _) | Col::Json(b, _) => b.append_null(),
            Col::Bin(b) => b.append_null(),
            Col::Timestamp(b) => b.append_null(),
            Col::Wrapper(inner, _) => inner.push_null(),
            Col::Struct(s) => s.push_null(),
            Col::List(l) => {
                l.offsets.push(*l.offsets.last().unwrap_or(&0));
                l.nulls.append_null();
            }
            Col::Map(m) => {
                m.offsets.push(*m.offsets.last().unwrap_or(&0));
                m.nulls.append_null();
            }
        }
    }

    /// Appends the value of an absent implicit-presence field.
    fn push_zero(&mut self, kind: &Kind) {
        self.push_scalar(zero(kind));
    }

    fn finish(self) -> ArrayRef {
        match self {
            Col::Bool(mut b) => Arc::new(b.finish()),
            Col::I32(mut b) => Arc::new(b.finish()),
            Col::I64(mut b) | Col::Duration(mut b) => Arc::new(b.finish()),
            Col::U64(mut b) => Arc::new(b.finish()),
            Col::F32(mut b) => Arc::new(b.finish()),
            Col::F64(mut b) => Arc::new(b.finish()),
            Col::Str(mut b) | Col::Enum(mut b, _) | Col::Json(mut b, _) => Arc::new(b.finish()),
            Col::Bin(mut b) => Arc::new(b.finish()),
            Col::Timestamp(mut b) => Arc::new(b.finish()),
            Col::Wrapper(inner, _) => inner.finish(),
            Col::Struct(s) => Arc::new(s.finish()),
            Col::List(mut l) => Arc::new(ListArray::new(
                l.field,
                OffsetBuffer::new(ScalarBuffer::from(l.offsets)),
                l.child.finish(),
                l.nulls.finish(),
            )),
            Col::Map(mut m) => Arc::new(MapArray::new(
                m.entries,
                OffsetBuffer::new(ScalarBuffer::from(m.offsets)),
                m.entry.finish(),
                m.nulls.finish(),
                false,
            )),
        }
    }
}

impl StructCol {
    fn new(m: &MessageDescriptor, fields: &Fields) -> Result<StructCol, Mismatch> {
        let descs: Vec<FieldDescriptor> = m.fields().collect();
        if descs.len() != fields.len() {
            return Err(mismatch(format!(
                "{} has {} fields, its columns {}",
                m.full_name(),
                descs.len(),
                fields.len()
            )));
        }
        let mut children = Vec::with_capacity(descs.len());
        for (f, arrow) in descs.into_iter().zip(fields.iter()) {
            let col = Col::for_field(&f, arrow.data_type())?;
            children.push((f, col));
        }
        let mut by_number: Vec<(u32, usize)> = children
            .iter()
            .enumerate()
            .map(|(i, (f, _))| (f.number(), i))
            .collect();
        by_number.sort_unstable();
        let oneof_names: Vec<String> = m.oneofs().map(|o| o.full_name().to_string()).collect();
        let shapes = children
            .iter()
            .map(|(f, _)| Shape {
                kind: f.kind(),
                oneof: f
                    .containing_oneof()
                    .and_then(|o| oneof_names.iter().position(|n| n == o.full_name())),
                presence: f.supports_presence(),
            })
            .collect();
        Ok(StructCol {
            fields: fields.clone(),
            children,
            shapes,
            oneofs: oneof_names.len(),
            by_number,
            nulls: NullBufferBuilder::new(0),
        })
    }

    fn index(&self, number: u32) -> Option<usize> {
        self.by_number
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| self.by_number[i].1)
    }

    /// Decodes one message into a row (with `apply`) or only checks that
    /// it would decode (without).
    fn push(&mut self, bytes: &[u8], apply: bool, depth: u32) -> Result<(), Malformed> {
        // Occurrences by child, in wire order within each child.
        let mut seen: Vec<(usize, WireValue<'_>)> = Vec::new();
        for f in Scanner::new(bytes) {
            let f = f?;
            if let Some(i) = self.index(f.number) {
                seen.push((i, f.value));
            }
        }
        seen.sort_by_key(|(i, _)| *i);
        // The last member of each oneof present on the wire wins.
        let mut winners: Vec<Option<usize>> = vec![None; self.oneofs];
        if self.oneofs > 0 {
            for f in Scanner::new(bytes).flatten() {
                if let Some(i) = self.index(f.number) {
                    if let Some(o) = self.shapes[i].oneof {
                        winners[o] = Some(i);
                    }
                }
            }
        }
        let mut merged = Vec::new();
        let mut at = 0;
        for (i, ((_, col), shape)) in self.children.iter_mut().zip(&self.shapes).enumerate() {
            let start = at;
            while at < seen.len() && seen[at].0 == i {
                at += 1;
            }
            let group = &seen[start..at];
            let loser = shape
                .oneof
                .is_some_and(|o| winners[o].is_some_and(|w| w != i));
            let occurrences = group.iter().map(|(_, v)| *v);
            match col {
                Col::List(l) => {
                    let mut n = 0i32;
                    for w in occurrences {
                        n += l.push(w, apply, depth)?;
                    }
                    if apply {
                        let last = *l.offsets.last().unwrap_or(&0);
                        l.offsets.push(last + n);
                        l.nulls.append_non_null();
                    }
                }
                Col::Map(m) => {
                    let mut n = 0i32;
                    for w in occurrences {
                        let WireValue::Len(entry) = w else {
                            return Err(Malformed);
                        };
                        m.entry.push(entry, apply, depth + 1)?;
                        n += 1;
                    }
                    if apply {
                        let last = *m.offsets.last().unwrap_or(&0);
                        m.offsets.push(last + n);
                        m.nulls.append_non_null();
                    }
                }
                col => {
                    let kind = &shape.kind;
                    let last = if loser {
                        None
                    } else {
                        group.last().map(|(_, v)| *v)
                    };
                    match (last, kind) {
                        (None, _) if shape.presence || loser => {
                            if apply {
                                col.push_null();
                            }
                        }
                        (None, Kind::Message(_)) => {
                            if apply {
                                col.push_null();
                            }
                        }
                        (None, _) => {
                            if apply {
                                col.push_zero(kind);
                            }
                        }
                        (Some(w), Kind::Message(_)) => {
                            // Occurrences of a singular message merge: decode
                            // their concatenation.
                            if group.len() == 1 {
                                col.push(kind, w, apply, depth)?;
                            } else {
                                merged.clear();
                                for (_, p) in group {
                                    let WireValue::Len(b) = p else {
                                        return Err(Malformed);
                                    };
                                    merged.extend_from_slice(b);
                                }
                                col.push(kind, WireValue::Len(&merged), apply, depth)?;
                            }
                        }
                        (Some(w), _) => {
                            // Earlier occurrences are overridden but must
                            // still be well formed.
                            for (_, o) in group {
                                scalar(kind, *o)?;
                            }
                            col.push(kind, w, apply, depth)?;
                        }
                    }
                }
            }
        }
        if apply {
            self.nulls.append_non_null();
        }
        Ok(())
    }

    fn push_null(&mut self) {
        for (_, col) in &mut self.children {
            col.push_null();
        }
        self.nulls.append_null();
    }

    fn finish(mut self) -> StructArray {
        let arrays: Vec<ArrayRef> = self.children.into_iter().map(|(_, c)| c.finish()).collect();
        StructArray::new(self.fields, arrays, self.nulls.finish())
    }
}

impl ListCol {
    /// Appends one occurrence (a packed run counts each item); the number
    /// of items added.
    fn push(&mut self, w: WireValue<'_>, apply: bool, depth: u32) -> Result<i32, Malformed> {
        match w {
            WireValue::Len(b) if packable(&self.kind) => {
                let wire_type = match &self.kind {
                    Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => 5,
                    Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => 1,
                    _ => 0,
                };
                let mut n = 0;
                for item in scan::packed(b, wire_type) {
                    self.child.push(&self.kind, item?, apply, depth)?;
                    n += 1;
                }
                Ok(n)
            }
            w => {
                self.child.push(&self.kind, w, apply, depth)?;
                Ok(1)
            }
        }
    }
}

/// Builds the typed columns of one message type, row by row.
pub struct TypedBuilder {
    root: StructCol,
}

impl TypedBuilder {
    /// A builder for `message` whose columns are `fields` (from
    /// [`crate::columns::message_fields`] for the same message).
    pub fn new(message: &MessageDescriptor, fields: &Fields) -> Result<TypedBuilder, Mismatch> {
        Ok(TypedBuilder {
            root: StructCol::new(message, fields)?,
        })
    }

    /// Appends one payload as a row; a payload that does not decode (or
    /// None) becomes a null row. True when the row holds the value.
    pub fn push(&mut self, payload: Option<&[u8]>) -> bool {
        if let Some(p) = payload {
            if self.root.push(p, false, 0).is_ok() {
                return self.root.push(p, true, 0).is_ok();
            }
        }
        self.root.push_null();
        false
    }

    /// The rows as one struct array.
    pub fn finish(self) -> StructArray {
        self.root.finish()
    }
}

/// Writes rows of typed columns back as protobuf bytes.
pub struct RowEncoder<'a> {
    root: EncStruct<'a>,
}

enum Enc<'a> {
    Bool(&'a BooleanArray),
    I32(&'a Int32Array, Kind),
    I64(&'a Int64Array, Kind),
    U64(&'a Decimal128Array, Kind),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
    Enum(&'a StringArray, EnumDescriptor),
    Timestamp(&'a TimestampMicrosecondArray),
    Duration(&'a Int64Array),
    Wrapper(Box<Enc<'a>>, FieldDescriptor),
    Json(&'a StringArray, MessageDescriptor),
    Struct(Box<EncStruct<'a>>),
    /// The list, its items, and whether they are written packed.
    List(&'a ListArray, Box<Enc<'a>>, bool),
    Map(&'a MapArray, Box<EncStruct<'a>>),
}

struct EncStruct<'a> {
    array: &'a StructArray,
    /// (descriptor, encoder) in field-number order.
    children: Vec<(FieldDescriptor, Enc<'a>)>,
}

fn downcast<'a, T: 'static>(a: &'a dyn Array, what: &str) -> Result<&'a T, Mismatch> {
    a.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| mismatch(format!("column {what} has type {}", a.data_type())))
}

impl<'a> Enc<'a> {
    fn new(f: &FieldDescriptor, kind: &Kind, a: &'a dyn Array) -> Result<Enc<'a>, Mismatch> {
        let name = f.name();
        Ok(match kind {
            Kind::Message(m) => match a.data_type() {
                DataType::Struct(_) => Enc::Struct(Box::new(EncStruct::new(
                    m,
                    downcast::<StructArray>(a, name)?,
                )?)),
                dt => match special(m, dt) {
                    Some(Special::Timestamp) => Enc::Timestamp(downcast(a, name)?),
                    Some(Special::Duration) => Enc::Duration(downcast(a, name)?),
                    Some(Special::Wrapper) => {
                        let inner = m
                            .get_field(1)
                            .ok_or_else(|| mismatch(format!("{} has no field 1", m.full_name())))?;
                        Enc::Wrapper(Box::new(Enc::new(&inner, &inner.kind(), a)?), inner)
                    }
                    Some(Special::Json) => Enc::Json(downcast(a, name)?, m.clone()),
                    Some(Special::Bytes) => Enc::Bin(downcast(a, name)?),
                    None => return Err(mismatch(format!("{name}: {dt} for a message"))),
                },
            },
            Kind::Bool => Enc::Bool(downcast(a, name)?),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Enc::I32(downcast(a, name)?, kind.clone())
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
                Enc::I64(downcast(a, name)?, kind.clone())
            }
            Kind::Uint64 | Kind::Fixed64 => Enc::U64(downcast(a, name)?, kind.clone()),
            Kind::Float => Enc::F32(downcast(a, name)?),
            Kind::Double => Enc::F64(downcast(a, name)?),
            Kind::String => Enc::Str(downcast(a, name)?),
            Kind::Bytes => Enc::Bin(downcast(a, name)?),
            Kind::Enum(e) => Enc::Enum(downcast(a, name)?, e.clone()),
        })
    }

    fn for_field(f: &FieldDescriptor, a: &'a dyn Array) -> Result<Enc<'a>, Mismatch> {
        if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return Err(mismatch(format!("{}: map without entries", f.name())));
            };
            let map = downcast::<MapArray>(a, f.name())?;
            return Ok(Enc::Map(
                map,
                Box::new(EncStruct::new(&entry, map.entries())?),
            ));
        }
        if f.is_list() {
            let list = downcast::<ListArray>(a, f.name())?;
            let kind = f.kind();
            let packed = f.is_packed() && packable(&kind);
            // The encoder borrows the items array from the list array.
            let items: &'a dyn Array = list.values().as_ref();
            return Ok(Enc::List(
                list,
                Box::new(Enc::new(f, &kind, items)?),
                packed,
            ));
        }
        Enc::new(f, &f.kind(), a)
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Enc::Bool(a) => a.is_null(row),
            Enc::I32(a, _) => a.is_null(row),
            Enc::I64(a, _) | Enc::Duration(a) => a.is_null(row),
            Enc::U64(a, _) => a.is_null(row),
            Enc::F32(a) => a.is_null(row),
            Enc::F64(a) => a.is_null(row),
            Enc::Str(a) | Enc::Enum(a, _) | Enc::Json(a, _) => a.is_null(row),
            Enc::Bin(a) => a.is_null(row),
            Enc::Timestamp(a) => a.is_null(row),
            Enc::Wrapper(inner, _) => inner.is_null(row),
            Enc::Struct(s) => s.array.is_null(row),
            Enc::List(a, ..) => a.is_null(row),
            Enc::Map(a, _) => a.is_null(row),
        }
    }

    /// The wire type of this column's values.
    fn wire_type(&self) -> u8 {
        match self {
            Enc::Bool(_) | Enc::Enum(..) => 0,
            Enc::I32(_, Kind::Sfixed32) | Enc::I64(_, Kind::Fixed32) | Enc::F32(_) => 5,
            Enc::I64(_, Kind::Sfixed64) | Enc::U64(_, Kind::Fixed64) | Enc::F64(_) => 1,
            Enc::I32(..) | Enc::I64(..) | Enc::U64(..) => 0,
            _ => 2,
        }
    }

    /// Appends the value at `row` (not null) without its tag.
    fn value(&self, row: usize, out: &mut Vec<u8>) -> Result<(), Mismatch> {
        let len_delimited = |out: &mut Vec<u8>, body: &[u8]| {
            write_varint(out, body.len() as u64);
            out.extend_from_slice(body);
        };
        match self {
            Enc::Bool(a) => {
                write_varint(out, u64::from(a.value(row)));
            }
            Enc::I32(a, kind) => {
                let v = a.value(row);
                match kind {
                    Kind::Sfixed32 => {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Kind::Sint32 => {
                        write_varint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
                    }
                    _ => {
                        write_varint(out, v as i64 as u64);
                    }
                }
            }
            Enc::I64(a, kind) => {
                let v = a.value(row);
                match kind {
                    Kind::Sfixed64 => {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Kind::Fixed32 => {
                        out.extend_from_slice(&(v as u32).to_le_bytes());
                    }
                    Kind::Sint64 => {
                        write_varint(out, ((v << 1) ^ (v >> 63)) as u64);
                    }
                    _ => {
                        write_varint(out, v as u64);
                    }
                }
            }
            Enc::U64(a, kind) => {
                let v = u64::try_from(a.value(row))
                    .map_err(|_| mismatch("an unsigned value out of range"))?;
                if matches!(kind, Kind::Fixed64) {
                    out.extend_from_slice(&v.to_le_bytes());
                } else {
                    write_varint(out, v);
                }
            }
            Enc::F32(a) => {
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            Enc::F64(a) => {
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            Enc::Str(a) => len_delimited(out, a.value(row).as_bytes()),
            Enc::Bin(a) => len_delimited(out, a.value(row)),
            Enc::Enum(a, e) => {
                let s = a.value(row);
                let n = match e.get_value_by_name(s) {
                    Some(v) => v.number(),
                    None => s
                        .parse::<i32>()
                        .map_err(|_| mismatch(format!("{s} is no value of {}", e.full_name())))?,
                };
                write_varint(out, n as i64 as u64);
            }
            Enc::Timestamp(_) | Enc::Duration(_) => {
                let m = match self {
                    Enc::Timestamp(a) => a.value(row),
                    Enc::Duration(a) => a.value(row),
                    _ => 0,
                };
                let (s, n) = (
                    m.div_euclid(1_000_000),
                    (m.rem_euclid(1_000_000) * 1000) as i32,
                );
                let (s, n) = if matches!(self, Enc::Duration(_)) && m < 0 && n != 0 {
                    // Durations carry the sign in both fields.
                    (s + 1, n - 1_000_000_000)
                } else {
                    (s, n)
                };
                let mut body = Vec::new();
                if s != 0 {
                    body.push(0x08);
                    write_varint(&mut body, s as u64);
                }
                if n != 0 {
                    body.push(0x10);
                    write_varint(&mut body, n as i64 as u64);
                }
                len_delimited(out, &body)
            }
            Enc::Wrapper(inner, f) => {
                let mut body = Vec::new();
                if !inner.is_zero(row) {
                    field(&mut body, f.number(), inner, row)?;
                }
                len_delimited(out, &body)
            }
            Enc::Json(a, m) => {
                let mut de = serde_json::Deserializer::from_str(a.value(row));
                let msg = DynamicMessage::deserialize(m.clone(), &mut de)
                    .map_err(|e| mismatch(format!("{}: {e}", m.full_name())))?;
                let mut body = Vec::new();
                encode_deterministic(&msg, &mut body);
                len_delimited(out, &body)
            }
            Enc::Struct(s) => {
                let mut body = Vec::new();
                s.encode(row, &mut body)?;
                len_delimited(out, &body)
            }
            Enc::List(..) | Enc::Map(..) => return Err(mismatch("a list inside a list")),
        }
        Ok(())
    }

    /// True when the value at `row` is its type's zero (not written for
    /// implicit-presence fields).
    fn is_zero(&self, row: usize) -> bool {
        match self {
            Enc::Bool(a) => !a.value(row),
            Enc::I32(a, _) => a.value(row) == 0,
            Enc::I64(a, _) => a.value(row) == 0,
            Enc::U64(a, _) => a.value(row) == 0,
            Enc::F32(a) => a.value(row).to_bits() == 0,
            Enc::F64(a) => a.value(row).to_bits() == 0,
            Enc::Str(a) => a.value(row).is_empty(),
            Enc::Bin(a) => a.value(row).is_empty(),
            Enc::Enum(a, e) => e
                .get_value_by_name(a.value(row))
                .is_some_and(|v| v.number() == 0),
            _ => false,
        }
    }
}

fn tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    write_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Writes a field: tag and value.
fn field(out: &mut Vec<u8>, number: u32, enc: &Enc<'_>, row: usize) -> Result<(), Mismatch> {
    tag(out, number, enc.wire_type());
    enc.value(row, out)
}

impl<'a> EncStruct<'a> {
    fn new(m: &MessageDescriptor, array: &'a StructArray) -> Result<EncStruct<'a>, Mismatch> {
        let descs: Vec<FieldDescriptor> = m.fields().collect();
        if descs.len() != array.num_columns() {
            return Err(mismatch(format!(
                "{} has {} fields, its columns {}",
                m.full_name(),
                descs.len(),
                array.num_columns()
            )));
        }
        let mut children = Vec::with_capacity(descs.len());
        for (i, f) in descs.into_iter().enumerate() {
            let enc = Enc::for_field(&f, array.column(i).as_ref())?;
            children.push((f, enc));
        }
        children.sort_by_key(|(f, _)| f.number());
        Ok(EncStruct { array, children })
    }

    fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), Mismatch> {
        for (f, enc) in &self.children {
            match enc {
                Enc::List(list, items, packed) => {
                    if list.is_null(row) {
                        continue;
                    }
                    let offsets = list.value_offsets();
                    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                    if start == end {
                        continue;
                    }
                    if *packed {
                        let mut body = Vec::new();
                        for i in start..end {
                            items.value(i, &mut body)?;
                        }
                        tag(out, f.number(), 2);
                        write_varint(out, body.len() as u64);
                        out.extend_from_slice(&body);
                    } else {
                        for i in start..end {
                            field(out, f.number(), items, i)?;
                        }
                    }
                }
                Enc::Map(map, entry) => {
                    if map.is_null(row) {
                        continue;
                    }
                    let offsets = map.value_offsets();
                    for i in offsets[row] as usize..offsets[row + 1] as usize {
                        let mut body = Vec::new();
                        // Key and value are always written (as Java, Go
                        // and C++ do), in number order.
                        for (ef, enc) in &entry.children {
                            if !enc.is_null(i) {
                                field(&mut body, ef.number(), enc, i)?;
                            }
                        }
                        tag(out, f.number(), 2);
                        write_varint(out, body.len() as u64);
                        out.extend_from_slice(&body);
                    }
                }
                enc => {
                    if enc.is_null(row) {
                        continue;
                    }
                    let implicit = !f.supports_presence() && !matches!(f.kind(), Kind::Message(_));
                    if implicit && enc.is_zero(row) {
                        continue;
                    }
                    field(out, f.number(), enc, row)?;
                }
            }
        }
        Ok(())
    }
}

impl<'a> RowEncoder<'a> {
    /// An encoder of `message` rows held in `array` (as built by
    /// [`TypedBuilder`]).
    pub fn new(
        message: &MessageDescriptor,
        array: &'a StructArray,
    ) -> Result<RowEncoder<'a>, Mismatch> {
        Ok(RowEncoder {
            root: EncStruct::new(message, array)?,
        })
    }

    /// Appends row `row` as protobuf bytes; false for a null row (nothing
    /// appended).
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<bool, Mismatch> {
        if self.root.array.is_null(row) {
            return Ok(false);
        }
        self.root.encode(row, out).map(|()| true)
    }
}

/// Encodes `msg` the same way every time: fields by number, map entries by
/// key. prost-reflect keeps maps in hash maps, so its own encoding orders
/// entries differently from one message to the next (found by the `typed`
/// fuzzer on a `google.protobuf.Struct` of two keys): a row written back at
/// a Kafka read must give the bytes the ingest check compared.
fn encode_deterministic(msg: &DynamicMessage, out: &mut Vec<u8>) {
    let mut fields: Vec<(FieldDescriptor, &prost_reflect::Value)> = msg.fields().collect();
    fields.sort_by_key(|(f, _)| f.number());
    for (field, value) in fields {
        match value {
            prost_reflect::Value::Map(map) => {
                let Kind::Message(entry) = field.kind() else {
                    continue;
                };
                let (key_field, value_field) =
                    (entry.map_entry_key_field(), entry.map_entry_value_field());
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    let mut e = DynamicMessage::new(entry.clone());
                    e.set_field(&key_field, k.clone().into());
                    e.set_field(&value_field, v.clone());
                    let mut body = Vec::new();
                    encode_deterministic(&e, &mut body);
                    write_varint(out, ((field.number() as u64) << 3) | 2);
                    write_varint(out, body.len() as u64);
                    out.extend_from_slice(&body);
                }
            }
            prost_reflect::Value::Message(m) => {
                let mut body = Vec::new();
                encode_deterministic(m, &mut body);
                write_varint(out, ((field.number() as u64) << 3) | 2);
                write_varint(out, body.len() as u64);
                out.extend_from_slice(&body);
            }
            prost_reflect::Value::List(items)
                if items
                    .iter()
                    .any(|i| matches!(i, prost_reflect::Value::Message(_))) =>
            {
                for item in items {
                    if let prost_reflect::Value::Message(m) = item {
                        let mut body = Vec::new();
                        encode_deterministic(m, &mut body);
                        write_varint(out, ((field.number() as u64) << 3) | 2);
                        write_varint(out, body.len() as u64);
                        out.extend_from_slice(&body);
                    }
                }
            }
            // Scalars, strings, bytes, enums and their lists hold no map:
            // prost-reflect's encoding of the field alone is deterministic.
            other => {
                let mut one = DynamicMessage::new(prost_reflect::ReflectMessage::descriptor(msg));
                one.set_field(&field, other.clone());
                out.extend_from_slice(&one.encode_to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{message_fields, FieldIds};
    use crate::compile::compile;
    use crate::testutil::Rng;
    use prost_reflect::{MapKey, Value};

    const SCHEMA: &str = r#"syntax = "proto3"; package t;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/duration.proto";
        import "google/protobuf/wrappers.proto";
        import "google/protobuf/struct.proto";
        enum Kind { KIND_UNSPECIFIED = 0; A = 1; B = 2; }
        message Node { string name = 1; repeated Node children = 2; }
        message Line { string sku = 1; uint64 qty = 2; sint32 delta = 3; }
        message Order {
          string id = 1;
          Kind kind = 2;
          repeated Line lines = 3;
          map<string, Line> by_sku = 4;
          google.protobuf.Timestamp at = 5;
          google.protobuf.Int32Value maybe = 6;
          google.protobuf.Struct extra = 7;
          oneof contact { string phone = 8; int64 pager = 9; }
          Node tree = 10;
          fixed32 f32 = 11;
          repeated int64 nums = 12;
          double ratio = 13;
          bytes blob = 14;
          optional bool flag = 15;
          google.protobuf.Duration took = 16;
          sfixed64 s64 = 17;
          repeated string tags = 18;
          map<int32, string> names = 19;
          float weight = 20;
          fixed64 big = 21;
        }"#;

    fn msg(pool: &prost_reflect::DescriptorPool, name: &str) -> DynamicMessage {
        DynamicMessage::new(pool.get_message_by_name(name).unwrap())
    }

    fn line(pool: &prost_reflect::DescriptorPool, r: &mut Rng) -> DynamicMessage {
        let mut l = msg(pool, "t.Line");
        if r.chance(80) {
            l.set_field_by_name("sku", Value::String(format!("S{}", r.next() % 1000)));
        }
        l.set_field_by_name("qty", Value::U64(r.next() >> (r.next() % 64)));
        l.set_field_by_name("delta", Value::I32(r.int() as i32));
        l
    }

    fn order(pool: &prost_reflect::DescriptorPool, r: &mut Rng) -> DynamicMessage {
        let mut m = msg(pool, "t.Order");
        let set = |m: &mut DynamicMessage, n: &str, v: Value| m.set_field_by_name(n, v);
        if r.chance(90) {
            set(&mut m, "id", Value::String(format!("id-{}-é", r.next())));
        }
        set(&mut m, "kind", Value::EnumNumber((r.next() % 4) as i32));
        let lines = (0..r.next() % 3)
            .map(|_| Value::Message(line(pool, r)))
            .collect();
        set(&mut m, "lines", Value::List(lines));
        if r.chance(50) {
            let l = line(pool, r);
            set(
                &mut m,
                "by_sku",
                Value::Map(
                    [(
                        MapKey::String(format!("k{}", r.next() % 9 + 1)),
                        Value::Message(l),
                    )]
                    .into(),
                ),
            );
        }
        if r.chance(60) {
            let mut t = msg(pool, "google.protobuf.Timestamp");
            t.set_field_by_name("seconds", Value::I64((r.next() % 2_000_000_000) as i64));
            t.set_field_by_name("nanos", Value::I32(((r.next() % 1_000_000) * 1000) as i32));
            set(&mut m, "at", Value::Message(t));
        }
        if r.chance(50) {
            let mut w = msg(pool, "google.protobuf.Int32Value");
            w.set_field_by_name("value", Value::I32(r.int() as i32));
            set(&mut m, "maybe", Value::Message(w));
        }
        match r.next() % 3 {
            0 => set(&mut m, "phone", Value::String("+47".into())),
            1 => set(&mut m, "pager", Value::I64(r.int())),
            _ => {}
        }
        if r.chance(40) {
            let mut root = msg(pool, "t.Node");
            root.set_field_by_name("name", Value::String("root".into()));
            let mut child = msg(pool, "t.Node");
            child.set_field_by_name("name", Value::String("leaf".into()));
            root.set_field_by_name("children", Value::List(vec![Value::Message(child)]));
            set(&mut m, "tree", Value::Message(root));
        }
        set(&mut m, "f32", Value::U32(r.next() as u32));
        let nums = (0..r.next() % 4).map(|_| Value::I64(r.int())).collect();
        set(&mut m, "nums", Value::List(nums));
        set(&mut m, "ratio", Value::F64(r.int() as f64 / 7.0));
        if r.chance(50) {
            set(
                &mut m,
                "blob",
                Value::Bytes(r.next().to_le_bytes().to_vec().into()),
            );
        }
        if r.chance(50) {
            set(&mut m, "flag", Value::Bool(r.chance(50)));
        }
        if r.chance(50) {
            let mut d = msg(pool, "google.protobuf.Duration");
            let us = r.int() % 10_000_000_000;
            d.set_field_by_name("seconds", Value::I64(us / 1_000_000));
            d.set_field_by_name("nanos", Value::I32(((us % 1_000_000) * 1000) as i32));
            set(&mut m, "took", Value::Message(d));
        }
        set(&mut m, "s64", Value::I64(r.int()));
        let tags = (0..r.next() % 3)
            .map(|i| Value::String(format!("t{i}")))
            .collect();
        set(&mut m, "tags", Value::List(tags));
        if r.chance(50) {
            set(
                &mut m,
                "names",
                Value::Map(
                    [(
                        MapKey::I32(1 + (r.next() % 5) as i32),
                        Value::String("n".into()),
                    )]
                    .into(),
                ),
            );
        }
        set(&mut m, "weight", Value::F32(r.int() as f32 / 3.0));
        set(&mut m, "big", Value::U64(r.next()));
        m
    }

    fn columns(c: &crate::CompiledSchema) -> (MessageDescriptor, Fields) {
        let desc = c.pool.get_message_by_name("t.Order").unwrap();
        let fields = message_fields(&desc, "value", &mut FieldIds::default());
        (desc, fields)
    }

    #[test]
    fn canonical_values_come_back_byte_for_byte() {
        let c = compile(SCHEMA, &[]).unwrap();
        let (desc, fields) = columns(&c);
        let mut b = TypedBuilder::new(&desc, &fields).unwrap();
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let values: Vec<Vec<u8>> = (0..3000)
            .map(|_| order(&c.pool, &mut r).encode_to_vec())
            .collect();
        for v in &values {
            assert!(b.push(Some(v)));
        }
        assert!(!b.push(None));
        let array = b.finish();
        assert_eq!(array.data_type(), &DataType::Struct(fields));
        let enc = RowEncoder::new(&desc, &array).unwrap();
        for (i, v) in values.iter().enumerate() {
            let mut out = Vec::new();
            assert!(enc.encode(i, &mut out).unwrap());
            assert_eq!(&out, v, "row {i}");
        }
        assert!(!enc.encode(values.len(), &mut Vec::new()).unwrap());
        // The typed columns hold the values, readable as such.
        let col = |name: &str| array.column_by_name(name).unwrap().clone();
        let ids = col("id");
        let kinds = col("kind");
        let (ids, kinds) = (
            ids.as_any().downcast_ref::<StringArray>().unwrap(),
            kinds.as_any().downcast_ref::<StringArray>().unwrap(),
        );
        for (i, v) in values.iter().enumerate().take(200) {
            let m = DynamicMessage::decode(desc.clone(), v.as_slice()).unwrap();
            assert_eq!(
                ids.value(i),
                m.get_field_by_name("id").unwrap().as_str().unwrap()
            );
            let kind = m
                .get_field_by_name("kind")
                .unwrap()
                .as_enum_number()
                .unwrap();
            let name = ["KIND_UNSPECIFIED", "A", "B"]
                .get(kind as usize)
                .map(|s| s.to_string());
            assert_eq!(kinds.value(i), name.unwrap_or_else(|| kind.to_string()));
        }
    }

    #[test]
    fn other_encodings_decode_to_the_same_values_and_differ_on_the_way_back() {
        let c = compile(SCHEMA, &[]).unwrap();
        let (desc, fields) = columns(&c);
        let mut r = Rng(99);
        let base = order(&c.pool, &mut r);
        let canonical = base.encode_to_vec();
        let mut unknown = canonical.clone();
        unknown.extend_from_slice(&[0xb8, 0x06, 0x01]); // field 103, varint 1
        let mut explicit_zero = canonical.clone();
        explicit_zero.extend_from_slice(&[0xa9, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]); // big = 0, fixed64
        let mut duplicated = vec![0x0a, 0x01, b'x']; // id = "x", then the real fields
        duplicated.extend_from_slice(&canonical);
        let garbage = vec![0x0a, 0x05, b'x'];
        let mut b = TypedBuilder::new(&desc, &fields).unwrap();
        for v in [&canonical, &unknown, &explicit_zero, &duplicated] {
            assert!(b.push(Some(v)));
        }
        assert!(!b.push(Some(&garbage)));
        let array = b.finish();
        let enc = RowEncoder::new(&desc, &array).unwrap();
        let row = |i: usize| {
            let mut out = Vec::new();
            enc.encode(i, &mut out).unwrap();
            out
        };
        assert_eq!(row(0), canonical);
        // The unknown field is dropped, the earlier duplicate overridden:
        // both read as the canonical value.
        assert_eq!(row(1), canonical);
        assert_eq!(row(3), canonical);
        // The explicit zero wins (last occurrence) and is not written back.
        let mut zeroed = base.clone();
        zeroed.set_field_by_name("big", Value::U64(0));
        assert_eq!(row(2), zeroed.encode_to_vec());
        for (i, v) in [&unknown, &explicit_zero, &duplicated]
            .into_iter()
            .enumerate()
        {
            assert_ne!(
                &row(i + 1),
                v,
                "the producer's bytes must be kept beside row {}",
                i + 1
            );
        }
        assert!(array.is_null(4));
        assert!(!enc.encode(4, &mut Vec::new()).unwrap());
    }
}
