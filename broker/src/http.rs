//! The HTTP API: health, admin, and the schema registry (`registry_http`);
//! the Iceberg REST catalog joins it later.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::Broker;

/// The router.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/topics", get(topics))
        .route("/admin/topics/{name}", get(topic))
        .merge(crate::registry_http::routes())
        .with_state(broker)
}

async fn health(State(b): State<Arc<Broker>>) -> Json<Value> {
    Json(json!({ "status": "ok", "broker_id": b.broker_id, "cluster_id": b.cluster_id }))
}

async fn topics(State(b): State<Arc<Broker>>) -> Json<Value> {
    let names: Vec<Value> = b
        .log
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
    let Some(t) = b.log.topic(&name) else {
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
