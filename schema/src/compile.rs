//! Compiling a registered schema into descriptors.
//!
//! A protobuf schema arrives as `.proto` text (what people and most tools
//! send) or as a base64-encoded `FileDescriptorProto` (what the Confluent
//! serializers send). Either way it is compiled with protox, against the
//! files of its references and the files floe provides: the Google
//! well-known types, `buf/validate/validate.proto` and
//! `floe/policy/v1/policy.proto`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, FileDescriptor, MessageDescriptor};
use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::policy::PolicyIndex;
use crate::wirecheck::WirePlans;

/// The source of floe's policy options, served by the registry.
pub const POLICY_PROTO: &str = include_str!("../proto/floe/policy/v1/policy.proto");
/// Import name of the policy options.
pub const POLICY_PROTO_NAME: &str = "floe/policy/v1/policy.proto";
/// Import name of protovalidate's rules.
pub const VALIDATE_PROTO_NAME: &str = "buf/validate/validate.proto";

/// The file name a root schema compiles under when its text names none.
const ROOT_NAME: &str = "floe_schema.proto";

/// A schema that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// One file a schema imports, by its import name.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The name the schema imports it by.
    pub name: String,
    /// Its schema text (`.proto` or base64 descriptor).
    pub schema: String,
}

/// A compiled protobuf schema.
#[derive(Clone)]
pub struct CompiledSchema {
    /// Every file: the schema, its imports, floe's own.
    pub pool: DescriptorPool,
    /// The schema's own file.
    pub file: FileDescriptor,
    /// Validator with its rule cache (one per schema: the cache is keyed by
    /// message name, and versions of a schema share names).
    pub validator: Arc<prost_protovalidate::Validator>,
    /// Restricted fields per message.
    pub policies: Arc<PolicyIndex>,
    /// Wire-level validation plans per message, built on first use.
    pub plans: Arc<WirePlans>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("file", &self.file.name())
            .finish()
    }
}

impl CompiledSchema {
    /// The message a wire prefix's indexes point at.
    pub fn message_at(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let (first, rest) = indexes.split_first()?;
        let mut m = self.file.messages().nth(usize::try_from(*first).ok()?)?;
        for i in rest {
            let child = m.child_messages().nth(usize::try_from(*i).ok()?)?;
            m = child;
        }
        Some(m)
    }

    /// The message indexes of a message of this file.
    pub fn indexes_of(&self, message: &MessageDescriptor) -> Option<Vec<i32>> {
        let mut path = Vec::new();
        let mut m = message.clone();
        loop {
            match m.parent_message() {
                Some(parent) => {
                    path.push(parent.child_messages().position(|c| c == m)? as i32);
                    m = parent;
                }
                None => {
                    path.push(self.file.messages().position(|c| c == m)? as i32);
                    break;
                }
            }
        }
        path.reverse();
        Some(path)
    }

    /// The schema's file as a `FileDescriptorProto`, base64 (the registry's
    /// `format=serialized`).
    pub fn serialized(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(self.file.file_descriptor_proto().encode_to_vec())
    }
}

/// True if `text` is a base64 descriptor rather than `.proto` source.
fn looks_like_descriptor(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && !t.contains(';')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn parse_file(name: &str, text: &str) -> Result<File, SchemaError> {
    if looks_like_descriptor(text) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| {
                SchemaError(format!(
                    "schema is neither .proto text nor a base64 descriptor: {e}"
                ))
            })?;
        let mut proto = prost_types::FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| SchemaError(format!("base64 schema is not a FileDescriptorProto: {e}")))?;
        proto.name = Some(name.to_string());
        return Ok(File::from_file_descriptor_proto(proto));
    }
    check_nesting(text)?;
    File::from_source(name, text).map_err(|e| SchemaError(format!("{e:?}").replace('\n', " ")))
}

/// How deep `.proto` text may nest its blocks (messages within messages,
/// option values within option values); the parser recurses on each.
pub const MAX_NESTING: usize = 100;

/// Refuses text whose brackets nest deeper than [`MAX_NESTING`], before the
/// parser recurses into it. Strings and comments do not count.
fn check_nesting(text: &str) -> Result<(), SchemaError> {
    let bytes = text.as_bytes();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'{' | b'[' | b'(' | b'<' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(SchemaError(format!(
                        "line {line}: the schema nests deeper than {MAX_NESTING} levels"
                    )));
                }
            }
            b'}' | b']' | b')' | b'>' => depth = depth.saturating_sub(1),
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    line += usize::from(bytes[i] == b'\n');
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The files floe provides that the registry serves as subjects named by
/// their import names, so clients can reference them: (name, schema text).
/// protovalidate's rules come as the descriptor its crate carries.
pub fn provided_schemas() -> Vec<(&'static str, String)> {
    let mut out = vec![(POLICY_PROTO_NAME, POLICY_PROTO.to_string())];
    if let Some(f) =
        prost_protovalidate_types::DESCRIPTOR_POOL.get_file_by_name(VALIDATE_PROTO_NAME)
    {
        out.push((
            VALIDATE_PROTO_NAME,
            base64::engine::general_purpose::STANDARD
                .encode(f.file_descriptor_proto().encode_to_vec()),
        ));
    }
    out
}

/// True for the files floe provides itself.
pub fn is_builtin(name: &str) -> bool {
    name == POLICY_PROTO_NAME
        || name == VALIDATE_PROTO_NAME
        || GoogleFileResolver::new().open_file(name).is_ok()
}

