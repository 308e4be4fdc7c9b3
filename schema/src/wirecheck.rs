//! Validation straight off the wire: the fast path of [`crate::validate`].
//!
//! Decoding every produced value into a dynamic message and walking it with
//! the dynamic protovalidate evaluator costs about 14 µs for a 20-field
//! order; that is most of what reject mode costs. A [`WirePlan`] is built
//! once per message type from the same `buf.validate` options and checks a
//! value by scanning its bytes: it verifies everything the dynamic decoder
//! would (wire types, lengths, UTF-8, nested messages) and the rules it
//! knows, without allocating per field.
//!
//! It answers only "certainly valid" or "not sure". Anything it does not
//! model exactly makes it say "not sure": a message type with rules it does
//! not implement (CEL expressions, bytes/duration/timestamp/any rules,
//! `ignore`, `unique`, map `min_pairs`, predefined rules) gets no plan at
//! all, and a value with a duplicated singular field, two members of one
//! oneof, a group or a NaN gets "not sure". "Not sure" sends the value
//! to the dynamic evaluator, which stays the authority and writes the
//! error message. So the plan can only ever save work, never change a
//! verdict, as long as "certainly valid" is right; the differential tests
//! below hold it to that.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prost::Message as _;
use prost_protovalidate::regex::Regex;
use prost_protovalidate::types::field_rules::Type;
use prost_protovalidate::types::rules_meta::numeric::{range_rule, RangeKind};
use prost_protovalidate::types::string_rules::WellKnown;
use prost_protovalidate::types::{
    FieldConstraintsDynExt, FieldConstraintsExt, FieldRules, MessageConstraintsExt,
    OneofConstraintsExt,
};
use prost_protovalidate::validators as formats;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Syntax};

use crate::scan::{self, zigzag32, zigzag64, Scanner, WireValue};

/// How deep messages may nest before the plan gives up (the dynamic
/// decoder's own limit is 100).
const MAX_DEPTH: u32 = 100;

/// Plans per message type, built on first use.
#[derive(Default)]
pub struct WirePlans {
    plans: RwLock<HashMap<String, Option<Arc<WirePlan>>>>,
}

impl WirePlans {
    /// The plan for `desc`, or None when its rules are beyond the plan.
    pub fn get(&self, desc: &MessageDescriptor) -> Option<Arc<WirePlan>> {
        if let Some(p) = self
            .plans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(desc.full_name())
        {
            return p.clone();
        }
        let plan = WirePlan::build(desc).map(Arc::new);
        self.plans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(desc.full_name().to_string(), plan.clone());
        plan
    }
}

/// A compiled check of one message type and every message it holds.
pub struct WirePlan {
    msgs: Vec<MsgPlan>,
}

#[derive(Default)]
struct MsgPlan {
    /// Field numbers, sorted; `fields` in the same order.
    numbers: Vec<u32>,
    fields: Vec<FieldPlan>,
    /// Members (indexes into `fields`) of each real oneof, and whether one
    /// must be set.
    oneofs: Vec<(Vec<usize>, bool)>,
}

struct FieldPlan {
    kind: ValueKind,
    /// A list or a map (then `kind` is the entry message).
    repeated: bool,
    /// Explicit presence: rules are skipped when the field is absent.
    presence: bool,
    required: bool,
    /// Rules of the value (singular) or of each item (repeated).
    rules: Option<Rules>,
    /// Whether the rules accept the zero value (absent implicit field).
    zero_ok: bool,
    min_items: Option<u64>,
    max_items: Option<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum ValueKind {
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    Bool,
    String,
    Bytes,
    Enum,
    Message(usize),
}

impl ValueKind {
    fn packable(self) -> bool {
        !matches!(
            self,
            ValueKind::String | ValueKind::Bytes | ValueKind::Message(_)
        )
    }
}

/// One decoded scalar.
#[derive(Clone, Copy)]
enum Val<'a> {
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl Val<'_> {
    fn is_zero(&self) -> bool {
        match *self {
            Val::I32(v) => v == 0,
            Val::I64(v) => v == 0,
            Val::U32(v) => v == 0,
            Val::U64(v) => v == 0,
            Val::F32(v) => v == 0.0,
            Val::F64(v) => v == 0.0,
            Val::Bool(v) => !v,
            Val::Str(v) => v.is_empty(),
            Val::Bytes(v) => v.is_empty(),
        }
    }
}

fn zero_of(kind: ValueKind) -> Val<'static> {
    match kind {
        ValueKind::Int32 | ValueKind::Sint32 | ValueKind::Sfixed32 | ValueKind::Enum => Val::I32(0),
        ValueKind::Int64 | ValueKind::Sint64 | ValueKind::Sfixed64 => Val::I64(0),
        ValueKind::Uint32 | ValueKind::Fixed32 => Val::U32(0),
        ValueKind::Uint64 | ValueKind::Fixed64 => Val::U64(0),
        ValueKind::Float => Val::F32(0.0),
        ValueKind::Double => Val::F64(0.0),
        ValueKind::Bool => Val::Bool(false),
        ValueKind::String => Val::Str(""),
        ValueKind::Bytes | ValueKind::Message(_) => Val::Bytes(&[]),
    }
}

