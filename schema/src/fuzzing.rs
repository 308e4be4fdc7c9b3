//! Entry points for the fuzzers (`fuzz/`, cargo-fuzz) and for the tests
//! that replay the inputs they found (`tests/tests/fuzz_regressions.rs`): each
//! takes arbitrary bytes, as a producer could send them as a record value,
//! and must return without panicking.

use std::sync::OnceLock;

use arrow_schema::Fields;
use prost_reflect::MessageDescriptor;

use crate::columns::{message_fields, FieldIds};
use crate::compile::{compile, CompiledSchema};
use crate::typed::{RowEncoder, TypedBuilder};
use crate::validate::validate_payload;
use crate::wire::parse_prefix;
use crate::wirecheck::WirePlan;

/// The schema values are decoded against: every field kind, and rules.
pub const FUZZ_PROTO: &str = include_str!("../proto/floe/fuzz/v1/fuzz.proto");

fn schema() -> &'static CompiledSchema {
    static SCHEMA: OnceLock<CompiledSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| compile(FUZZ_PROTO, &[]).expect("the fuzz schema compiles"))
}

/// The schema's messages with their columns (built once: the layout is
/// the same for every input).
fn messages() -> &'static [(MessageDescriptor, Fields); 2] {
    static MESSAGES: OnceLock<[(MessageDescriptor, Fields); 2]> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let s = schema();
        ["floe.fuzz.v1.Line", "floe.fuzz.v1.Order"].map(|name| {
            let message = s
                .pool
                .get_message_by_name(name)
                .expect("the fuzz schema declares it");
            let fields = message_fields(&message, "value", &mut FieldIds::starting_after(11));
            (message, fields)
        })
    })
}

/// A Confluent wire prefix.
pub fn prefix(data: &[u8]) {
    let _ = parse_prefix(data);
}

/// Validation (the wire plan, then protovalidate) of a value, bare and as
/// a prefixed value naming its message.
pub fn validate(data: &[u8]) {
    let s = schema();
    for indexes in [[0], [1]] {
        let _ = validate_payload(s, &indexes, data);
    }
    if let Ok(p) = parse_prefix(data) {
        let _ = validate_payload(s, &p.message_indexes, &data[p.len..]);
    }
}

/// The typed columns: a value decoded into Arrow rows and written back.
/// What comes back is canonical, so decoding and writing it again must
/// give the same bytes (the property byte-exact Kafka reads rest on).
pub fn typed(data: &[u8]) {
    for (message, fields) in messages() {
        let Some(first) = encode_once(message, fields, data) else {
            continue;
        };
        let again = encode_once(message, fields, &first);
        assert_eq!(
            again.as_deref(),
            Some(first.as_slice()),
            "a canonical {} re-encodes differently",
            message.full_name()
        );
    }
}

fn encode_once(message: &MessageDescriptor, fields: &Fields, data: &[u8]) -> Option<Vec<u8>> {
    let mut builder = TypedBuilder::new(message, fields).expect("columns of the message");
    if !builder.push(Some(data)) {
        return None;
    }
    let rows = builder.finish();
    let encoder = RowEncoder::new(message, &rows).expect("rows of the message");
    let mut out = Vec::new();
    encoder.encode(0, &mut out).ok()?;
    Some(out)
}

/// A schema as the registry receives it (`.proto` text or a base64
/// descriptor): compiled, then every message of it mapped to columns and
/// given its validation plan, as registering and the first flush do.
pub fn compile_schema(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = compile(text, &[]) else {
        return;
    };
    for message in schema.file.messages().take(16) {
        let _ = message_fields(&message, "value", &mut FieldIds::starting_after(11));
        let _ = WirePlan::build(&message);
    }
}
