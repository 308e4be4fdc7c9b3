//! Compatibility of schema versions under protobuf's wire rules.
//!
//! Data written with one version must decode with the other: a message
//! may not disappear (its full name is how readers find it), a field
//! number may not change to a type with another wire encoding or another
//! named type, may not switch between singular and repeated, and several
//! existing fields may not move into one oneof. Adding and removing fields
//! is compatible (unknown fields are skipped, missing ones read as
//! defaults), as is renaming them. The rules are symmetric, so BACKWARD and
//! FORWARD differ only in which versions they compare against.

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

use crate::compile::CompiledSchema;

/// A subject's compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No check.
    None,
    /// New schema reads data of the latest version.
    Backward,
    /// New schema reads data of every version.
    BackwardTransitive,
    /// Latest version reads data of the new schema.
    Forward,
    /// Every version reads data of the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
}

impl Level {
    /// Parses Confluent's name.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    /// Confluent's name.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// True when every earlier version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

/// Checks `new` against the earlier versions the level names (oldest
/// first); returns the problems found, empty when compatible.
pub fn check(level: Level, new: &CompiledSchema, earlier: &[CompiledSchema]) -> Vec<String> {
    let against: &[CompiledSchema] = match (level, earlier.len()) {
        (Level::None, _) | (_, 0) => return Vec::new(),
        (l, n) if !l.transitive() => &earlier[n - 1..],
        _ => earlier,
    };
    let mut problems = Vec::new();
    for old in against {
        // Symmetric rules: comparing in one direction covers both.
        compare(old, new, &mut problems);
    }
    problems.dedup();
    problems
}

fn all_messages(m: MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
    for c in m.child_messages() {
        if !c.is_map_entry() {
            all_messages(c, out);
        }
    }
    out.push(m);
}

/// Wire encoding family of a field's kind; fields in one family read each
/// other's bytes.
fn family(f: &FieldDescriptor) -> String {
    match f.kind() {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool => "varint".into(),
        Kind::Sint32 | Kind::Sint64 => "zigzag".into(),
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32".into(),
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64".into(),
        Kind::Float => "float".into(),
        Kind::Double => "double".into(),
        Kind::String | Kind::Bytes => "bytes".into(),
        Kind::Message(m) if f.is_map() => format!(
            "map<{}, {}>",
            family(&m.map_entry_key_field()),
            family(&m.map_entry_value_field())
        ),
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
    }
}

fn compare(old: &CompiledSchema, new: &CompiledSchema, problems: &mut Vec<String>) {
    let mut old_messages = Vec::new();
    for m in old.file.messages() {
        all_messages(m, &mut old_messages);
    }
    for om in old_messages {
        let Some(nm) = new.pool.get_message_by_name(om.full_name()) else {
            problems.push(format!(
                "MESSAGE_REMOVED: message {} was removed",
                om.full_name()
            ));
            continue;
        };
        let mut moved_into: std::collections::HashMap<String, u32> = Default::default();
        for of in om.fields() {
            let Some(nf) = nm.get_field(of.number()) else {
                continue;
            };
            let (a, b) = (family(&of), family(&nf));
            if a != b {
                problems.push(format!(
                    "FIELD_KIND_CHANGED: field {} (number {}) of {} changed from {a} to {b}",
                    nf.name(),
                    nf.number(),
                    om.full_name()
                ));
            }
            let repeated = |f: &FieldDescriptor| f.cardinality() == Cardinality::Repeated;
            if repeated(&of) != repeated(&nf) && !of.is_map() && !nf.is_map() {
                problems.push(format!(
                    "FIELD_LABEL_CHANGED: field {} (number {}) of {} changed between singular and repeated",
                    nf.name(),
                    nf.number(),
                    om.full_name()
                ));
            }
            let real_oneof =
                |f: &FieldDescriptor| f.containing_oneof().filter(|o| !o.is_synthetic());
            if let (None, Some(o)) = (real_oneof(&of), real_oneof(&nf)) {
                *moved_into.entry(o.name().to_string()).or_default() += 1;
            }
        }
        for (oneof, n) in moved_into {
            if n > 1 {
                problems.push(format!(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF: {n} existing fields of {} moved into oneof {oneof}",
                    om.full_name()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;

    fn c(body: &str) -> CompiledSchema {
        compile(&format!("syntax = \"proto3\"; package t; {body}"), &[]).unwrap()
    }

    #[test]
    fn wire_rules_decide() {
        let v1 = c("message A { string s = 1; int32 n = 2; }");
        let ok = [
            "message A { string s = 1; int32 n = 2; string added = 3; }",
            "message A { string s = 1; }",
            "message A { bytes renamed = 1; int64 n = 2; }",
            "message A { string s = 1; int32 n = 2; } message B {}",
        ];
        for body in ok {
            assert_eq!(
                check(Level::Backward, &c(body), std::slice::from_ref(&v1)),
                Vec::<String>::new(),
                "{body}"
            );
        }
        let bad = [
            (
                "message A { int32 s = 1; int32 n = 2; }",
                "FIELD_KIND_CHANGED",
            ),
            (
                "message A { string s = 1; repeated int32 n = 2; }",
                "FIELD_LABEL_CHANGED",
            ),
            ("message Renamed { string s = 1; }", "MESSAGE_REMOVED"),
            (
                "message A { oneof o { string s = 1; int32 n = 2; } }",
                "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            ),
        ];
        for (body, problem) in bad {
            let p = check(Level::Backward, &c(body), std::slice::from_ref(&v1));
            assert!(p.iter().any(|m| m.starts_with(problem)), "{body}: {p:?}");
            assert!(check(Level::None, &c(body), std::slice::from_ref(&v1)).is_empty());
        }
    }

    #[test]
    fn transitive_levels_check_every_version() {
        let v1 = c("message A { string s = 1; }");
        let v2 = c("message A { }");
        let v3 = c("message A { int32 s = 1; }");
        assert!(check(Level::Backward, &v3, &[v1.clone(), v2.clone()]).is_empty());
        assert!(!check(Level::BackwardTransitive, &v3, &[v1, v2]).is_empty());
    }
}