/// Decodes one scalar of `kind` from a wire value; None on a wire type
/// the dynamic decoder would refuse, or a string that is not UTF-8.
fn decode(kind: ValueKind, w: WireValue<'_>) -> Option<Val<'_>> {
    Some(match (kind, w) {
        (ValueKind::Int32 | ValueKind::Enum, WireValue::Varint(v)) => Val::I32(v as i32),
        (ValueKind::Int64, WireValue::Varint(v)) => Val::I64(v as i64),
        (ValueKind::Uint32, WireValue::Varint(v)) => Val::U32(v as u32),
        (ValueKind::Uint64, WireValue::Varint(v)) => Val::U64(v),
        (ValueKind::Sint32, WireValue::Varint(v)) => Val::I32(zigzag32(v)),
        (ValueKind::Sint64, WireValue::Varint(v)) => Val::I64(zigzag64(v)),
        (ValueKind::Bool, WireValue::Varint(v)) => Val::Bool(v != 0),
        (ValueKind::Fixed32, WireValue::Fixed32(v)) => Val::U32(v),
        (ValueKind::Sfixed32, WireValue::Fixed32(v)) => Val::I32(v as i32),
        (ValueKind::Float, WireValue::Fixed32(v)) => Val::F32(f32::from_bits(v)),
        (ValueKind::Fixed64, WireValue::Fixed64(v)) => Val::U64(v),
        (ValueKind::Sfixed64, WireValue::Fixed64(v)) => Val::I64(v as i64),
        (ValueKind::Double, WireValue::Fixed64(v)) => Val::F64(f64::from_bits(v)),
        (ValueKind::String, WireValue::Len(b)) => Val::Str(std::str::from_utf8(b).ok()?),
        (ValueKind::Bytes, WireValue::Len(b)) => Val::Bytes(b),
        _ => return None,
    })
}

/// The rules of one scalar value.
enum Rules {
    I32(Num<i32>),
    I64(Num<i64>),
    U32(Num<u32>),
    U64(Num<u64>),
    F32(Num<f32>),
    F64(Num<f64>),
    Bool(Option<bool>),
    Str(Box<StrRules>),
    Enum(EnumRules),
}

impl Rules {
    fn ok(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Rules::I32(r), Val::I32(v)) => r.ok(v),
            (Rules::I64(r), Val::I64(v)) => r.ok(v),
            (Rules::U32(r), Val::U32(v)) => r.ok(v),
            (Rules::U64(r), Val::U64(v)) => r.ok(v),
            // NaN has rule-specific outcomes: leave it to the evaluator.
            (Rules::F32(r), Val::F32(v)) => !v.is_nan() && r.ok(v),
            (Rules::F64(r), Val::F64(v)) => !v.is_nan() && r.ok(v),
            (Rules::Bool(c), Val::Bool(v)) => c.is_none_or(|c| c == v),
            (Rules::Str(r), Val::Str(s)) => r.ok(s),
            (Rules::Enum(r), Val::I32(v)) => r.ok(v),
            _ => false,
        }
    }
}

struct Num<T> {
    konst: Option<T>,
    range: Option<(RangeKind, Option<T>, Option<T>)>,
    within: Vec<T>,
    not_in: Vec<T>,
    finite: bool,
}

impl<T: PartialOrd + Copy + Finite> Num<T> {
    fn ok(&self, v: T) -> bool {
        if self.finite && !v.finite() {
            return false;
        }
        if self.konst.is_some_and(|c| v != c) {
            return false;
        }
        if let Some((kind, gt, lt)) = self.range {
            if kind.violated(gt, lt, v) {
                return false;
            }
        }
        (self.within.is_empty() || self.within.contains(&v)) && !self.not_in.contains(&v)
    }
}

trait Finite {
    fn finite(self) -> bool;
}
macro_rules! finite_int {
    ($($t:ty),*) => {$(impl Finite for $t { fn finite(self) -> bool { true } })*};
}
finite_int!(i32, i64, u32, u64);
impl Finite for f32 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}
impl Finite for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// Builds [`Num`] from any of protovalidate's numeric rule messages (they
/// share field names, with per-type `GreaterThan`/`LessThan` oneofs).
macro_rules! num_rules {
    ($r:expr, $module:ident, $prefix:literal, $finite:expr) => {{
        use prost_protovalidate::types::$module::{GreaterThan, LessThan};
        let r = $r;
        let (gt, gte) = match &r.greater_than {
            Some(GreaterThan::Gt(v)) => (Some(*v), None),
            Some(GreaterThan::Gte(v)) => (None, Some(*v)),
            None => (None, None),
        };
        let (lt, lte) = match &r.less_than {
            Some(LessThan::Lt(v)) => (Some(*v), None),
            Some(LessThan::Lte(v)) => (None, Some(*v)),
            None => (None, None),
        };
        let range = range_rule($prefix, gt, gte, lt, lte, |_| String::new())
            .map(|rule| (rule.kind, gt.or(gte), lt.or(lte)));
        Num {
            konst: r.r#const,
            range,
            within: r.r#in.clone(),
            not_in: r.not_in.clone(),
            finite: $finite(r),
        }
    }};
}

