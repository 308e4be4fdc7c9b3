//! Protobuf schemas for floe: compiling registered schemas, the Confluent
//! wire format, protovalidate validation, field policies by purpose, and
//! the compatibility rules of schema evolution.
//!
//! Boundaries: no IO. Schema text and record bytes in, descriptors,
//! verdicts and redacted messages out. The registry's storage and REST API
//! live in `storage` and `broker`.

pub mod columns;
pub mod compat;
pub mod compile;
#[doc(hidden)]
pub mod fuzzing;
pub mod policy;
pub mod scan;
#[cfg(test)]
mod testutil;
pub mod typed;
pub mod validate;
pub mod wire;
pub mod wirecheck;

pub use compile::{compile, CompiledSchema, Dependency, SchemaError};
pub use prost_reflect;
