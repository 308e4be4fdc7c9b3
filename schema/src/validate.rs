//! Validation of one record value: the wire prefix, the decode as its
//! message, and the message's protovalidate (`buf.validate`) rules.

use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

use crate::compile::CompiledSchema;
use crate::wirecheck::WirePlan;

/// Decodes a payload (the bytes after the wire prefix) as the message at
/// `indexes` and checks its rules. The error is one sentence a person can
/// act on: which field, which rule, what is wrong with the value.
///
/// The message's wire plan answers first ([`crate::wirecheck`]); only a
/// value it is not sure of is decoded and evaluated dynamically, which is
/// also where every error message comes from.
pub fn validate_payload(
    schema: &CompiledSchema,
    indexes: &[i32],
    payload: &[u8],
) -> Result<(), String> {
    let desc = schema
        .message_at(indexes)
        .ok_or_else(|| format!("message indexes {indexes:?} name no message of the schema"))?;
    let plan = schema.plans.get(&desc);
    validate_message(schema, &desc, plan.as_deref(), payload)
}

/// [`validate_payload`] for a message already looked up, with its wire
/// plan (None when its rules have none).
pub fn validate_message(
    schema: &CompiledSchema,
    desc: &MessageDescriptor,
    plan: Option<&WirePlan>,
    payload: &[u8],
) -> Result<(), String> {
    if plan.is_some_and(|plan| plan.certainly_valid(payload)) {
        return Ok(());
    }
    validate_dynamic(schema, desc, payload)
}

/// The authoritative check: a dynamic decode and protovalidate's
/// evaluator.
pub fn validate_dynamic(
    schema: &CompiledSchema,
    desc: &MessageDescriptor,
    payload: &[u8],
) -> Result<(), String> {
    let msg = DynamicMessage::decode(desc.clone(), payload)
        .map_err(|e| format!("value does not decode as {}: {e}", desc.full_name()))?;
    match schema.validator.validate(&msg) {
        Ok(()) => Ok(()),
        Err(prost_protovalidate::Error::Validation(v)) => {
            let parts: Vec<String> = v
                .violations()
                .iter()
                .map(|v| {
                    let field = v.field_path();
                    let field = if field.is_empty() {
                        desc.full_name().to_string()
                    } else {
                        field
                    };
                    let value = v
                        .field_value()
                        .map(|x| format!(" (value {})", show(x)))
                        .unwrap_or_default();
                    let message = if v.message().is_empty() {
                        "is not valid".to_string()
                    } else {
                        v.message().to_string()
                    };
                    format!("field `{field}`: {message}{value} [rule {}]", v.rule_id())
                })
                .collect();
            Err(format!(
                "{} is invalid: {}",
                desc.full_name(),
                parts.join("; ")
            ))
        }
        Err(e) => Err(format!("{} could not be validated: {e}", desc.full_name())),
    }
}

/// A short rendering of a field value for error messages.
fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Message(_) => "a message".into(),
        Value::List(l) => format!("{} items", l.len()),
        Value::Map(m) => format!("{} entries", m.len()),
        Value::EnumNumber(n) => format!("enum number {n}"),
        other => format!("{other:?}")
            .trim_start_matches(|c: char| c.is_alphanumeric())
            .trim_matches(|c| c == '(' || c == ')')
            .to_string(),
    };
    if s.len() > 80 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(77).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use prost::Message;

    const SCHEMA: &str = r#"syntax = "proto3"; package v;
        import "buf/validate/validate.proto";
        enum Tier { TIER_UNSPECIFIED = 0; GOLD = 1; }
        message User {
          string email = 1 [(buf.validate.field).string.email = true];
          int32 age = 2 [(buf.validate.field).int32 = {gte: 0, lte: 150}];
          string id = 3 [(buf.validate.field).string.uuid = true];
          Tier tier = 4 [(buf.validate.field).enum.defined_only = true];
          repeated string tags = 5 [(buf.validate.field).repeated.max_items = 2];
          string name = 6 [(buf.validate.field).required = true];
          option (buf.validate.message).cel = { id: "adult_gold", message: "gold users must be adults", expression: "this.tier != 1 || this.age >= 18" };
        }"#;

    fn user(c: &CompiledSchema, f: impl FnOnce(&mut DynamicMessage)) -> Vec<u8> {
        let mut m = DynamicMessage::new(c.message_at(&[0]).unwrap());
        m.set_field_by_name("email", Value::String("a@example.com".into()));
        m.set_field_by_name("age", Value::I32(30));
        m.set_field_by_name(
            "id",
            Value::String("5f0c3a9e-2b7d-4c1e-9a34-0d6f1c2b8e77".into()),
        );
        m.set_field_by_name("name", Value::String("Ann".into()));
        f(&mut m);
        m.encode_to_vec()
    }

    #[test]
    fn rules_accept_good_values_and_name_the_field_and_rule_of_bad_ones() {
        let c = compile(SCHEMA, &[]).unwrap();
        assert!(validate_payload(&c, &[0], &user(&c, |_| {})).is_ok());
        type Change = Box<dyn FnOnce(&mut DynamicMessage)>;
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                Box::new(|m| m.set_field_by_name("email", Value::String("nope".into()))),
                "email",
                "string.email",
            ),
            (
                Box::new(|m| m.set_field_by_name("age", Value::I32(200))),
                "age",
                "int32",
            ),
            (
                Box::new(|m| m.set_field_by_name("id", Value::String("x".into()))),
                "id",
                "string.uuid",
            ),
            (
                Box::new(|m| m.set_field_by_name("tier", Value::EnumNumber(9))),
                "tier",
                "enum.defined_only",
            ),
            (
                Box::new(|m| {
                    m.set_field_by_name("tags", Value::List(vec![Value::String("a".into()); 3]))
                }),
                "tags",
                "repeated.max_items",
            ),
            (
                Box::new(|m| {
                    m.clear_field_by_name("name");
                }),
                "name",
                "required",
            ),
            (
                Box::new(|m| {
                    m.set_field_by_name("tier", Value::EnumNumber(1));
                    m.set_field_by_name("age", Value::I32(10));
                }),
                "v.User",
                "adult_gold",
            ),
        ];
        for (change, field, rule) in cases {
            let e = validate_payload(&c, &[0], &user(&c, change)).unwrap_err();
            assert!(e.contains(&format!("field `{field}`")), "{e}");
            assert!(e.contains(rule), "{e}");
        }
        let e = validate_payload(&c, &[0], b"\xff\xff").unwrap_err();
        assert!(e.contains("does not decode as v.User"), "{e}");
        let e = validate_payload(&c, &[3], b"").unwrap_err();
        assert!(e.contains("name no message"), "{e}");
    }
}