#[derive(Default)]
struct StrRules {
    konst: Option<String>,
    len: Option<u64>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    len_bytes: Option<u64>,
    min_bytes: Option<u64>,
    max_bytes: Option<u64>,
    pattern: Option<Regex>,
    prefix: Option<String>,
    suffix: Option<String>,
    contains: Option<String>,
    not_contains: Option<String>,
    within: Vec<String>,
    not_in: Vec<String>,
    well_known: Option<fn(&str) -> bool>,
}

impl StrRules {
    fn ok(&self, s: &str) -> bool {
        if self.konst.as_deref().is_some_and(|c| c != s) {
            return false;
        }
        if self.len.is_some() || self.min_len.is_some() || self.max_len.is_some() {
            let chars = s.chars().count() as u64;
            if self.len.is_some_and(|l| chars != l)
                || self.min_len.is_some_and(|l| chars < l)
                || self.max_len.is_some_and(|l| chars > l)
            {
                return false;
            }
        }
        let bytes = s.len() as u64;
        if self.len_bytes.is_some_and(|l| bytes != l)
            || self.min_bytes.is_some_and(|l| bytes < l)
            || self.max_bytes.is_some_and(|l| bytes > l)
        {
            return false;
        }
        if self.pattern.as_ref().is_some_and(|p| !p.is_match(s))
            || self.prefix.as_deref().is_some_and(|p| !s.starts_with(p))
            || self.suffix.as_deref().is_some_and(|p| !s.ends_with(p))
            || self.contains.as_deref().is_some_and(|p| !s.contains(p))
            || self.not_contains.as_deref().is_some_and(|p| s.contains(p))
        {
            return false;
        }
        if !self.within.is_empty() && !self.within.iter().any(|w| w == s) {
            return false;
        }
        if self.not_in.iter().any(|w| w == s) {
            return false;
        }
        // Every well-known format refuses the empty string.
        self.well_known.is_none_or(|f| !s.is_empty() && f(s))
    }
}

struct EnumRules {
    konst: Option<i32>,
    /// Defined numbers, sorted, when `defined_only` is set.
    defined: Option<Vec<i32>>,
    within: Vec<i32>,
    not_in: Vec<i32>,
}

impl EnumRules {
    fn ok(&self, v: i32) -> bool {
        self.konst.is_none_or(|c| c == v)
            && self
                .defined
                .as_ref()
                .is_none_or(|d| d.binary_search(&v).is_ok())
            && (self.within.is_empty() || self.within.contains(&v))
            && !self.not_in.contains(&v)
    }
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}
fn is_address(s: &str) -> bool {
    formats::is_hostname(s) || formats::is_ip(s)
}

fn string_rules(r: &prost_protovalidate::types::StringRules) -> Option<StrRules> {
    let well_known: Option<fn(&str) -> bool> = match r.well_known {
        None => None,
        Some(WellKnown::Email(true)) => Some(formats::is_email),
        Some(WellKnown::Hostname(true)) => Some(formats::is_hostname),
        Some(WellKnown::Ip(true)) => Some(formats::is_ip),
        Some(WellKnown::Ipv4(true)) => Some(is_ipv4),
        Some(WellKnown::Ipv6(true)) => Some(formats::is_ipv6),
        Some(WellKnown::Uri(true)) => Some(formats::is_uri),
        Some(WellKnown::UriRef(true)) => Some(formats::is_uri_ref),
        Some(WellKnown::Uuid(true)) => Some(formats::is_uuid),
        Some(WellKnown::Tuuid(true)) => Some(formats::is_tuuid),
        Some(WellKnown::Address(true)) => Some(is_address),
        Some(WellKnown::Ulid(true)) => Some(formats::is_ulid),
        // Prefix, host-and-port and header formats: the evaluator's.
        Some(_) => return None,
    };
    let pattern = match &r.pattern {
        Some(p) => Some(Regex::new(p).ok()?),
        None => None,
    };
    Some(StrRules {
        konst: r.r#const.clone(),
        len: r.len,
        min_len: r.min_len,
        max_len: r.max_len,
        len_bytes: r.len_bytes,
        min_bytes: r.min_bytes,
        max_bytes: r.max_bytes,
        pattern,
        prefix: r.prefix.clone(),
        suffix: r.suffix.clone(),
        contains: r.contains.clone(),
        not_contains: r.not_contains.clone(),
        within: r.r#in.clone(),
        not_in: r.not_in.clone(),
        well_known,
    })
}

fn no_finite<T>(_: &T) -> bool {
    false
}

