//! The HTTP front door: the router (health, admin, `/metrics`, a body
//! limit) served through [`listener`], merging the schema registry REST API
//! ([`registry`]), the Iceberg REST catalog ([`catalog`]) and the SASL
//! users ([`users`]); every change made through it is audited
//! ([`audit`]).

mod audit;
pub mod authentication;
pub mod catalog;
pub mod listener;
mod oauth;
pub mod registry;
mod route_access;
pub mod stream;
mod table_access;
pub mod users;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::Broker;
pub use authentication::HttpLogin;

/// The router. Request bodies over `max_body_bytes` get 413; callers
/// authenticate as `login` says.
pub fn router(broker: Arc<Broker>, max_body_bytes: usize, login: HttpLogin) -> Router {
    let guard = axum::middleware::from_fn_with_state(
        (broker.clone(), login),
        authentication::authenticated,
    );
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/topics", get(topics))
        .route("/admin/topics/{name}", get(topic))
        .route("/admin/topics/{name}/configs", patch(alter_configs))
        .route("/admin/topics/{name}/compact", post(compact))
        .route("/admin/topics/{name}/check", get(check))
        .route("/admin/topics/{name}/files", get(files))
        .route("/admin/faults", get(faults).put(set_faults))
        .merge(crate::http::registry::routes())
        .merge(crate::http::catalog::routes())
        .merge(crate::http::users::routes())
        .merge(oauth::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(guard)
        .layer(axum::middleware::from_fn(audit::audited))
        .with_state(broker)
}

/// 200 while the broker serves; 503 while its lease in the metadata store
/// has lapsed (it refuses produce and fetch then), for load balancers and
/// orchestrators.
async fn health(State(b): State<Arc<Broker>>) -> (StatusCode, Json<Value>) {
    let (code, status) = match b.membership().is_live() {
        true => (StatusCode::OK, "ok"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "lease lapsed"),
    };
    let body =
        json!({ "status": status, "broker_id": b.broker_id(), "cluster_id": b.cluster_id() });
    (code, Json(body))
}

async fn metrics(State(b): State<Arc<Broker>>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&b),
    )
}

async fn topics(State(b): State<Arc<Broker>>) -> Json<Value> {
    let names: Vec<Value> = b
        .log()
        .topics()
        .iter()
        .map(|t| json!({ "name": t.name, "topic_id": t.id.to_string(), "partitions": t.partition_count() }))
        .collect();
    Json(json!({ "topics": names }))
}

async fn topic(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let Some(t) = b.log().topic(&name) else {
        return Err((
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown topic {name}") })),
        ));
    };
    let partitions: Vec<Value> = t
        .partitions()
        .iter()
        .map(|p| {
            let s = p.snapshot();
            json!({
                "partition": p.index,
                "high_watermark": s.high_watermark,
                "log_start_offset": s.log_start_offset,
                "leader_epoch": s.leader_epoch,
            })
        })
        .collect();
    Ok(Json(json!({
        "name": t.name,
        "topic_id": t.id.to_string(),
        "configs": t.config().overrides,
        "partitions": partitions,
    })))
}

