//! Who calls the HTTP API, and whether the ACLs let them. With
//! `--http-authentication basic` every route but `/health` asks for HTTP
//! basic credentials, checked against the users' SCRAM credentials (the
//! users of the Kafka listener); with `--acls` a reading request (GET,
//! HEAD) needs DESCRIBE on the cluster and a changing one ALTER on it (a
//! super user may do both), as Kafka guards its own admin APIs. The
//! caller's principal rides on the request and on its response
//! ([`Caller`]), for the handlers and the audit log.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;

use super::listener::Peer;
use crate::acl::{Access, Operation, Resource};
use crate::registry::ANONYMOUS;
use crate::Broker;

/// How the HTTP API authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpLogin {
    /// Not at all: every caller is `anonymous`.
    None,
    /// HTTP basic, against the SCRAM users.
    Basic,
}

impl HttpLogin {
    /// The mode `--http-authentication` names.
    pub fn named(name: &str) -> HttpLogin {
        match name {
            "basic" => HttpLogin::Basic,
            _ => HttpLogin::None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller(pub Access);

/// The routes open to everyone.
fn open(path: &str) -> bool {
    path == "/health"
}

fn refused(status: StatusCode, message: &str) -> Response {
    let body = Json(json!({ "error_code": status.as_u16(), "message": message }));
    let mut response = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = header::HeaderValue::from_static("Basic realm=\"floe\", charset=\"UTF-8\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The user and password of a basic `Authorization` header.
fn basic(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The middleware.
pub async fn authenticated(
    State((broker, login)): State<(Arc<Broker>, HttpLogin)>,
    mut request: Request,
    next: Next,
) -> Response {
    if open(request.uri().path()) {
        return next.run(request).await;
    }
    let ip = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0 .0.ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let principal = match login {
        HttpLogin::None => ANONYMOUS.to_string(),
        HttpLogin::Basic => {
            let Some((user, password)) = basic(&request) else {
                return refused(StatusCode::UNAUTHORIZED, "authentication required");
            };
            let checked = crate::sasl::check_password(broker.meta().as_ref(), &user, &password);
            if checked.await.is_err() {
                tracing::info!(user, "HTTP authentication refused");
                return refused(StatusCode::UNAUTHORIZED, "invalid user name or password");
            }
            user
        }
    };
    let access = broker.authorizer().access(&principal, ip);
    let op = match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => Operation::Describe,
        _ => Operation::Alter,
    };
    let caller = Caller(access.clone());
    let mut response = if access.allows(Resource::Cluster, op) {
        request.extensions_mut().insert(caller.clone());
        next.run(request).await
    } else {
        refused(StatusCode::FORBIDDEN, "not authorized")
    };
    response.extensions_mut().insert(caller);
    response
}