/// The rules of a scalar of `kind`, when `ty` is a rule type the plan
/// implements for that kind. A mismatch (string rules on an int) is a
/// schema error the evaluator reports: no plan.
fn scalar_rules(field: &FieldDescriptor, kind: ValueKind, ty: &Type) -> Option<Rules> {
    Some(match (kind, ty) {
        (ValueKind::Int32, Type::Int32(r)) => {
            Rules::I32(num_rules!(r, int32_rules, "int32", no_finite))
        }
        (ValueKind::Sint32, Type::Sint32(r)) => {
            Rules::I32(num_rules!(r, s_int32_rules, "sint32", no_finite))
        }
        (ValueKind::Sfixed32, Type::Sfixed32(r)) => {
            Rules::I32(num_rules!(r, s_fixed32_rules, "sfixed32", no_finite))
        }
        (ValueKind::Int64, Type::Int64(r)) => {
            Rules::I64(num_rules!(r, int64_rules, "int64", no_finite))
        }
        (ValueKind::Sint64, Type::Sint64(r)) => {
            Rules::I64(num_rules!(r, s_int64_rules, "sint64", no_finite))
        }
        (ValueKind::Sfixed64, Type::Sfixed64(r)) => {
            Rules::I64(num_rules!(r, s_fixed64_rules, "sfixed64", no_finite))
        }
        (ValueKind::Uint32, Type::Uint32(r)) => {
            Rules::U32(num_rules!(r, u_int32_rules, "uint32", no_finite))
        }
        (ValueKind::Fixed32, Type::Fixed32(r)) => {
            Rules::U32(num_rules!(r, fixed32_rules, "fixed32", no_finite))
        }
        (ValueKind::Uint64, Type::Uint64(r)) => {
            Rules::U64(num_rules!(r, u_int64_rules, "uint64", no_finite))
        }
        (ValueKind::Fixed64, Type::Fixed64(r)) => {
            Rules::U64(num_rules!(r, fixed64_rules, "fixed64", no_finite))
        }
        (ValueKind::Float, Type::Float(r)) => Rules::F32(num_rules!(
            r,
            float_rules,
            "float",
            |r: &prost_protovalidate::types::FloatRules| r.finite.unwrap_or(false)
        )),
        (ValueKind::Double, Type::Double(r)) => Rules::F64(num_rules!(
            r,
            double_rules,
            "double",
            |r: &prost_protovalidate::types::DoubleRules| r.finite.unwrap_or(false)
        )),
        (ValueKind::Bool, Type::Bool(r)) => Rules::Bool(r.r#const),
        (ValueKind::String, Type::String(r)) => Rules::Str(Box::new(string_rules(r)?)),
        (ValueKind::Enum, Type::Enum(r)) => {
            let Kind::Enum(e) = field.kind() else {
                return None;
            };
            let defined = r.defined_only.unwrap_or(false).then(|| {
                let mut d: Vec<i32> = e.values().map(|v| v.number()).collect();
                d.sort_unstable();
                d
            });
            Rules::Enum(EnumRules {
                konst: r.r#const,
                defined,
                within: r.r#in.clone(),
                not_in: r.not_in.clone(),
            })
        }
        _ => return None,
    })
}

/// True when the field's rule option decodes completely into the typed
/// rules: predefined (extension) rules would be dropped by that decode, so
/// a difference in size means rules the plan cannot see.
fn rules_fully_typed(field: &FieldDescriptor, typed: &FieldRules) -> bool {
    field
        .field_constraints_dynamic()
        .is_none_or(|d| d.encoded_len() == typed.encoded_len())
}

/// Item rules (repeated `items`, map `keys`/`values`): only scalar type
/// rules, nothing else.
fn item_rules(
    field: &FieldDescriptor,
    kind: ValueKind,
    r: Option<&FieldRules>,
) -> Option<Option<Rules>> {
    let Some(r) = r else {
        return Some(None);
    };
    if !r.cel.is_empty()
        || !r.cel_expression.is_empty()
        || r.ignore.is_some()
        || r.required.is_some()
    {
        return None;
    }
    match &r.r#type {
        None => Some(None),
        Some(ty) => scalar_rules(field, kind, ty).map(Some),
    }
}

fn value_kind(field: &FieldDescriptor, kind: Kind, b: &mut Builder) -> Option<ValueKind> {
    Some(match kind {
        Kind::Double => ValueKind::Double,
        Kind::Float => ValueKind::Float,
        Kind::Int32 => ValueKind::Int32,
        Kind::Int64 => ValueKind::Int64,
        Kind::Uint32 => ValueKind::Uint32,
        Kind::Uint64 => ValueKind::Uint64,
        Kind::Sint32 => ValueKind::Sint32,
        Kind::Sint64 => ValueKind::Sint64,
        Kind::Fixed32 => ValueKind::Fixed32,
        Kind::Fixed64 => ValueKind::Fixed64,
        Kind::Sfixed32 => ValueKind::Sfixed32,
        Kind::Sfixed64 => ValueKind::Sfixed64,
        Kind::Bool => ValueKind::Bool,
        Kind::String => ValueKind::String,
        Kind::Bytes => ValueKind::Bytes,
        // Closed (proto2) enums keep unknown numbers aside: not modelled.
        Kind::Enum(e) if e.parent_file().syntax() == Syntax::Proto3 => ValueKind::Enum,
        Kind::Message(m) if !field.is_group() => ValueKind::Message(b.message(&m)?),
        _ => return None,
    })
}

struct Builder {
    msgs: Vec<MsgPlan>,
    index: HashMap<String, usize>,
    /// Messages being built, one within the other.
    depth: u32,
}

