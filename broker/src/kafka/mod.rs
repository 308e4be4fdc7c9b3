//! The Kafka front door: the listener and its connections
//! ([`server`], under [`connections`]' limits), one handler per Kafka API
//! ([`api`]), the one place storage errors become Kafka error codes
//! ([`errors`]), TLS ([`tls`]), who a connection is ([`authentication`]),
//! and what a principal may do ([`authorized_operations`]).

pub mod api;
pub mod authentication;
pub mod authorized_operations;
pub mod certificate_principal;
pub mod client_ca;
pub mod connections;
pub mod errors;
pub mod listeners;
pub mod principal_mapping;
pub mod server;
pub mod tls;