/// `PATCH /admin/topics/{name}/configs` with `{"key": "value", "other":
/// null}`: sets (or, for null, removes) explicit topic configs, as
/// IncrementalAlterConfigs does, e.g. `floe.validate.mode`. Answers with
/// the topic's explicit configs.
async fn alter_configs(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
    Json(changes): Json<serde_json::Map<String, Value>>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let fail = |status, message: String| (status, Json(json!({ "error": message })));
    let Some(t) = b.log().topic(&name) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("unknown topic {name}")));
    };
    let mut overrides = t.config().overrides;
    for (key, value) in changes {
        match value {
            Value::Null => {
                overrides.remove(&key);
            }
            Value::String(v) => {
                overrides.insert(key, v);
            }
            Value::Number(_) | Value::Bool(_) => {
                overrides.insert(key, value.to_string());
            }
            _ => {
                return Err(fail(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("config {key}: expected a string, number, boolean or null"),
                ))
            }
        }
    }
    match b.log().set_topic_configs(&name, overrides, false).await {
        Ok(()) => {
            let configs = b.log().topic(&name).map(|t| t.config().overrides);
            Ok(Json(json!({ "name": name, "configs": configs })))
        }
        Err(floe_storage::StorageError::UnknownTopic(_)) => {
            Err(fail(StatusCode::NOT_FOUND, format!("unknown topic {name}")))
        }
        Err(e @ floe_storage::StorageError::InvalidConfig(_)) => {
            Err(fail(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
        Err(e) => Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /admin/topics/{name}/compact`: compacts the topic now (the
/// maintenance task does it every `--maintenance-interval-secs`): its keys
/// whatever the dirty ratio if its `cleanup.policy` holds `compact`, its
/// small files otherwise; says what was rewritten.
async fn compact(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let t = known_topic(&b, &name)?;
    let fail = |status, message: String| (status, Json(json!({ "error": message })));
    match b.log().compact_topic(&t, true).await {
        Ok(s) => Ok(Json(json!({
            "files_in": s.files_in,
            "files_out": s.files_out,
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "seconds": s.elapsed.as_secs_f64(),
        }))),
        Err(e) => Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `GET /admin/topics/{name}/files`: the topic's data files that hold
/// what the log serves now (URIs, oldest first), for readers of the
/// `data/` folder, which also keeps files a rewrite replaced until the
/// snapshots naming them expire; `in_intake` counts the intake chunks
/// whose rows have not moved into such a file yet.
async fn files(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let t = known_topic(&b, &name)?;
    match b.log().live_files(&t).await {
        Ok((files, in_intake)) => Ok(Json(json!({
            "files": files.iter().map(|f| json!({
                "uri": f.uri,
                "size_bytes": f.size_bytes,
                "in_table": f.in_table,
            })).collect::<Vec<_>>(),
            "in_intake": in_intake,
        }))),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        )),
    }
}

/// `GET /admin/topics/{name}/check`: the log's invariants for the topic
/// (segment index covers [log start, high watermark) without gaps or
/// overlaps, every row group holds the offsets the index claims, in
/// order). `ok` is false when anything is wrong; `problems` says what.
async fn check(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let t = known_topic(&b, &name)?;
    let fail = |status, message: String| (status, Json(json!({ "error": message })));
    match b.log().check_topic(&t).await {
        Ok(c) => Ok(Json(json!({
            "topic": c.topic,
            "ok": c.problems().is_empty(),
            "problems": c.problems(),
            "partitions": c.partitions,
        }))),
        Err(e) => Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The topic, or the 404 an admin route answers for an unknown one.
fn known_topic(
    b: &Broker,
    name: &str,
) -> Result<Arc<floe_storage::log::TopicLog>, (StatusCode, Json<Value>)> {
    b.log().topic(name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown topic {name}") })),
        )
    })
}

fn no_faults() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "fault injection is off: start floe with --fault-injection" })),
    )
}

/// `GET /admin/faults`: the object-store fault rates and what was injected
/// (only with `--fault-injection`).
async fn faults(State(b): State<Arc<Broker>>) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let f = b.faults().ok_or_else(no_faults)?;
    Ok(Json(json!({ "rates": f.rates(), "injected": f.counts() })))
}

/// `PUT /admin/faults`: sets the rates (fields of `FaultRates`; missing
/// ones are zero, so `{}` turns every fault off).
async fn set_faults(
    State(b): State<Arc<Broker>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let f = b.faults().ok_or_else(no_faults)?;
    let bad = |m: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": m })),
        )
    };
    let rates: floe_storage::faults::FaultRates =
        serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    f.set_rates(rates).map_err(bad)?;
    Ok(Json(json!({ "rates": f.rates(), "injected": f.counts() })))
}
