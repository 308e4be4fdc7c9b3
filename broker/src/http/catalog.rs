//! The Iceberg REST catalog, read side, under `/iceberg`: engines attach
//! with `uri = http://<floe>/iceberg` (PyIceberg, DuckDB, Spark, Trino).
//!
//! One namespace (`--iceberg-namespace`, default `floe`) holds one table
//! per topic. Tables are written by the broker only, so the write
//! endpoints (create, commit, drop, rename) answer 406 with the REST
//! spec's error model. Also here: the Kafka offset ↔ snapshot lookups
//! under `/admin/topics/{name}/snapshots`.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use floe_storage::table::{SnapshotOffsets, Tables};
use serde::Deserialize;
use serde_json::{json, Value};

use super::authentication::Caller;
use super::table_access;
use crate::Broker;

/// Catalog and lookup routes.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/iceberg/v1/config", get(config))
        .route("/iceberg/v1/namespaces", get(namespaces).post(read_only))
        .route(
            "/iceberg/v1/namespaces/{ns}",
            get(namespace).head(namespace_exists).delete(read_only),
        )
        .route(
            "/iceberg/v1/namespaces/{ns}/properties",
            axum::routing::post(read_only),
        )
        .route(
            "/iceberg/v1/namespaces/{ns}/tables",
            get(tables).post(read_only),
        )
        .route(
            "/iceberg/v1/namespaces/{ns}/tables/{table}",
            get(load_table)
                .head(table_exists)
                .post(read_only)
                .delete(read_only),
        )
        .route(
            "/iceberg/v1/namespaces/{ns}/tables/{table}/metrics",
            axum::routing::post(metrics),
        )
        .route("/iceberg/v1/namespaces/{ns}/views", get(views))
        .route("/iceberg/v1/tables/rename", axum::routing::post(read_only))
        .route("/admin/topics/{name}/snapshots", get(snapshots))
        .route("/admin/topics/{name}/snapshots/{id}", get(snapshot))
}

/// The REST spec's error model.
fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": kind, "code": status.as_u16() } })),
    )
        .into_response()
}

async fn read_only() -> Response {
    error(
        StatusCode::NOT_ACCEPTABLE,
        "UnsupportedOperationException",
        "floe's tables are written by the broker: produce to the topic instead".into(),
    )
}

/// What this catalog serves, so clients (Java's since Iceberg 1.7: Spark,
/// Trino) call nothing else: no writes, no views.
const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
];

async fn config() -> Json<Value> {
    Json(json!({ "defaults": {}, "overrides": {}, "endpoints": ENDPOINTS }))
}

/// Scan reports engines send after reading a table: taken and dropped
/// (floe keeps no query metrics), so clients have nothing to warn about.
async fn metrics(
    State(b): State<Arc<Broker>>,
    Path((ns, table)): Path<(String, String)>,
) -> Response {
    if !is_ours(&b, &ns) {
        return no_namespace(&ns);
    }
    if b.placed(&table).is_none() {
        return no_table(&table);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// floe has no views; an engine listing them gets none.
async fn views(State(b): State<Arc<Broker>>, Path(ns): Path<String>) -> Response {
    if !is_ours(&b, &ns) {
        return no_namespace(&ns);
    }
    Json(json!({ "identifiers": [] })).into_response()
}

/// A multi-level namespace arrives joined by the unit separator.
fn is_ours(b: &Broker, ns: &str) -> bool {
    ns.split('\u{1f}').collect::<Vec<_>>() == [b.tables().namespace()]
}

#[derive(Deserialize)]
struct Parent {
    parent: Option<String>,
}

async fn namespaces(State(b): State<Arc<Broker>>, Query(q): Query<Parent>) -> Json<Value> {
    let list: Vec<Vec<&str>> = match q.parent {
        // One level: nothing lives below the namespace.
        Some(_) => Vec::new(),
        None => vec![vec![b.tables().namespace()]],
    };
    Json(json!({ "namespaces": list }))
}

fn no_table(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchTableException",
        format!("table {name} does not exist"),
    )
}

fn no_namespace(ns: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchNamespaceException",
        format!("namespace {} does not exist", ns.replace('\u{1f}', ".")),
    )
}

async fn namespace(State(b): State<Arc<Broker>>, Path(ns): Path<String>) -> Response {
    if !is_ours(&b, &ns) {
        return no_namespace(&ns);
    }
    Json(json!({ "namespace": [b.tables().namespace()], "properties": {} })).into_response()
}