struct Resolver {
    files: HashMap<String, String>,
    root: File,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.root.name() {
            return Ok(self.root.clone());
        }
        if let Some(text) = self.files.get(name) {
            return parse_file(name, text).map_err(|e| protox::Error::new(e.0));
        }
        if name == POLICY_PROTO_NAME {
            return File::from_source(name, POLICY_PROTO);
        }
        if name == VALIDATE_PROTO_NAME {
            if let Some(f) = prost_protovalidate_types::DESCRIPTOR_POOL.get_file_by_name(name) {
                return Ok(File::from_file_descriptor_proto(
                    f.file_descriptor_proto().clone(),
                ));
            }
        }
        GoogleFileResolver::new().open_file(name)
    }
}

/// Compiles a schema with the files it imports.
pub fn compile(schema: &str, dependencies: &[Dependency]) -> Result<CompiledSchema, SchemaError> {
    let root = parse_file(ROOT_NAME, schema)?;
    let root_name = root.name().to_string();
    let resolver = Resolver {
        files: dependencies
            .iter()
            .map(|d| (d.name.clone(), d.schema.clone()))
            .collect(),
        root,
    };
    // prost-reflect 0.16.5 panics (an index out of bounds while it words
    // an error) on some descriptors, e.g. one whose `syntax` is not a
    // syntax; found by the `compile` fuzzer. A panic, not an abort: it is
    // caught here and the schema refused like any other that does not
    // compile.
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler
            .open_file(&root_name)
            .map_err(|e| SchemaError(e.to_string()))?;
        Ok::<_, SchemaError>(compiler.descriptor_pool())
    }));
    let pool = compiled.map_err(|_| {
        SchemaError("the schema compiler failed on this schema (a defect of prost-reflect on malformed descriptors)".into())
    })??;
    let file = pool
        .get_file_by_name(&root_name)
        .ok_or_else(|| SchemaError("compiled schema lost its file".into()))?;
    let policies = Arc::new(PolicyIndex::build(&file));
    Ok(CompiledSchema {
        pool,
        file,
        validator: Arc::new(prost_protovalidate::Validator::new()),
        policies,
        plans: Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_descriptor_forms_compile_to_the_same_messages() {
        let text = r#"syntax = "proto3"; package t; import "google/protobuf/timestamp.proto";
            message A { string s = 1; google.protobuf.Timestamp at = 2; message B { int32 x = 1; } }
            message C { A.B b = 1; }"#;
        let c = compile(text, &[]).unwrap();
        assert_eq!(c.message_at(&[0]).unwrap().full_name(), "t.A");
        assert_eq!(c.message_at(&[0, 0]).unwrap().full_name(), "t.A.B");
        assert_eq!(c.message_at(&[1]).unwrap().full_name(), "t.C");
        let b = c.message_at(&[0, 0]).unwrap();
        assert_eq!(c.indexes_of(&b), Some(vec![0, 0]));
        let again = compile(&c.serialized(), &[]).unwrap();
        assert_eq!(again.message_at(&[1]).unwrap().full_name(), "t.C");
    }

    #[test]
    fn references_and_builtin_imports_resolve() {
        let dep = Dependency {
            name: "common/money.proto".into(),
            schema: r#"syntax = "proto3"; package common; message Money { int64 cents = 1; }"#
                .into(),
        };
        let text = r#"syntax = "proto3"; package p;
            import "common/money.proto"; import "buf/validate/validate.proto"; import "floe/policy/v1/policy.proto";
            message Order { common.Money total = 1; string email = 2 [(buf.validate.field).string.email = true,
              (floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}]; }"#;
        let c = compile(text, &[dep]).unwrap();
        assert_eq!(c.message_at(&[0]).unwrap().full_name(), "p.Order");
    }

    fn nested(levels: usize) -> String {
        let mut text = String::from("syntax = \"proto3\";\n");
        for i in 0..levels {
            text += &format!("message M{i} {{ int32 x = 1;\n");
        }
        text += &"}\n".repeat(levels);
        text
    }

    #[test]
    fn nesting_is_bounded_before_the_parser_recurses() {
        // On a test thread's 2 MiB stack: the limit fits in it.
        let ok = compile(&nested(MAX_NESTING), &[]).unwrap();
        assert_eq!(ok.file.messages().count(), 1);
        for levels in [MAX_NESTING + 1, 100_000] {
            let e = compile(&nested(levels), &[]).unwrap_err();
            assert!(e.0.contains("nests deeper than 100"), "{e}");
        }
        // Option values nest too; brackets in strings and comments do not count.
        let deep_option = format!(
            "syntax = \"proto3\"; import \"google/protobuf/descriptor.proto\"; message A {{ int32 x = 1 [(a) = {}1{}]; }}",
            "{ b: ".repeat(200),
            " }".repeat(200)
        );
        assert!(compile(&deep_option, &[])
            .unwrap_err()
            .0
            .contains("nests deeper"));
        let quoted = format!(
            "syntax = \"proto3\"; // {}\n/* {} */ message A {{ string s = 1 [json_name = \"{}\"]; }}",
            "{".repeat(500),
            "(".repeat(500),
            "[".repeat(500)
        );
        compile(&quoted, &[]).unwrap();
    }

    #[test]
    fn a_descriptor_the_compiler_panics_on_is_refused() {
        // `syntax = "\x07"` as a base64 FileDescriptorProto (fuzz/regressions/compile).
        let e = compile("YgEH", &[]).unwrap_err();
        assert!(e.0.contains("schema compiler failed"), "{e}");
    }

    #[test]
    fn a_schema_that_does_not_compile_says_why() {
        let e = compile(r#"syntax = "proto3"; message A { Missing m = 1; }"#, &[]).unwrap_err();
        assert!(e.0.contains("Missing"), "{e}");
        let e = compile(
            r#"syntax = "proto3"; import "nope.proto"; message A {}"#,
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("nope.proto"), "{e}");
    }
}
