//! Field policies: which fields a consumer's purpose may see.
//!
//! A field is restricted when it carries `(floe.policy.v1.field)` (a
//! classification and the purposes allowed to see it) or the standard
//! `debug_redact = true` (no purpose may see it). Everything else passes
//! through untouched. Redaction clears the restricted fields a purpose may
//! not see, at any depth (nested messages, lists and map values), and the
//! caller re-encodes the message.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::scan::{write_varint, Malformed, Scanner, WireValue};
#[cfg(test)]
use prost_reflect::{DynamicMessage, ReflectMessage};

use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, Value};

/// Who may see one restricted field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldPolicy {
    /// Field number.
    #[serde(skip)]
    pub number: u32,
    /// Field name.
    pub field: String,
    /// Classification, for example "PII"; "debug_redact" for that option.
    pub classification: String,
    /// Purposes allowed to see the field (empty: none).
    pub purposes: Vec<String>,
}

impl FieldPolicy {
    /// True when `purpose` may see the field.
    pub fn allows(&self, purpose: Option<&str>) -> bool {
        purpose.is_some_and(|p| self.purposes.iter().any(|a| a == p))
    }
}

/// The restricted fields of every message a schema can reach.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// Restricted fields by message full name.
    fields: BTreeMap<String, Vec<FieldPolicy>>,
    /// Messages that hold a restricted field at any depth.
    tainted: HashSet<String>,
    /// What to do with each field of a tainted message, on the wire.
    wire: Vec<WireMessage>,
    /// Index into `wire` by message full name.
    wire_index: HashMap<String, usize>,
}

/// The fields of a tainted message that redaction touches, by number
/// (sorted); every other declared field passes as its bytes.
#[derive(Debug, Default)]
struct WireMessage {
    /// Every declared field number, sorted, and what happens to it.
    numbers: Vec<u32>,
    actions: Vec<WireAction>,
}

#[derive(Debug)]
enum WireAction {
    Keep,
    /// Dropped unless the purpose is allowed.
    Restricted(FieldPolicy),
    /// A message (or map entry) holding restricted fields: rewritten.
    Descend(usize),
}

/// Deeper than this, a value is withheld rather than walked.
const MAX_DEPTH: u32 = 100;

