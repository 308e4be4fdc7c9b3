//! The Kafka wire protocol as floe speaks it, with no IO.
//!
//! Why a crate of its own: everything here is a pure function from bytes to
//! values and back, so it is tested with byte vectors and fuzzed without a
//! socket. The request and response message types come from the
//! `kafka-protocol` crate; this crate adds what a broker needs around them:
//!
//! - [`configs`]: the resource, source and operation codes of the config
//!   APIs.
//! - [`frame`]: request header parsing, the size limit, response framing,
//!   and the fallback answers for APIs and versions we do not serve.
//! - [`versions`]: the API versions floe advertises in ApiVersions.
//! - [`records`]: the v2 record batch format: CRC check, decompression
//!   (gzip, snappy, lz4, zstd), record decoding, and encoding of the batches
//!   the read path rebuilds.
//!
//! Boundaries: no tokio, no sockets, no files. The broker owns IO.

pub mod configs;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod records;
pub mod versions;

pub use kafka_protocol;
