//! The floe server: the Kafka listener, one handler per Kafka API, the HTTP
//! API, configuration and the command line.
//!
//! Three front doors over one [`Broker`]: [`kafka`] (the Kafka listener
//! and one handler per API), [`http`] (admin, metrics, the schema registry
//! and Iceberg catalog REST APIs) and, shared by both, [`groups`] (the
//! classic and KIP-848 group coordinators) and [`registry`] (schemas,
//! produce checks, fetch redaction).
//!
//! Request flow: [`kafka::server`] reads a frame, `floe_protocol` decodes
//! it, [`kafka::api::dispatch`] applies it to the [`Broker`] state in
//! connection order and returns a future for the rest (waiting for a flush,
//! a long poll), which runs concurrently; responses go back in request
//! order.
//!
//! Storage errors become Kafka error codes in one place:
//! [`kafka::errors`].

pub mod acl;
pub mod audit;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod groups;
pub mod http;
pub mod jwks;
pub mod jwt;
pub mod kafka;
pub mod membership;
pub mod metrics;
pub mod registry;
pub mod sasl;
pub mod tokens;
pub mod transactions;

pub use broker::Broker;
