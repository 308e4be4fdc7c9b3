//! The audit log: every authorization that denies, and every change of
//! ACLs, users, grants and schemas, as one structured log line on the
//! `audit` target (`FLOE_LOG=audit=info` keeps only these) with the
//! principal, the resource, the operation and the outcome.

use tracing::info;

/// `principal` at `host` was refused `operation` on `resource`
/// (`Topic:orders`, `Group:g`, `Cluster:kafka-cluster`, `Subject:s`).
pub fn denied(principal: &str, host: &str, resource: &str, operation: &str) {
    info!(
        target: "audit",
        principal,
        host,
        resource,
        operation,
        outcome = "denied",
        "authorization denied"
    );
}

/// `principal` changed `resource` by `operation` (`create`, `delete`,
/// `alter`, ...), and the change was made (`ok`) or failed (its error).
pub fn changed(principal: &str, resource: &str, operation: &str, outcome: &str) {
    info!(
        target: "audit",
        principal,
        resource,
        operation,
        outcome,
        "change"
    );
}
