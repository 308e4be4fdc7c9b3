//! Users of SASL logins over REST: `GET /floe/users` lists them with their
//! mechanisms, `PUT /floe/users/{name}` sets a password
//! (`{"password": "...", "mechanisms": ["SCRAM-SHA-512"], "iterations":
//! 8192}`; by default both SCRAM mechanisms at 8192 iterations), `DELETE
//! /floe/users/{name}` removes every credential of the user. The broker
//! salts and hashes the password; only RFC 5802's keys are stored. The
//! same credentials are managed over Kafka with AlterUserScramCredentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tracing::info;

use crate::sasl::scram::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::sasl::DEFAULT_ITERATIONS;
use crate::Broker;

type Reply = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn fail(status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message })))
}

/// The users routes.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/floe/users", get(list))
        .route("/floe/users/{name}", get(one).put(set).delete(remove))
}

async fn users(b: &Broker) -> Result<BTreeMap<String, Vec<Value>>, (StatusCode, Json<Value>)> {
    let all = b
        .meta()
        .scram_credentials(None)
        .await
        .map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let mut by_user: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in all {
        by_user
            .entry(c.user)
            .or_default()
            .push(json!({ "mechanism": c.mechanism, "iterations": c.iterations }));
    }
    Ok(by_user)
}

async fn list(State(b): State<Arc<Broker>>) -> Reply {
    let users: Vec<Value> = users(&b)
        .await?
        .into_iter()
        .map(|(name, credentials)| json!({ "name": name, "credentials": credentials }))
        .collect();
    Ok(Json(json!(users)))
}

async fn one(State(b): State<Arc<Broker>>, Path(name): Path<String>) -> Reply {
    match users(&b).await?.remove(&name) {
        Some(credentials) => Ok(Json(json!({ "name": name, "credentials": credentials }))),
        None => Err(fail(StatusCode::NOT_FOUND, format!("no user {name}"))),
    }
}

async fn set(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let bad = |m: String| fail(StatusCode::UNPROCESSABLE_ENTITY, m);
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("a non-empty \"password\" is required".into()))?;
    let iterations = match body.get("iterations") {
        None => DEFAULT_ITERATIONS,
        Some(v) => v
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| {
                bad(format!(
                    "\"iterations\" must be within [{MIN_ITERATIONS}, {MAX_ITERATIONS}]"
                ))
            })?,
    };
    let mechanisms = match body.get("mechanisms").and_then(Value::as_array) {
        None => vec![Mechanism::Sha512, Mechanism::Sha256],
        Some(names) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .and_then(Mechanism::by_name)
                    .ok_or_else(|| bad(format!("{n} is not SCRAM-SHA-256 or SCRAM-SHA-512")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if mechanisms.is_empty() {
        return Err(bad("\"mechanisms\" names none".into()));
    }
    let records = crate::sasl::records_for(&name, password, &mechanisms, iterations);
    b.meta()
        .alter_scram_credentials(&records, &[])
        .await
        .map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    info!(user = %name, mechanisms = ?names, "SCRAM credentials stored over HTTP");
    Ok(Json(
        json!({ "name": name, "mechanisms": names, "iterations": iterations }),
    ))
}

async fn remove(State(b): State<Arc<Broker>>, Path(name): Path<String>) -> Reply {
    let Some(credentials) = users(&b).await?.remove(&name) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no user {name}")));
    };
    let deletions: Vec<(String, String)> = credentials
        .iter()
        .filter_map(|c| c["mechanism"].as_str())
        .map(|m| (name.clone(), m.to_string()))
        .collect();
    b.meta()
        .alter_scram_credentials(&[], &deletions)
        .await
        .map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    info!(user = %name, "user deleted over HTTP");
    Ok(Json(json!({ "name": name, "deleted": true })))
}
