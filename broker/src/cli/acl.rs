//! `floe acl ...`: Kafka ACLs over the Kafka protocol (CreateAcls,
//! DescribeAcls, DeleteAcls), as `kafka-acls` and `rpk acl` manage them.

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    create_acls_request::AclCreation, delete_acls_request::DeleteAclsFilter, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest,
};
use serde_json::json;

use super::client::Connection;
use super::cluster::{check, s};
use super::output::Output;

/// Kafka's codes for "any" in a filter.
const ANY: i8 = 1;
/// Pattern types.
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
/// Permissions.
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// Resource types by name, with Kafka's codes.
const RESOURCES: &[(&str, i8)] = &[
    ("topic", 2),
    ("group", 3),
    ("cluster", 4),
    ("transactional-id", 5),
];

/// Operations by name, with Kafka's codes.
const OPERATIONS: &[(&str, i8)] = &[
    ("all", 2),
    ("read", 3),
    ("write", 4),
    ("create", 5),
    ("delete", 6),
    ("alter", 7),
    ("describe", 8),
    ("cluster-action", 9),
    ("describe-configs", 10),
    ("alter-configs", 11),
    ("idempotent-write", 12),
];

fn name_of(table: &[(&'static str, i8)], code: i8) -> String {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| code.to_string(), |(n, _)| n.to_string())
}

/// An operation by name: `Read`, `read`, `DESCRIBE_CONFIGS`,
/// `describe-configs`, `DescribeConfigs` alike.
fn operation(name: &str) -> anyhow::Result<i8> {
    let plain: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    OPERATIONS
        .iter()
        .find(|(n, _)| n.replace('-', "") == plain)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown operation {name:?} (one of {})",
                OPERATIONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The resource an ACL names, and who and what.
#[derive(Debug, Args)]
pub struct AclSpec {
    /// The principal, `User:alice` (`User:*` for everyone).
    #[arg(long)]
    principal: Option<String>,
    /// An operation: read, write, create, delete, alter, describe,
    /// describe-configs, alter-configs, idempotent-write, cluster-action,
    /// all (repeatable).
    #[arg(long = "operation")]
    operations: Vec<String>,
    /// A topic (`*` for every topic).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// A transactional id.
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// The cluster.
    #[arg(long, group = "resource")]
    cluster: bool,
    /// The name is a prefix.
    #[arg(long)]
    prefixed: bool,
    /// The client's address (`*`, the default, for any).
    #[arg(long)]
    host: Option<String>,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
}

impl AclSpec {
    /// (resource type, name), if one is given.
    fn resource(&self) -> Option<(i8, String)> {
        let code = |n: &str| RESOURCES.iter().find(|(r, _)| *r == n).map(|(_, c)| *c);
        match (
            &self.topic,
            &self.group,
            &self.transactional_id,
            self.cluster,
        ) {
            (Some(t), ..) => Some((code("topic")?, t.clone())),
            (_, Some(g), ..) => Some((code("group")?, g.clone())),
            (_, _, Some(t), _) => Some((code("transactional-id")?, t.clone())),
            (.., true) => Some((code("cluster")?, "kafka-cluster".into())),
            _ => None,
        }
    }

    fn pattern(&self) -> i8 {
        if self.prefixed {
            PREFIXED
        } else {
            LITERAL
        }
    }

    fn permission(&self) -> i8 {
        if self.deny {
            DENY
        } else {
            ALLOW
        }
    }
}

/// The ACL subcommands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) operations on a resource to a
    /// principal.
    Create(AclSpec),
    /// The ACLs matching what is given (all by default).
    List(AclSpec),
    /// Delete the ACLs matching what is given (a resource or a principal
    /// at least).
    Delete(AclSpec),
}

/// Runs one ACL command against `conn`'s cluster.
pub async fn run(conn: &mut Connection, command: AclCommand) -> anyhow::Result<Output> {
    match command {
        AclCommand::Create(spec) => create(conn, &spec).await,
        AclCommand::List(spec) => list(conn, &spec).await,
        AclCommand::Delete(spec) => delete(conn, &spec).await,
    }
}

async fn create(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<Output> {
    let Some((resource_type, name)) = spec.resource() else {
        bail!("name the resource: --topic, --group, --transactional-id or --cluster");
    };
    let Some(principal) = &spec.principal else {
        bail!("name the principal: --principal User:alice");
    };
    if spec.operations.is_empty() {
        bail!("name an operation: --operation read (repeatable)");
    }
    let mut creations = Vec::new();
    for op in &spec.operations {
        creations.push(
            AclCreation::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(&name))
                .with_resource_pattern_type(spec.pattern())
                .with_principal(s(principal))
                .with_host(s(spec.host.as_deref().unwrap_or("*")))
                .with_operation(operation(op)?)
                .with_permission_type(spec.permission()),
        );
    }
    let n = creations.len();
    let response = conn
        .call(CreateAclsRequest::default().with_creations(creations), 3)
        .await?;
    for r in &response.results {
        check("creating ACLs", r.error_code, r.error_message.as_ref())?;
    }
    Ok(Output {
        headers: vec!["CREATED"],
        rows: vec![vec![n.to_string()]],
        notes: Vec::new(),
        json: json!({"created": n}),
    })
}

/// (type, name, pattern, principal, host, operation, permission) rows.
type AclRow = (i8, String, i8, String, String, i8, i8);

fn output(rows: Vec<AclRow>, key: &str) -> Output {
    let pattern = |p: i8| if p == PREFIXED { "prefixed" } else { "literal" };
    let permission = |p: i8| if p == DENY { "deny" } else { "allow" };
    Output {
        headers: vec![
            "PRINCIPAL",
            "HOST",
            "RESOURCE",
            "NAME",
            "PATTERN",
            "OPERATION",
            "PERMISSION",
        ],
        rows: rows
            .iter()
            .map(|(t, n, pt, pr, h, o, pe)| {
                vec![
                    pr.clone(),
                    h.clone(),
                    name_of(RESOURCES, *t),
                    n.clone(),
                    pattern(*pt).into(),
                    name_of(OPERATIONS, *o),
                    permission(*pe).into(),
                ]
            })
            .collect(),
        notes: Vec::new(),
        json: json!({key: rows
            .iter()
            .map(|(t, n, pt, pr, h, o, pe)| json!({
                "principal": pr,
                "host": h,
                "resource_type": name_of(RESOURCES, *t),
                "resource_name": n,
                "pattern": pattern(*pt),
                "operation": name_of(OPERATIONS, *o),
                "permission": permission(*pe),
            }))
            .collect::<Vec<_>>()}),
    }
}

/// A filter from what is given: what is not given matches anything.
fn filter(spec: &AclSpec) -> anyhow::Result<(i8, Option<String>, i8, i8, i8)> {
    let (resource_type, name) = match spec.resource() {
        Some((t, n)) => (t, Some(n)),
        None => (ANY, None),
    };
    let pattern = if spec.resource().is_some() || spec.prefixed {
        spec.pattern()
    } else {
        ANY
    };
    let op = match spec.operations.as_slice() {
        [] => ANY,
        [one] => operation(one)?,
        _ => bail!("a filter takes one --operation at most"),
    };
    let permission = if spec.deny { DENY } else { ANY };
    Ok((resource_type, name, pattern, op, permission))
}

async fn list(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<Output> {
    let (resource_type, name, pattern, op, permission) = filter(spec)?;
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(name.as_deref().map(s))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(spec.principal.as_deref().map(s))
        .with_host_filter(spec.host.as_deref().map(s))
        .with_operation(op)
        .with_permission_type(permission);
    let response = conn.call(request, 3).await?;
    check(
        "listing ACLs",
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let mut rows = Vec::new();
    for r in &response.resources {
        for a in &r.acls {
            rows.push((
                r.resource_type,
                r.resource_name.to_string(),
                r.pattern_type,
                a.principal.to_string(),
                a.host.to_string(),
                a.operation,
                a.permission_type,
            ));
        }
    }
    rows.sort();
    Ok(output(rows, "acls"))
}

async fn delete(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<Output> {
    if spec.resource().is_none() && spec.principal.is_none() {
        bail!("say what to delete: a resource (--topic, --group, ...) or a --principal");
    }
    let (resource_type, name, pattern, op, permission) = filter(spec)?;
    let request = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(name.as_deref().map(s))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(spec.principal.as_deref().map(s))
        .with_host_filter(spec.host.as_deref().map(s))
        .with_operation(op)
        .with_permission_type(permission)]);
    let response = conn.call(request, 3).await?;
    let mut rows = Vec::new();
    for f in &response.filter_results {
        check("deleting ACLs", f.error_code, f.error_message.as_ref())?;
        for m in &f.matching_acls {
            check("deleting an ACL", m.error_code, m.error_message.as_ref())?;
            rows.push((
                m.resource_type,
                m.resource_name.to_string(),
                m.pattern_type,
                m.principal.to_string(),
                m.host.to_string(),
                m.operation,
                m.permission_type,
            ));
        }
    }
    rows.sort();
    Ok(output(rows, "deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_kafka_tools_name_them() {
        assert_eq!(operation("Read").unwrap(), 3);
        assert_eq!(operation("DESCRIBE_CONFIGS").unwrap(), 10);
        assert_eq!(operation("describe-configs").unwrap(), 10);
        assert_eq!(operation("IdempotentWrite").unwrap(), 12);
        assert!(operation("fly").is_err());
        assert_eq!(name_of(OPERATIONS, 4), "write");
    }
}