async fn namespace_exists(State(b): State<Arc<Broker>>, Path(ns): Path<String>) -> StatusCode {
    if is_ours(&b, &ns) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn tables(
    State(b): State<Arc<Broker>>,
    Extension(caller): Extension<Caller>,
    Path(ns): Path<String>,
) -> Response {
    if !is_ours(&b, &ns) {
        return no_namespace(&ns);
    }
    let mut names: Vec<String> = b.placed_topics().into_keys().collect();
    names.retain(|n| table_access::listed(&caller, n));
    let ids: Vec<Value> = names
        .iter()
        .map(|n| json!({ "namespace": [b.tables().namespace()], "name": n }))
        .collect();
    Json(json!({ "identifiers": ids })).into_response()
}

/// The topic's table, committing first if the table does not exist yet
/// (a topic created a moment ago loads as a table at once).
async fn loaded(b: &Broker, name: &str) -> Result<floe_storage::table::LoadedTable, Response> {
    let internal = |e: floe_storage::StorageError| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            e.to_string(),
        )
    };
    if b.placed(name).is_none() {
        return Err(no_table(name));
    }
    if let Some(t) = b.tables().load(name).await.map_err(internal)? {
        return Ok(t);
    }
    // Only the topic's leader commits its table; elsewhere the table
    // appears at the leader's first commit.
    let Some(topic) = b.log().topic(name) else {
        return Err(no_table(name));
    };
    b.log().sync_table(&topic).await.map_err(internal)?;
    b.log()
        .tables()
        .load(name)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_table(name))
}

async fn load_table(
    State(b): State<Arc<Broker>>,
    Extension(caller): Extension<Caller>,
    Path((ns, table)): Path<(String, String)>,
) -> Response {
    if !is_ours(&b, &ns) {
        return no_namespace(&ns);
    }
    if b.placed(&table).is_some() {
        if let Some(why) = table_access::refusal(&b, &caller, &table) {
            return error(StatusCode::FORBIDDEN, "ForbiddenException", why);
        }
    }
    let t = match loaded(&b, &table).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    Json(json!({
        "metadata-location": t.location,
        "metadata": t.metadata,
        "config": storage_config(b.tables()),
    }))
    .into_response()
}

/// FileIO settings engines need to read the files: for S3, the endpoint
/// and region floe itself uses (credentials are the engine's own).
fn storage_config(tables: &Tables) -> Value {
    let mut cfg = serde_json::Map::new();
    if tables.io().uri("").starts_with("s3://") {
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            cfg.insert("s3.endpoint".into(), endpoint.into());
            cfg.insert("s3.path-style-access".into(), "true".into());
        }
        if let Ok(region) = std::env::var("AWS_REGION").or(std::env::var("AWS_DEFAULT_REGION")) {
            cfg.insert("s3.region".into(), region.into());
        }
    }
    Value::Object(cfg)
}

async fn table_exists(
    State(b): State<Arc<Broker>>,
    Path((ns, table)): Path<(String, String)>,
) -> StatusCode {
    if is_ours(&b, &ns) && b.placed(&table).is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct Covering {
    partition: Option<i32>,
    offset: Option<i64>,
}

/// `GET /admin/topics/{name}/snapshots`: every snapshot with the highest
/// Kafka offset it holds per partition; with `?partition=P&offset=N`, the
/// first snapshot that holds offset N of partition P (404 if none does
/// yet).
async fn snapshots(
    State(b): State<Arc<Broker>>,
    Path(name): Path<String>,
    Query(q): Query<Covering>,
) -> Response {
    let t = match loaded(&b, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let all = Tables::snapshot_offsets(&t.metadata);
    match (q.partition, q.offset) {
        (None, None) => Json(json!({ "topic": name, "snapshots": all })).into_response(),
        (Some(p), Some(n)) => match covering(&all, p, n) {
            Some(s) => Json(json!(s)).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                "NoSuchSnapshotException",
                format!("no snapshot of {name} holds offset {n} of partition {p} yet"),
            ),
        },
        _ => error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "give both partition and offset, or neither".into(),
        ),
    }
}

/// The first snapshot (oldest first) whose offsets reach `offset` in
/// `partition`.
fn covering(all: &[SnapshotOffsets], partition: i32, offset: i64) -> Option<&SnapshotOffsets> {
    all.iter()
        .find(|s| s.offsets.get(&partition).is_some_and(|o| *o >= offset))
}

/// `GET /admin/topics/{name}/snapshots/{id}`: the offsets one snapshot
/// holds.
async fn snapshot(State(b): State<Arc<Broker>>, Path((name, id)): Path<(String, i64)>) -> Response {
    let t = match loaded(&b, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match Tables::snapshot_offsets(&t.metadata)
        .into_iter()
        .find(|s| s.snapshot_id == id)
    {
        Some(s) => Json(json!(s)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "NoSuchSnapshotException",
            format!("table {name} has no snapshot {id}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snap(id: i64, offsets: &[(i32, i64)]) -> SnapshotOffsets {
        SnapshotOffsets {
            snapshot_id: id,
            parent_snapshot_id: None,
            timestamp_ms: id,
            operation: "append".into(),
            offsets: offsets.iter().copied().collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn covering_is_the_first_snapshot_reaching_the_offset() {
        let all = [
            snap(1, &[(0, 9)]),
            snap(2, &[(0, 19), (1, 4)]),
            snap(3, &[(0, 29), (1, 4)]),
        ];
        assert_eq!(covering(&all, 0, 0).map(|s| s.snapshot_id), Some(1));
        assert_eq!(covering(&all, 0, 9).map(|s| s.snapshot_id), Some(1));
        assert_eq!(covering(&all, 0, 10).map(|s| s.snapshot_id), Some(2));
        assert_eq!(covering(&all, 1, 4).map(|s| s.snapshot_id), Some(2));
        assert_eq!(covering(&all, 1, 5), None);
        assert_eq!(covering(&all, 2, 0), None);
    }
}
