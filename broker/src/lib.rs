//! The floe server: the Kafka listener, one handler per Kafka API, the HTTP
//! API, configuration and the command line.
//!
//! Request flow: [`server`] reads a frame, `floe_protocol` decodes it,
//! [`api::dispatch`] applies it to the [`Broker`] state in connection order
//! and returns a future for the rest (waiting for a flush, a long poll),
//! which runs concurrently; responses go back in request order.
//!
//! Storage errors become Kafka error codes in one place: [`errors`].

pub mod api;
pub mod broker;
pub mod catalog_http;
pub mod config;
pub mod connections;
pub mod consumer_groups;
pub mod errors;
pub mod group_saver;
pub mod groups;
pub mod http;
pub mod http_listener;
pub mod metrics;
pub mod registry;
pub mod registry_http;
pub mod server;

pub use broker::Broker;
