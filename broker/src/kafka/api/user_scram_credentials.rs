//! DescribeUserScramCredentials and AlterUserScramCredentials: the users
//! SASL logins are checked against, kept in the metadata store (KIP-554).
//! Clients send a salted password, never the password itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use floe_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use floe_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use tracing::{info, warn};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::audit;
use crate::kafka::errors::code;
use crate::sasl::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::Broker;

pub(super) async fn describe(
    broker: &Arc<Broker>,
    req: DescribeUserScramCredentialsRequest,
    access: &Access,
) -> DescribeUserScramCredentialsResponse {
    if !access.allows(Resource::Cluster, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let stored = match broker.meta().scram_credentials(None).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "could not read SCRAM credentials");
            return DescribeUserScramCredentialsResponse::default()
                .with_error_code(code::KAFKA_STORAGE_ERROR)
                .with_error_message(Some(s(e.to_string())));
        }
    };
    let mut by_user: BTreeMap<String, Vec<CredentialInfo>> = BTreeMap::new();
    for c in &stored {
        if let Some(m) = Mechanism::by_name(&c.mechanism) {
            by_user.entry(c.user.clone()).or_default().push(
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(c.iterations),
            );
        }
    }
    let asked: Vec<String> = match req.users {
        None => by_user.keys().cloned().collect(),
        Some(users) => users.iter().map(|u| u.name.to_string()).collect(),
    };
    let mut seen = BTreeSet::new();
    let results = asked
        .into_iter()
        .map(|user| {
            let r = DescribeUserScramCredentialsResult::default().with_user(s(user.clone()));
            if !seen.insert(user.clone()) {
                return r
                    .with_error_code(code::DUPLICATE_RESOURCE)
                    .with_error_message(Some(s(format!("user {user} is named twice"))));
            }
            match by_user.remove(&user) {
                Some(infos) => r.with_credential_infos(infos),
                None => r
                    .with_error_code(code::RESOURCE_NOT_FOUND)
                    .with_error_message(Some(s(format!("user {user} has no SCRAM credentials")))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub(super) async fn alter(
    broker: &Arc<Broker>,
    req: AlterUserScramCredentialsRequest,
    access: &Access,
) -> AlterUserScramCredentialsResponse {
    if !access.allows(Resource::Cluster, Operation::Alter) {
        let users = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()));
        let denied = Some((
            code::CLUSTER_AUTHORIZATION_FAILED,
            "Authorization failed.".into(),
        ));
        return answer(users, &BTreeMap::new(), denied);
    }
    // Kafka's rules: a user named twice for one mechanism in a request is
    // refused as a whole for that user; iterations within [4096, 16384].
    let mut named: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (user, m) in req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *named.entry((user, m)).or_default() += 1;
    }
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut refuse = |user: &str, error: i16, message: String| {
        errors.entry(user.to_string()).or_insert((error, message));
    };
    for ((user, m), n) in &named {
        if *n > 1 {
            refuse(
                user,
                code::DUPLICATE_RESOURCE,
                format!("{user} is altered twice for one mechanism"),
            );
        } else if Mechanism::by_code(*m).is_none() {
            refuse(
                user,
                code::UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism {m}"),
            );
        } else if user.is_empty() {
            refuse(
                user,
                code::UNACCEPTABLE_CREDENTIAL,
                "the user name is empty".into(),
            );
        }
    }
    for u in &req.upsertions {
        let user = u.name.as_str();
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
            refuse(
                user,
                code::UNACCEPTABLE_CREDENTIAL,
                format!("iterations must be within [{MIN_ITERATIONS}, {MAX_ITERATIONS}]"),
            );
        } else if u.salt.is_empty() || u.salted_password.is_empty() {
            refuse(
                user,
                code::UNACCEPTABLE_CREDENTIAL,
                "salt and salted password are required".into(),
            );
        }
    }
    let existing: BTreeSet<(String, String)> = match broker.meta().scram_credentials(None).await {
        Ok(all) => all.into_iter().map(|c| (c.user, c.mechanism)).collect(),
        Err(e) => {
            warn!(error = %e, "could not read SCRAM credentials");
            return answer(
                req.deletions
                    .iter()
                    .map(|d| d.name.to_string())
                    .chain(req.upsertions.iter().map(|u| u.name.to_string())),
                &BTreeMap::new(),
                Some((code::KAFKA_STORAGE_ERROR, e.to_string())),
            );
        }
    };
    for d in &req.deletions {
        let m = Mechanism::by_code(d.mechanism)
            .map(Mechanism::name)
            .unwrap_or_default();
        if !existing.contains(&(d.name.to_string(), m.to_string())) {
            refuse(
                d.name.as_str(),
                code::RESOURCE_NOT_FOUND,
                format!("user {} has no {m} credential to delete", d.name.as_str()),
            );
        }
    }
    let upserts: Vec<_> = req
        .upsertions
        .iter()
        .filter(|u| !errors.contains_key(u.name.as_str()))
        .filter_map(|u| {
            let m = Mechanism::by_code(u.mechanism)?;
            let c = Credential::from_salted(m, &u.salt, u.iterations, &u.salted_password);
            Some(crate::sasl::record_of(u.name.as_str(), &c))
        })
        .collect();
    let deletions: Vec<(String, String)> = req
        .deletions
        .iter()
        .filter(|d| !errors.contains_key(d.name.as_str()))
        .filter_map(|d| {
            let m = Mechanism::by_code(d.mechanism)?;
            Some((d.name.to_string(), m.name().to_string()))
        })
        .collect();
    let users = req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()));
    if let Err(e) = broker
        .meta()
        .alter_scram_credentials(&upserts, &deletions)
        .await
    {
        warn!(error = %e, "could not store SCRAM credentials");
        return answer(
            users,
            &errors,
            Some((code::KAFKA_STORAGE_ERROR, e.to_string())),
        );
    }
    for c in &upserts {
        info!(user = %c.user, mechanism = %c.mechanism, "SCRAM credential stored");
        let user = format!("User:{} {}", c.user, c.mechanism);
        audit::changed(access.principal(), &user, "alter credential", "ok");
    }
    for (user, m) in &deletions {
        info!(user = %user, mechanism = %m, "SCRAM credential deleted");
        let user = format!("User:{user} {m}");
        audit::changed(access.principal(), &user, "delete credential", "ok");
    }
    answer(users, &errors, None)
}

/// One result per user named, in the order first named.
fn answer(
    users: impl Iterator<Item = String>,
    errors: &BTreeMap<String, (i16, String)>,
    failed: Option<(i16, String)>,
) -> AlterUserScramCredentialsResponse {
    let mut seen = BTreeSet::new();
    let results = users
        .filter(|u| seen.insert(u.clone()))
        .map(|user| {
            let error = errors.get(&user).cloned().or_else(|| failed.clone());
            let r = AlterUserScramCredentialsResult::default().with_user(s(user));
            match error {
                Some((c, m)) => r.with_error_code(c).with_error_message(Some(s(m))),
                None => r,
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
