//! CreateAcls, DescribeAcls and DeleteAcls. A broker without `--acls`
//! answers SECURITY_DISABLED, as Kafka without an authorizer; creating and
//! deleting needs ALTER on the cluster, describing DESCRIBE on it
//! (CLUSTER_AUTHORIZATION_FAILED otherwise).

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use floe_protocol::kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use floe_protocol::kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource,
};
use floe_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use tracing::warn;

use super::s;
use crate::acl::{
    Access, AclFilter, Binding, Operation, PatternType, Permission, Resource, ResourceType,
};
use crate::kafka::errors::code;
use crate::Broker;

const DISABLED: &str = "no authorizer is configured on the broker (start it with --acls)";
const DENIED: &str = "Authorization failed.";

/// None when the principal may `op` the cluster's ACLs on an enforcing
/// broker; else the error and its message.
fn refusal(broker: &Broker, access: &Access, op: Operation) -> Option<(i16, String)> {
    if !broker.authorizer().enabled() {
        return Some((code::SECURITY_DISABLED, DISABLED.into()));
    }
    if !access.allows(Resource::Cluster, op) {
        return Some((code::CLUSTER_AUTHORIZATION_FAILED, DENIED.into()));
    }
    None
}

/// The entry a creation states, or why Kafka would refuse it.
fn binding(
    c: &floe_protocol::kafka_protocol::messages::create_acls_request::AclCreation,
) -> Result<Binding, String> {
    let unknown = |what: &str, code: i8| format!("invalid {what} {code}");
    let b = Binding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| unknown("resource type", c.resource_type))?,
        name: c.resource_name.to_string(),
        pattern: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| unknown("pattern type", c.resource_pattern_type))?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| unknown("operation", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| unknown("permission type", c.permission_type))?,
    };
    match b.invalid() {
        Some(why) => Err(why),
        None => Ok(b),
    }
}

/// Creates the valid entries in one transaction; each invalid one gets
/// INVALID_REQUEST and its reason.
pub(super) async fn create(
    broker: &Arc<Broker>,
    req: CreateAclsRequest,
    access: &Access,
) -> CreateAclsResponse {
    let failed = |e: i16, m: String| {
        AclCreationResult::default()
            .with_error_code(e)
            .with_error_message(Some(s(m)))
    };
    if let Some((e, m)) = refusal(broker, access, Operation::Alter) {
        let results = req.creations.iter().map(|_| failed(e, m.clone())).collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<Result<Binding, String>> = req.creations.iter().map(binding).collect();
    let valid: Vec<Binding> = parsed
        .iter()
        .filter_map(|b| b.as_ref().ok())
        .cloned()
        .collect();
    let stored = match valid.is_empty() {
        true => Ok(()),
        false => broker.authorizer().create(access, &valid).await,
    };
    if let Err(e) = &stored {
        warn!(error = %e, "could not store ACLs");
    }
    let results = parsed
        .into_iter()
        .map(|b| match (b, &stored) {
            (Err(why), _) => failed(code::INVALID_REQUEST, why),
            (Ok(_), Err(e)) => failed(code::KAFKA_STORAGE_ERROR, e.to_string()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// The entries a filter selects, grouped by resource pattern.
pub(super) async fn describe(
    broker: &Arc<Broker>,
    req: DescribeAclsRequest,
    access: &Access,
) -> DescribeAclsResponse {
    let failed = |e: i16, m: String| {
        DescribeAclsResponse::default()
            .with_error_code(e)
            .with_error_message(Some(s(m)))
    };
    if let Some((e, m)) = refusal(broker, access, Operation::Describe) {
        return failed(e, m);
    }
    let filter = match AclFilter::from_codes(
        req.resource_type_filter,
        req.resource_name_filter.map(|n| n.to_string()),
        req.pattern_type_filter,
        req.principal_filter.map(|n| n.to_string()),
        req.host_filter.map(|n| n.to_string()),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => return failed(code::INVALID_REQUEST, why),
    };
    let found = match broker.authorizer().describe(&filter).await {
        Ok(found) => found,
        Err(e) => return failed(code::KAFKA_STORAGE_ERROR, e.to_string()),
    };
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in found {
        by_resource
            .entry((b.resource_type, b.name, b.pattern))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(s(b.principal))
                    .with_host(s(b.host))
                    .with_operation(b.operation as i8)
                    .with_permission_type(b.permission as i8),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((kind, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(kind as i8)
                .with_resource_name(s(name))
                .with_pattern_type(pattern as i8)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// Deletes what each filter selects, in one transaction, and says which.
pub(super) async fn delete(
    broker: &Arc<Broker>,
    req: DeleteAclsRequest,
    access: &Access,
) -> DeleteAclsResponse {
    let failed = |e: i16, m: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(e)
            .with_error_message(Some(s(m)))
    };
    if let Some((e, m)) = refusal(broker, access, Operation::Alter) {
        let results = req.filters.iter().map(|_| failed(e, m.clone())).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .into_iter()
        .map(|f| {
            AclFilter::from_codes(
                f.resource_type_filter,
                f.resource_name_filter.map(|n| n.to_string()),
                f.pattern_type_filter,
                f.principal_filter.map(|n| n.to_string()),
                f.host_filter.map(|n| n.to_string()),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .cloned()
        .collect();
    let deleted = broker.authorizer().delete(access, &valid).await;
    if let Err(e) = &deleted {
        warn!(error = %e, "could not delete ACLs");
    }
    let mut matched = match deleted {
        Ok(m) => Ok(m.into_iter()),
        Err(e) => Err(e.to_string()),
    };
    let results = parsed
        .into_iter()
        .map(|f| match (f, &mut matched) {
            (Err(why), _) => failed(code::INVALID_REQUEST, why),
            (Ok(_), Err(e)) => failed(code::KAFKA_STORAGE_ERROR, e.clone()),
            (Ok(_), Ok(m)) => DeleteAclsFilterResult::default().with_matching_acls(
                m.next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type as i8)
                            .with_resource_name(s(b.name))
                            .with_pattern_type(b.pattern as i8)
                            .with_principal(s(b.principal))
                            .with_host(s(b.host))
                            .with_operation(b.operation as i8)
                            .with_permission_type(b.permission as i8)
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