fn policy_of(field: &FieldDescriptor) -> Option<FieldPolicy> {
    let options = field.options();
    let pool = field.parent_pool();
    if let Some(ext) = pool.get_extension_by_name("floe.policy.v1.field") {
        if options.has_extension(&ext) {
            if let Value::Message(p) = options.get_extension(&ext).as_ref() {
                let classification = p
                    .get_field_by_name("classification")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let purposes = p
                    .get_field_by_name("purposes")
                    .and_then(|v| {
                        v.as_list().map(|l| {
                            l.iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                return Some(FieldPolicy {
                    number: field.number(),
                    field: field.name().to_string(),
                    classification,
                    purposes,
                });
            }
        }
    }
    let redact = options
        .get_field_by_name("debug_redact")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    redact.then(|| FieldPolicy {
        number: field.number(),
        field: field.name().to_string(),
        classification: "debug_redact".into(),
        purposes: Vec::new(),
    })
}

fn message_kind(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m) if field.is_map() => match m.map_entry_value_field().kind() {
            Kind::Message(v) => Some(v),
            _ => None,
        },
        Kind::Message(m) => Some(m),
        _ => None,
    }
}

impl PolicyIndex {
    /// Indexes every message of the file's pool.
    pub fn build(file: &FileDescriptor) -> PolicyIndex {
        let mut index = PolicyIndex::default();
        let pool = file.parent_pool();
        for m in pool.all_messages() {
            let restricted: Vec<FieldPolicy> = m.fields().filter_map(|f| policy_of(&f)).collect();
            if !restricted.is_empty() {
                index.fields.insert(m.full_name().to_string(), restricted);
            }
        }
        // A message is tainted if it, or a message it holds, has a
        // restricted field: iterate to a fixed point (recursive types).
        index.tainted = index.fields.keys().cloned().collect();
        loop {
            let before = index.tainted.len();
            for m in pool.all_messages() {
                if index.tainted.contains(m.full_name()) {
                    continue;
                }
                if m.fields().any(|f| {
                    message_kind(&f).is_some_and(|k| index.tainted.contains(k.full_name()))
                }) {
                    index.tainted.insert(m.full_name().to_string());
                }
            }
            if index.tainted.len() == before {
                break;
            }
        }
        let tainted: Vec<MessageDescriptor> = pool
            .all_messages()
            .filter(|m| index.tainted.contains(m.full_name()))
            .collect();
        for (i, m) in tainted.iter().enumerate() {
            index.wire_index.insert(m.full_name().to_string(), i);
        }
        for m in &tainted {
            let mut fields: Vec<(u32, WireAction)> = m
                .fields()
                .map(|f| {
                    let action = match (policy_of(&f), f.kind()) {
                        (Some(p), _) => WireAction::Restricted(p),
                        (None, Kind::Message(k)) => match index.wire_index.get(k.full_name()) {
                            Some(i) => WireAction::Descend(*i),
                            None => WireAction::Keep,
                        },
                        (None, _) => WireAction::Keep,
                    };
                    (f.number(), action)
                })
                .collect();
            fields.sort_by_key(|(n, _)| *n);
            let (numbers, actions) = fields.into_iter().unzip();
            index.wire.push(WireMessage { numbers, actions });
        }
        index
    }

    /// Redacts a value's protobuf bytes for `purpose` without decoding
    /// it: restricted fields the purpose may not see are cut out, messages
    /// holding them are rewritten with their new length, and every other
    /// byte is kept as the producer wrote it. Fields the schema does not
    /// declare are cut from restricted messages too: what cannot be
    /// classified is not passed on. `Ok(None)`: nothing to remove.
    /// `Err(Malformed)`: the bytes do not parse; withhold the value.
    pub fn redact_wire(
        &self,
        message: &MessageDescriptor,
        payload: &[u8],
        purpose: Option<&str>,
    ) -> Result<Option<Vec<u8>>, Malformed> {
        match self.wire_index.get(message.full_name()) {
            Some(at) => self.redact_at(*at, payload, purpose, 0),
            None => Ok(None),
        }
    }

    fn redact_at(
        &self,
        at: usize,
        bytes: &[u8],
        purpose: Option<&str>,
        depth: u32,
    ) -> Result<Option<Vec<u8>>, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let plan = &self.wire[at];
        let mut out: Option<Vec<u8>> = None;
        for field in Scanner::new(bytes) {
            let field = field?;
            let action = plan
                .numbers
                .binary_search(&field.number)
                .ok()
                .map(|i| &plan.actions[i]);
            let rewritten = match action {
                Some(WireAction::Keep) => None,
                Some(WireAction::Restricted(p)) if p.allows(purpose) => None,
                None | Some(WireAction::Restricted(_)) => Some(None),
                Some(WireAction::Descend(sub)) => {
                    let WireValue::Len(inner) = field.value else {
                        return Err(Malformed);
                    };
                    self.redact_at(*sub, inner, purpose, depth + 1)?.map(Some)
                }
            };
            match (rewritten, &mut out) {
                (None, None) => {}
                (None, Some(o)) => o.extend_from_slice(&bytes[field.start..field.end]),
                (Some(replacement), o) => {
                    let o = o.get_or_insert_with(|| {
                        let mut v = Vec::with_capacity(bytes.len());
                        v.extend_from_slice(&bytes[..field.start]);
                        v
                    });
                    if let Some(inner) = replacement {
                        write_varint(o, (u64::from(field.number) << 3) | 2);
                        write_varint(o, inner.len() as u64);
                        o.extend_from_slice(&inner);
                    }
                }
            }
        }
        Ok(out)
    }

    /// True when a message holds restricted fields at any depth.
    pub fn is_restricted(&self, message: &MessageDescriptor) -> bool {
        self.tainted.contains(message.full_name())
    }

    /// Restricted fields by message, for the policy listing.
    pub fn all(&self) -> &BTreeMap<String, Vec<FieldPolicy>> {
        &self.fields
    }

    /// Clears every field `purpose` may not see; true if anything changed.
    /// The reference the wire redaction is tested against.
    #[cfg(test)]
    pub fn redact(&self, msg: &mut DynamicMessage, purpose: Option<&str>) -> bool {
        let desc = msg.descriptor();
        if !self.is_restricted(&desc) {
            return false;
        }
        let mut changed = false;
        if let Some(fields) = self.fields.get(desc.full_name()) {
            for p in fields {
                if !p.allows(purpose) && msg.has_field_by_number(p.number) {
                    msg.clear_field_by_number(p.number);
                    changed = true;
                }
            }
        }
        for f in desc.fields() {
            let Some(kind) = message_kind(&f) else {
                continue;
            };
            if !self.is_restricted(&kind) || !msg.has_field(&f) {
                continue;
            }
            match msg.get_field_mut(&f) {
                Value::Message(m) => changed |= self.redact(m, purpose),
                Value::List(items) => {
                    for v in items.iter_mut() {
                        if let Value::Message(m) = v {
                            changed |= self.redact(m, purpose);
                        }
                    }
                }
                Value::Map(entries) => {
                    for v in entries.values_mut() {
                        if let Value::Message(m) = v {
                            changed |= self.redact(m, purpose);
                        }
                    }
                }
                _ => {}
            }
        }
        changed
    }
}

/// The purpose a client states in its `client.id`: `…;purpose=<name>;…`.
pub fn purpose_from_client_id(client_id: &str) -> Option<&str> {
    client_id
        .split([';', ','])
        .find_map(|part| part.trim().strip_prefix("purpose="))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use prost::Message;

    const SCHEMA: &str = r#"syntax = "proto3"; package p;
        import "floe/policy/v1/policy.proto";
        message Customer {
          string name = 1;
          string email = 2 [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
          string card = 3 [(floe.policy.v1.field) = {classification: "FINANCIAL", purposes: ["billing"]}];
          string secret = 4 [debug_redact = true];
          Address home = 5;
          repeated Address others = 6;
          map<string, Address> by_label = 7;
        }
        message Address { string city = 1; string street = 2 [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}]; }"#;

    fn sample(c: &crate::compile::CompiledSchema) -> DynamicMessage {
        let desc = c.message_at(&[0]).unwrap();
        let addr = c.message_at(&[1]).unwrap();
        let mut a = DynamicMessage::new(addr);
        a.set_field_by_name("city", Value::String("Oslo".into()));
        a.set_field_by_name("street", Value::String("Main 1".into()));
        let mut m = DynamicMessage::new(desc);
        for (k, v) in [
            ("name", "Ann"),
            ("email", "a@x"),
            ("card", "4111"),
            ("secret", "s"),
        ] {
            m.set_field_by_name(k, Value::String(v.into()));
        }
        m.set_field_by_name("home", Value::Message(a.clone()));
        m.set_field_by_name("others", Value::List(vec![Value::Message(a.clone())]));
        m.set_field_by_name(
            "by_label",
            Value::Map([(prost_reflect::MapKey::String("w".into()), Value::Message(a))].into()),
        );
        m
    }

    fn text(m: &DynamicMessage) -> String {
        format!("{m:?}")
    }

    #[test]
    fn each_purpose_sees_exactly_its_fields() {
        let c = compile(SCHEMA, &[]).unwrap();
        let cases = [
            (
                Some("support"),
                ["a@x", "Main 1"].as_slice(),
                ["4111", "\"s\""].as_slice(),
            ),
            (
                Some("billing"),
                ["4111"].as_slice(),
                ["a@x", "Main 1", "\"s\""].as_slice(),
            ),
            (
                None,
                [].as_slice(),
                ["a@x", "4111", "Main 1", "\"s\""].as_slice(),
            ),
        ];
        for (purpose, visible, hidden) in cases {
            let mut m = sample(&c);
            assert!(c.policies.redact(&mut m, purpose));
            let bytes = m.encode_to_vec();
            let back = DynamicMessage::decode(m.descriptor(), bytes.as_slice()).unwrap();
            let t = text(&back);
            assert!(t.contains("Ann") && t.contains("Oslo"), "{t}");
            for v in visible {
                assert!(t.contains(v), "{purpose:?} should see {v}: {t}");
            }
            for v in hidden {
                assert!(!t.contains(v), "{purpose:?} must not see {v}: {t}");
            }
        }
    }

    #[test]
    fn wire_redaction_matches_the_dynamic_one_and_keeps_other_bytes() {
        let c = compile(SCHEMA, &[]).unwrap();
        let desc = c.message_at(&[0]).unwrap();
        let bytes = sample(&c).encode_to_vec();
        for purpose in [Some("support"), Some("billing"), Some("other"), None] {
            let mut expected = sample(&c);
            c.policies.redact(&mut expected, purpose);
            let cut = c
                .policies
                .redact_wire(&desc, &bytes, purpose)
                .unwrap()
                .expect("something is restricted for every purpose");
            let got = DynamicMessage::decode(desc.clone(), cut.as_slice()).unwrap();
            assert_eq!(got, expected, "{purpose:?}");
        }
        // An unrestricted message is left alone; undeclared fields in a
        // restricted one are cut; bytes that do not parse are refused.
        let addr_only = c.message_at(&[1]).unwrap();
        let mut plain = DynamicMessage::new(c.message_at(&[0]).unwrap());
        plain.set_field_by_name("name", Value::String("Ann".into()));
        let plain = plain.encode_to_vec();
        assert_eq!(c.policies.redact_wire(&desc, &plain, None), Ok(None));
        let mut unknown = plain.clone();
        unknown.extend_from_slice(&[0xf8, 0x01, 0x07]); // field 31, varint 7
        assert_eq!(
            c.policies.redact_wire(&desc, &unknown, None),
            Ok(Some(plain))
        );
        assert!(c
            .policies
            .redact_wire(&desc, &[0x2a, 0x05, 0x01], None)
            .is_err());
        assert!(c
            .policies
            .redact_wire(&addr_only, b"\x0a\x01", None)
            .is_err());
    }

    #[test]
    fn purposes_are_read_from_the_client_id() {
        assert_eq!(
            purpose_from_client_id("ledger;purpose=billing"),
            Some("billing")
        );
        assert_eq!(purpose_from_client_id("purpose=support"), Some("support"));
        assert_eq!(purpose_from_client_id("ledger"), None);
        assert_eq!(purpose_from_client_id("x;purpose="), None);
    }
}