impl Builder {
    fn message(&mut self, desc: &MessageDescriptor) -> Option<usize> {
        if let Some(i) = self.index.get(desc.full_name()) {
            return Some(*i);
        }
        // A chain of message types deeper than values may nest gets no
        // plan (the evaluator decides).
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let built = self.new_message(desc);
        self.depth -= 1;
        built
    }

    fn new_message(&mut self, desc: &MessageDescriptor) -> Option<usize> {
        if desc.parent_file().syntax() != Syntax::Proto3 {
            return None;
        }
        let at = self.msgs.len();
        self.msgs.push(MsgPlan::default());
        self.index.insert(desc.full_name().to_string(), at);
        if let Some(r) = desc.message_constraints().ok()? {
            if !r.cel.is_empty() || !r.cel_expression.is_empty() || !r.oneof.is_empty() {
                return None;
            }
        }
        let mut fields: Vec<(u32, FieldPlan, Option<String>)> = Vec::new();
        for f in desc.fields() {
            let oneof = f
                .containing_oneof()
                .filter(|o| !o.is_synthetic())
                .map(|o| o.name().to_string());
            fields.push((f.number(), self.field(&f)?, oneof));
        }
        fields.sort_by_key(|(n, _, _)| *n);
        let mut oneofs: Vec<(Vec<usize>, bool)> = Vec::new();
        for o in desc.oneofs().filter(|o| !o.is_synthetic()) {
            let members = fields
                .iter()
                .enumerate()
                .filter(|(_, (_, _, of))| of.as_deref() == Some(o.name()))
                .map(|(i, _)| i)
                .collect();
            oneofs.push((members, o.try_is_required().ok()?));
        }
        let plan = &mut self.msgs[at];
        plan.numbers = fields.iter().map(|(n, _, _)| *n).collect();
        plan.fields = fields.into_iter().map(|(_, f, _)| f).collect();
        plan.oneofs = oneofs;
        Some(at)
    }

    fn field(&mut self, f: &FieldDescriptor) -> Option<FieldPlan> {
        if f.is_required() {
            return None;
        }
        let rules = f.field_constraints().ok()?;
        if let Some(r) = &rules {
            if !rules_fully_typed(f, r)
                || !r.cel.is_empty()
                || !r.cel_expression.is_empty()
                || r.ignore.is_some_and(|i| i != 0)
            {
                return None;
            }
        }
        let required = rules.as_ref().and_then(|r| r.required).unwrap_or(false);
        let ty = rules.as_ref().and_then(|r| r.r#type.as_ref());
        let mut plan = FieldPlan {
            kind: ValueKind::Bool,
            repeated: false,
            presence: f.supports_presence(),
            required,
            rules: None,
            zero_ok: true,
            min_items: None,
            max_items: None,
        };
        if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return None;
            };
            let (keys, values, max) = match ty {
                None => (None, None, None),
                Some(Type::Map(m)) => {
                    if m.min_pairs.is_some() {
                        return None;
                    }
                    (m.keys.as_deref(), m.values.as_deref(), m.max_pairs)
                }
                Some(_) => return None,
            };
            if required {
                return None;
            }
            plan.kind = ValueKind::Message(self.map_entry(&entry, keys, values)?);
            plan.repeated = true;
            plan.max_items = max;
            return Some(plan);
        }
        plan.kind = value_kind(f, f.kind(), self)?;
        if f.is_list() {
            plan.repeated = true;
            match ty {
                None => {}
                Some(Type::Repeated(r)) => {
                    if r.unique.unwrap_or(false) {
                        return None;
                    }
                    plan.min_items = r.min_items;
                    plan.max_items = r.max_items;
                    if matches!(plan.kind, ValueKind::Message(_)) {
                        if r.items.is_some() {
                            return None;
                        }
                    } else {
                        plan.rules = item_rules(f, plan.kind, r.items.as_deref())?;
                    }
                }
                Some(_) => return None,
            }
            return Some(plan);
        }
        if let Some(ty) = ty {
            if matches!(plan.kind, ValueKind::Message(_)) {
                return None;
            }
            plan.rules = Some(scalar_rules(f, plan.kind, ty)?);
        }
        plan.zero_ok = plan.rules.as_ref().is_none_or(|r| r.ok(zero_of(plan.kind)));
        Some(plan)
    }

    /// A map entry's plan carries the map field's `keys`/`values` rules.
    fn map_entry(
        &mut self,
        entry: &MessageDescriptor,
        keys: Option<&FieldRules>,
        values: Option<&FieldRules>,
    ) -> Option<usize> {
        let at = self.msgs.len();
        self.msgs.push(MsgPlan::default());
        let mut fields = Vec::new();
        for (number, rules) in [(1, keys), (2, values)] {
            let f = entry.get_field(number)?;
            let kind = value_kind(&f, f.kind(), self)?;
            let rules = match kind {
                ValueKind::Message(_) if rules.is_some_and(|r| r.r#type.is_some()) => return None,
                ValueKind::Message(_) => None,
                _ => item_rules(&f, kind, rules)?,
            };
            let zero_ok = rules.as_ref().is_none_or(|r| r.ok(zero_of(kind)));
            fields.push(FieldPlan {
                kind,
                repeated: false,
                // Keys and values always exist once the entry does.
                presence: false,
                required: false,
                rules,
                zero_ok,
                min_items: None,
                max_items: None,
            });
        }
        let plan = &mut self.msgs[at];
        plan.numbers = vec![1, 2];
        plan.fields = fields;
        Some(at)
    }
}

