//! The schema registry's REST API in Confluent's dialect, plus floe's
//! purpose grants and policy listings. Bodies are JSON with the
//! `application/vnd.schemaregistry.v1+json` content type; errors carry
//! Confluent's `error_code` and `message`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use floe_schema::compat::Level;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::authentication::Caller;
use super::route_access::sees_subject;
use crate::registry::{RegistryError, SchemaRequest};
use crate::Broker;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    reply(200, body)
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({ "error_code": self.code, "message": self.message }),
        )
    }
}

type Reply = Result<Response, RegistryError>;

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError {
        status: 422,
        code: 42201,
        message: format!("Invalid request body: {e}"),
    })
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The registry routes.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(mode))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_one),
        )
        .route("/floe/grants", get(grants))
        .route("/floe/grants/{principal}", put(set_grants))
        .route("/floe/topics/{topic}/policies", get(policies))
}

/// The subjects the caller may see (with `--acls`: those of topics it
/// may describe, and the others if it may describe the cluster).
async fn subjects(
    State(b): State<Arc<Broker>>,
    caller: Option<Extension<Caller>>,
    Query(q): Params,
) -> Response {
    let mut subjects = b.registry().subjects(flag(&q, "deleted"));
    if let Some(Extension(caller)) = caller {
        subjects.retain(|s| sees_subject(&caller.access, s));
    }
    ok(json!(subjects))
}

async fn versions(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Reply {
    Ok(ok(json!(b
        .registry()
        .versions(&subject, flag(&q, "deleted"))?)))
}

async fn register(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Reply {
    let req: SchemaRequest = body(&bytes)?;
    let id = b.registry().register(&subject, req).await?;
    Ok(ok(json!({ "id": id })))
}

/// A version as JSON; `format=serialized` gives protobuf schemas as a
/// base64 `FileDescriptorProto`, as the Confluent deserializers ask.
fn version_json(b: &Broker, v: crate::registry::VersionView, q: &HashMap<String, String>) -> Value {
    let schema = serialized(b, v.id, &v.schema_type, q).unwrap_or(v.schema);
    json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schemaType": v.schema_type,
        "schema": schema,
        "references": v.references,
    })
}

fn serialized(
    b: &Broker,
    id: i32,
    schema_type: &str,
    q: &HashMap<String, String>,
) -> Option<String> {
    if schema_type != "PROTOBUF" || q.get("format").map(String::as_str) != Some("serialized") {
        return None;
    }
    b.registry().compiled(id).ok().map(|c| c.serialized())
}

async fn version(
    State(b): State<Arc<Broker>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    let v = b
        .registry()
        .version(&subject, &version, flag(&q, "deleted"))?;
    Ok(ok(version_json(&b, v, &q)))
}

async fn version_schema(
    State(b): State<Arc<Broker>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    let v = b
        .registry()
        .version(&subject, &version, flag(&q, "deleted"))?;
    Ok(v.schema.into_response())
}

async fn referenced_by(
    State(b): State<Arc<Broker>>,
    Path((subject, version)): Path<(String, String)>,
) -> Reply {
    let v = b.registry().version(&subject, &version, true)?;
    Ok(ok(json!(b.registry().referenced_by(&subject, v.version))))
}

