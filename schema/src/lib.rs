//! Protobuf schemas for floe: descriptors, the Confluent wire format,
//! validation and field policies, and the protobuf → Arrow type mapping.
//!
//! Empty until the schema registry issue lands; the crate exists so the
//! workspace has its final shape and the dependency direction is fixed
//! (broker → storage → schema → protocol, never upwards).
//!
//! Boundaries: no IO. Bytes and descriptors in, values and verdicts out.