impl WirePlan {
    /// Builds the plan of `desc`, or None when its rules (or those of a
    /// message it holds) go beyond what the plan implements.
    pub fn build(desc: &MessageDescriptor) -> Option<WirePlan> {
        let mut b = Builder {
            msgs: Vec::new(),
            index: HashMap::new(),
            depth: 0,
        };
        let root = b.message(desc)?;
        debug_assert_eq!(root, 0);
        Some(WirePlan { msgs: b.msgs })
    }

    /// True when `payload` certainly decodes as the message and satisfies
    /// its rules. False means "not sure": ask the dynamic evaluator.
    pub fn certainly_valid(&self, payload: &[u8]) -> bool {
        self.message(0, payload, 0)
    }

    fn message(&self, at: usize, bytes: &[u8], depth: u32) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let plan = &self.msgs[at];
        let mut small = [0u32; 32];
        let mut large = Vec::new();
        let counts: &mut [u32] = if plan.fields.len() <= small.len() {
            &mut small[..plan.fields.len()]
        } else {
            large.resize(plan.fields.len(), 0);
            &mut large
        };
        for field in Scanner::new(bytes) {
            let Ok(field) = field else {
                return false;
            };
            let Ok(i) = plan.numbers.binary_search(&field.number) else {
                // Unknown fields are kept aside by the decoder; the scanner
                // has checked they are well formed.
                continue;
            };
            let fp = &plan.fields[i];
            counts[i] += 1;
            if !fp.repeated && counts[i] > 1 {
                // Last one wins, messages merge: the evaluator's business.
                return false;
            }
            let ok = match (fp.kind, field.value) {
                (ValueKind::Message(sub), WireValue::Len(b)) => self.message(sub, b, depth + 1),
                (ValueKind::Message(_), _) => false,
                (kind, WireValue::Len(b)) if fp.repeated && kind.packable() => {
                    match packed(kind, b, fp.rules.as_ref()) {
                        Some(n) => {
                            counts[i] += n.saturating_sub(1);
                            // An empty packed run adds nothing.
                            if n == 0 {
                                counts[i] -= 1;
                            }
                            true
                        }
                        None => false,
                    }
                }
                (kind, w) => match decode(kind, w) {
                    Some(v) => {
                        fp.rules.as_ref().is_none_or(|r| r.ok(v))
                            && !(fp.required && !fp.presence && v.is_zero())
                    }
                    None => false,
                },
            };
            if !ok {
                return false;
            }
        }
        for (fp, n) in plan.fields.iter().zip(counts.iter()) {
            let n = u64::from(*n);
            if fp.repeated {
                if (fp.required && n == 0)
                    || fp.min_items.is_some_and(|m| n < m)
                    || fp.max_items.is_some_and(|m| n > m)
                {
                    return false;
                }
            } else if n == 0 && !fp.presence {
                // An absent implicit field is its zero value; an absent map
                // entry value is the empty message, validated as such.
                let ok = match fp.kind {
                    ValueKind::Message(sub) => self.message(sub, &[], depth + 1),
                    _ => fp.zero_ok,
                };
                if fp.required || !ok {
                    return false;
                }
            } else if n == 0 && fp.required {
                return false;
            }
        }
        plan.oneofs.iter().all(|(members, required)| {
            let set = members.iter().filter(|i| counts[**i] > 0).count();
            set <= 1 && (set == 1 || !required)
        })
    }
}