async fn lookup(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Reply {
    let req: SchemaRequest = body(&bytes)?;
    let v = b.registry().lookup(&subject, &req)?;
    Ok(ok(version_json(&b, v, &q)))
}

async fn delete_subject(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Reply {
    let deleted = b
        .registry()
        .delete(&subject, None, flag(&q, "permanent"))
        .await?;
    Ok(ok(json!(deleted)))
}

async fn delete_version(
    State(b): State<Arc<Broker>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    let deleted = b
        .registry()
        .delete(&subject, Some(&version), flag(&q, "permanent"))
        .await?;
    Ok(ok(json!(deleted.first())))
}

async fn types() -> Response {
    ok(json!(["PROTOBUF", "AVRO", "JSON"]))
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse().map_err(|_| RegistryError {
        status: 404,
        code: 40403,
        message: format!("Schema {id} not found"),
    })
}

async fn schema_by_id(
    State(b): State<Arc<Broker>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Reply {
    let s = b.registry().schema(parse_id(&id)?)?;
    let schema = serialized(&b, s.id, &s.schema_type, &q).unwrap_or(s.schema);
    let refs: Value = serde_json::from_str(&s.refs).unwrap_or(json!([]));
    Ok(ok(json!({
        "schemaType": s.schema_type,
        "schema": schema,
        "references": refs,
    })))
}

async fn schema_text_by_id(State(b): State<Arc<Broker>>, Path(id): Path<String>) -> Reply {
    Ok(b.registry().schema(parse_id(&id)?)?.schema.into_response())
}

async fn subjects_by_id(
    State(b): State<Arc<Broker>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Reply {
    let mut subjects: Vec<String> = b
        .registry()
        .usages(parse_id(&id)?, flag(&q, "deleted"))?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(ok(json!(subjects)))
}

async fn versions_by_id(
    State(b): State<Arc<Broker>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Reply {
    let v: Vec<Value> = b
        .registry()
        .usages(parse_id(&id)?, flag(&q, "deleted"))?
        .into_iter()
        .map(|(s, v)| json!({ "subject": s, "version": v }))
        .collect();
    Ok(ok(json!(v)))
}

async fn global_config(State(b): State<Arc<Broker>>) -> Response {
    ok(json!({ "compatibilityLevel": b.registry().effective_level("").name() }))
}

fn level_body(bytes: &Bytes) -> Result<Level, RegistryError> {
    let v: Value = body(bytes)?;
    let name = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Level::parse(name).ok_or_else(|| RegistryError {
        status: 422,
        code: 42203,
        message: format!("Invalid compatibility level {name:?}"),
    })
}

async fn set_global_config(State(b): State<Arc<Broker>>, bytes: Bytes) -> Reply {
    let level = level_body(&bytes)?;
    b.registry().set_level("", Some(level)).await?;
    Ok(ok(json!({ "compatibility": level.name() })))
}

async fn subject_config(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Reply {
    let level = match b.registry().level(&subject) {
        Some(l) => l,
        None if flag(&q, "defaultToGlobal") => b.registry().effective_level(&subject),
        None => {
            return Err(RegistryError {
                status: 404,
                code: 40408,
                message: format!(
                    "Subject '{subject}' does not have subject-level compatibility configured"
                ),
            })
        }
    };
    Ok(ok(json!({ "compatibilityLevel": level.name() })))
}

async fn set_subject_config(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Reply {
    let level = level_body(&bytes)?;
    b.registry().set_level(&subject, Some(level)).await?;
    Ok(ok(json!({ "compatibility": level.name() })))
}

async fn delete_subject_config(State(b): State<Arc<Broker>>, Path(subject): Path<String>) -> Reply {
    let was = b.registry().effective_level(&subject);
    b.registry().set_level(&subject, None).await?;
    Ok(ok(json!({ "compatibilityLevel": was.name() })))
}

async fn mode() -> Response {
    ok(json!({ "mode": "READWRITE" }))
}

fn compat_reply(problems: Vec<String>, q: &HashMap<String, String>) -> Response {
    let mut v = json!({ "is_compatible": problems.is_empty() });
    if flag(q, "verbose") {
        v["messages"] = json!(problems);
    }
    ok(v)
}

async fn check_all(
    State(b): State<Arc<Broker>>,
    Path(subject): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Reply {
    let req: SchemaRequest = body(&bytes)?;
    Ok(compat_reply(b.registry().check(&subject, None, &req)?, &q))
}

async fn check_one(
    State(b): State<Arc<Broker>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    bytes: Bytes,
) -> Reply {
    let req: SchemaRequest = body(&bytes)?;
    Ok(compat_reply(
        b.registry().check(&subject, Some(&version), &req)?,
        &q,
    ))
}

async fn grants(State(b): State<Arc<Broker>>) -> Response {
    ok(json!(b.registry().grants()))
}

async fn set_grants(
    State(b): State<Arc<Broker>>,
    Path(principal): Path<String>,
    bytes: Bytes,
) -> Reply {
    let v: Value = body(&bytes)?;
    let purposes: Vec<String> = v
        .get("purposes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    b.registry()
        .set_grants(&principal, purposes.clone())
        .await?;
    Ok(ok(json!({ "principal": principal, "purposes": purposes })))
}

/// The policies in force for a topic: the restricted fields of its latest
/// value schema, with who may see them.
async fn policies(State(b): State<Arc<Broker>>, Path(topic): Path<String>) -> Reply {
    let subject = format!("{topic}-value");
    let Some(id) = b.registry().latest_id(&subject) else {
        return Err(RegistryError {
            status: 404,
            code: 40401,
            message: format!("Subject '{subject}' not found."),
        });
    };
    let c = b.registry().compiled(id)?;
    Ok(ok(json!({
        "topic": topic,
        "subject": subject,
        "schema_id": id,
        "messages": c.policies.all(),
    })))
}
