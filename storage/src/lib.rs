//! floe's storage: the log of every topic, kept as Parquet files in object
//! storage and indexed in a metadata store.
//!
//! - [`log`]: topics and partitions; the write path (offsets, idempotence,
//!   buffering, flush, commit) and the read path (tail cache, segment index,
//!   ranged Parquet reads).
//! - [`segment`]: the Parquet layout of a topic and the conversion between
//!   Arrow rows and Kafka record batches; [`columns`]: the names and field
//!   ids of the Kafka columns.
//! - [`meta`]: the metadata store trait and its SQLite implementation.
//! - [`intake`]: the shared intake object of each flush tick, holding many
//!   topics' flushes as chunks.
//! - [`range_reader`]: Parquet reads of a file at a byte range of an object.
//! - [`object`]: object storage from a URL.
//! - [`faults`]: a fault-injecting wrapper around a real object store
//!   (the consistency checker and the tests).
//! - [`typed`]: the typed columns of schema topics, and the way back to
//!   the producers' bytes.
//!
//! Boundaries: object storage is reached only through `object_store`; state
//! that must survive a crash goes through [`meta::MetadataStore`]; nothing
//! here knows about sockets or Kafka request types.

pub mod background;
pub mod columns;
pub mod error;
pub mod faults;
pub mod intake;
mod intake_cache;
pub mod log;
pub mod memory;
pub mod meta;
pub mod metered;
pub mod metrics;
pub mod object;
pub mod range_reader;
pub mod segment;
mod sync;
pub mod table;
pub mod tail_cache;
pub mod topic_config;
pub mod typed;

pub use error::{BackendError, Result, StorageError};