/// Checks a packed run; the number of items, or None.
fn packed(kind: ValueKind, b: &[u8], rules: Option<&Rules>) -> Option<u32> {
    let wire_type = match kind {
        ValueKind::Fixed32 | ValueKind::Sfixed32 | ValueKind::Float => 5,
        ValueKind::Fixed64 | ValueKind::Sfixed64 | ValueKind::Double => 1,
        _ => 0,
    };
    let mut n = 0u32;
    for w in scan::packed(b, wire_type) {
        let v = decode(kind, w.ok()?)?;
        if !rules.is_none_or(|r| r.ok(v)) {
            return None;
        }
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, CompiledSchema};
    use crate::testutil::Rng;
    use crate::validate::validate_dynamic;
    use prost_reflect::{DynamicMessage, MapKey, Value};

    const SCHEMA: &str = r#"syntax = "proto3"; package d;
        import "buf/validate/validate.proto";
        import "google/protobuf/timestamp.proto";
        enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
        message Inner {
          string code = 1 [(buf.validate.field).string = {min_len: 1, max_len: 4, pattern: "^[A-Zé]+$"}];
          sint32 delta = 2 [(buf.validate.field).sint32 = {gt: -5, lt: 5}];
        }
        message Root {
          int32 a = 1 [(buf.validate.field).int32 = {gte: 0, lte: 100}];
          int64 b = 2 [(buf.validate.field).int64 = {gt: 10, lt: 5}];
          uint32 c = 3 [(buf.validate.field).uint32 = {in: [1, 2, 3]}];
          double d = 4 [(buf.validate.field).double = {finite: true, gte: -1.5}];
          string e = 5 [(buf.validate.field).string.email = true];
          string u = 6 [(buf.validate.field).string.uuid = true];
          Color col = 7 [(buf.validate.field).enum = {defined_only: true, not_in: [2]}];
          repeated int32 nums = 8 [(buf.validate.field).repeated = {min_items: 1, max_items: 4, items: {int32: {gt: 0}}}];
          map<string, int64> attrs = 9 [(buf.validate.field).map = {max_pairs: 2, keys: {string: {min_len: 1}}, values: {int64: {gte: 0}}}];
          Inner inner = 10 [(buf.validate.field).required = true];
          repeated Inner inners = 11;
          optional string opt = 12 [(buf.validate.field).string.prefix = "x"];
          oneof choice {
            option (buf.validate.oneof).required = true;
            string s1 = 13 [(buf.validate.field).string.len = 2];
            int32 s2 = 14;
          }
          bool flag = 15 [(buf.validate.field).bool.const = true];
          fixed64 f64 = 16 [(buf.validate.field).fixed64 = {not_in: [7]}];
          float fl = 17 [(buf.validate.field).float = {lt: 10}];
          map<int32, Inner> by_id = 18;
          string name = 19 [(buf.validate.field).string = {not_contains: "bad", in: ["", "ann", "bob", "badger"]}];
          google.protobuf.Timestamp at = 20;
          repeated string tags = 21 [(buf.validate.field).repeated.items.string.max_bytes = 3];
        }"#;

    /// Mostly a valid value, now and then one that breaks a rule.
    fn v<T: Clone>(rng: &mut Rng, good: &[T], bad: &[T]) -> T {
        if rng.chance(4) {
            rng.pick(bad)
        } else {
            rng.pick(good)
        }
    }

    fn inner(c: &CompiledSchema, rng: &mut Rng) -> Value {
        let mut m = DynamicMessage::new(c.pool.get_message_by_name("d.Inner").unwrap());
        let code = v(rng, &["AB", "Zé", "Q"], &["", "abc", "ABCDE"]);
        m.set_field_by_name("code", Value::String(code.into()));
        if rng.chance(50) {
            m.set_field_by_name("delta", Value::I32(v(rng, &[-4, 0, 4], &[-5, 5])));
        }
        Value::Message(m)
    }

    /// A random Root: mostly valid values, some breaking one rule.
    fn root(c: &CompiledSchema, rng: &mut Rng) -> DynamicMessage {
        let mut m = DynamicMessage::new(c.pool.get_message_by_name("d.Root").unwrap());
        let s = |x: &str| Value::String(x.into());
        let set = |m: &mut DynamicMessage, name: &str, v: Value| m.set_field_by_name(name, v);
        if rng.chance(80) {
            set(&mut m, "a", Value::I32(v(rng, &[0, 50, 100], &[101, -1])));
        }
        set(
            &mut m,
            "b",
            Value::I64(v(rng, &[4, 11, -3], &[0, 5, 10, 7])),
        );
        if !rng.chance(3) {
            set(&mut m, "c", Value::U32(v(rng, &[1, 2, 3], &[4])));
        }
        if rng.chance(70) {
            let d = v(rng, &[0.0, -1.5, 3.25], &[-2.0, f64::INFINITY]);
            set(&mut m, "d", Value::F64(d));
        }
        let e = v(
            rng,
            &["a@b.co", "x.y+z@example.com"],
            &["nope", "", "a@b..c"],
        );
        set(&mut m, "e", s(e));
        let u = v(
            rng,
            &["5f0c3a9e-2b7d-4c1e-9a34-0d6f1c2b8e77"],
            &["5f0c3a9e", ""],
        );
        set(&mut m, "u", s(u));
        if rng.chance(70) {
            set(&mut m, "col", Value::EnumNumber(v(rng, &[0, 1], &[2, 9])));
        }
        let n = v(rng, &[1usize, 2, 4], &[0, 5]);
        let nums = (0..n)
            .map(|_| Value::I32(v(rng, &[1, 2, 30], &[0, -3])))
            .collect();
        set(&mut m, "nums", Value::List(nums));
        let pairs = v(rng, &[0usize, 1, 2], &[3]);
        let attrs = (0..pairs)
            .map(|i| {
                let k = v(rng, &[format!("k{i}")], &[String::new()]);
                (MapKey::String(k), Value::I64(v(rng, &[0, 5], &[-1])))
            })
            .collect();
        set(&mut m, "attrs", Value::Map(attrs));
        if !rng.chance(3) {
            let i = inner(c, rng);
            set(&mut m, "inner", i);
        }
        let n = rng.pick(&[0usize, 1, 3]);
        let inners = (0..n).map(|_| inner(c, rng)).collect();
        set(&mut m, "inners", Value::List(inners));
        if rng.chance(50) {
            set(&mut m, "opt", s(v(rng, &["xa", "x"], &["ya", ""])));
        }
        match rng.next() % 40 {
            0 => {}
            1..=20 => set(&mut m, "s1", s(v(rng, &["ab"], &["abc", ""]))),
            _ => set(&mut m, "s2", Value::I32(rng.pick(&[0, 7]))),
        }
        set(&mut m, "flag", Value::Bool(v(rng, &[true], &[false])));
        if rng.chance(50) {
            set(&mut m, "f64", Value::U64(v(rng, &[0, 8], &[7])));
        }
        if rng.chance(50) {
            set(&mut m, "fl", Value::F32(v(rng, &[0.0, 9.5, -3.0], &[10.0])));
        }
        if rng.chance(30) {
            let by_id = (0..rng.pick(&[1i32, 2]))
                .map(|i| (MapKey::I32(i), inner(c, rng)))
                .collect();
            set(&mut m, "by_id", Value::Map(by_id));
        }
        set(
            &mut m,
            "name",
            s(v(rng, &["", "ann", "bob"], &["badger", "carl"])),
        );
        if rng.chance(30) {
            let ts = c
                .pool
                .get_message_by_name("google.protobuf.Timestamp")
                .unwrap();
            let mut t = DynamicMessage::new(ts);
            t.set_field_by_name("seconds", Value::I64(1_700_000_000));
            set(&mut m, "at", Value::Message(t));
        }
        let n = rng.pick(&[0usize, 1, 2]);
        let tags = (0..n)
            .map(|_| s(v(rng, &["abc", "é"], &["abcd"])))
            .collect();
        set(&mut m, "tags", Value::List(tags));
        m
    }

    #[test]
    fn the_plan_agrees_with_the_evaluator_on_generated_values() {
        let c = compile(SCHEMA, &[]).unwrap();
        let desc = c.pool.get_message_by_name("d.Root").unwrap();
        let plan = WirePlan::build(&desc).expect("every rule here has a plan");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..20_000 {
            let bytes = prost::Message::encode_to_vec(&root(&c, &mut rng));
            let fast = plan.certainly_valid(&bytes);
            let slow = validate_dynamic(&c, &desc, &bytes);
            // Canonical encodings without NaN: the plan is exact both ways.
            assert_eq!(fast, slow.is_ok(), "plan {fast}, evaluator {slow:?}");
            if fast {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(
            valid > 500 && invalid > 500,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn the_plan_never_accepts_what_the_evaluator_refuses_in_mangled_bytes() {
        let c = compile(SCHEMA, &[]).unwrap();
        let desc = c.pool.get_message_by_name("d.Root").unwrap();
        let plan = WirePlan::build(&desc).unwrap();
        let mut rng = Rng(42);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut bytes = prost::Message::encode_to_vec(&root(&c, &mut rng));
            match rng.next() % 5 {
                0 if !bytes.is_empty() => {
                    let i = (rng.next() % bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << (rng.next() % 8);
                }
                1 if !bytes.is_empty() => {
                    let n = (rng.next() % bytes.len() as u64) as usize;
                    bytes.truncate(n);
                }
                2 => {
                    // A second copy of some field: last wins, messages merge.
                    let again = bytes.clone();
                    let i = (rng.next() % (again.len() as u64 + 1)) as usize;
                    bytes.extend_from_slice(&again[i..]);
                }
                3 => {
                    let b = rng.next();
                    bytes.extend_from_slice(&b.to_le_bytes()[..(b % 6) as usize]);
                }
                _ => {}
            }
            if plan.certainly_valid(&bytes) {
                accepted += 1;
                let slow = validate_dynamic(&c, &desc, &bytes);
                assert!(
                    slow.is_ok(),
                    "plan accepted what the evaluator refuses: {slow:?}"
                );
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn rules_beyond_the_plan_leave_the_evaluator_in_charge() {
        for (schema, why) in [
            (
                r#"syntax = "proto3"; import "buf/validate/validate.proto";
                message M { int32 a = 1; option (buf.validate.message).cel = {id: "x", expression: "this.a > 0"}; }"#,
                "message CEL",
            ),
            (
                r#"syntax = "proto3"; import "buf/validate/validate.proto";
                message M { repeated int32 a = 1 [(buf.validate.field).repeated.unique = true]; }"#,
                "unique",
            ),
            (
                r#"syntax = "proto3"; import "buf/validate/validate.proto";
                message M { bytes a = 1 [(buf.validate.field).bytes.min_len = 1]; }"#,
                "bytes rules",
            ),
            (
                r#"syntax = "proto3"; import "buf/validate/validate.proto";
                message N { string s = 1 [(buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE, (buf.validate.field).string.min_len = 2]; }
                message M { N n = 1; }"#,
                "ignore in a nested message",
            ),
            (
                r#"syntax = "proto2"; message M { optional int32 a = 1; }"#,
                "proto2",
            ),
        ] {
            let c = compile(schema, &[]).unwrap();
            let m = c.pool.all_messages().find(|m| m.name() == "M").unwrap();
            assert!(WirePlan::build(&m).is_none(), "{why}");
        }
    }
}
