//! The Kafka front door: the listener and its connections
//! ([`server`], under [`connections`]' limits), one handler per Kafka API
//! ([`api`]), and the one place storage errors become Kafka error codes
//! ([`errors`]).

pub mod api;
pub mod connections;
pub mod errors;
pub mod server;
