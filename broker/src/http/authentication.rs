//! Who calls the HTTP API, and whether the ACLs let them. With
//! `--http-authentication required` every route but `/health` and the
//! token endpoint asks for credentials: HTTP basic (a user of the Kafka
//! listener, checked against the SCRAM credentials), or a bearer token
//! (one floe issued at the token endpoint, [`super::oauth`], or a JWT
//! signed by a key of `--oauth-jwks`), or, over HTTPS with a client CA,
//! a client certificate. With `--acls` each route needs what
//! [`super::route_access`] says: a subject its topic's ACLs, the rest the
//! cluster's (DESCRIBE to read, ALTER to change, as Kafka guards its own
//! admin APIs). The
//! caller's principal rides on the request and on its response
//! ([`Caller`]), for the handlers and the audit log.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;

use super::listener::Peer;
use super::route_access;
use super::stream::Certified;
use crate::acl::Access;
use crate::jwt::{now_seconds, JwtVerifier};
use crate::registry::ANONYMOUS;
use crate::Broker;

/// How the HTTP API authenticates.
#[derive(Clone)]
pub enum HttpLogin {
    /// Not at all: every caller is `anonymous`.
    None,
    /// Credentials required: basic, or a bearer token of floe's or one
    /// this verifier accepts (an identity provider's).
    Required(Option<Arc<JwtVerifier>>),
}

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    /// Its checks against the ACLs.
    pub access: Access,
    /// Its principal as floe names it (`alice`, `anonymous`): grants are
    /// kept under this name.
    pub name: String,
}

/// The routes open to everyone.
fn open(path: &str) -> bool {
    path == "/health" || path == "/iceberg/v1/oauth/tokens"
}

/// A refusal in the error models of both APIs behind the gate: the
/// schema registry's (`error_code`, `message`) and the Iceberg REST
/// catalog's (`error`).
fn refused(status: StatusCode, message: &str) -> Response {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "NotAuthorizedException",
        _ => "ForbiddenException",
    };
    let body = Json(json!({
        "error_code": status.as_u16(),
        "message": message,
        "error": { "message": message, "type": kind, "code": status.as_u16() },
    }));
    let mut response = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = header::HeaderValue::from_static("Basic realm=\"floe\", charset=\"UTF-8\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The scheme and credentials of the `Authorization` header.
fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// The user and password of a basic `Authorization` header.
pub(super) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let (scheme, encoded) = authorization(headers)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Who the credentials of a request name, or why they are refused.
async fn principal_of(
    broker: &Broker,
    headers: &HeaderMap,
    jwt: Option<&JwtVerifier>,
) -> Result<String, &'static str> {
    match authorization(headers) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let now = now_seconds();
            if let Some(p) = broker.tokens().verify(token, now) {
                return Ok(p);
            }
            match jwt.map(|j| j.verify(token, now)) {
                Some(Ok(v)) => Ok(v.principal),
                _ => Err("invalid or expired token"),
            }
        }
        Some(_) => {
            let (user, password) = basic(headers).ok_or("authentication required")?;
            crate::sasl::check_password(broker.meta().as_ref(), &user, &password)
                .await
                .map_err(|_| "invalid user name or password")?;
            Ok(user)
        }
        None => Err("authentication required"),
    }
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
    let peer = request.extensions().get::<ConnectInfo<Peer>>();
    let ip = peer
        .map(|c| c.0.addr().ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let certified = peer.and_then(|c| c.0.certified()).cloned();
    let credentials = request.headers().contains_key(header::AUTHORIZATION);
    let principal = match (&login, certified) {
        // A client certificate (mTLS) names the caller, unless the request
        // carries credentials of its own.
        (_, Some(Certified::Principal(p))) if !credentials => p,
        (_, Some(Certified::Unmapped(subject))) if !credentials => {
            tracing::info!(
                subject,
                "HTTP client certificate refused: no --ssl-principal-mapping-rules rule applies"
            );
            return refused(
                StatusCode::UNAUTHORIZED,
                "no principal mapping rule applies to the client certificate",
            );
        }
        (HttpLogin::None, _) => ANONYMOUS.to_string(),
        (HttpLogin::Required(jwt), _) => {
            match principal_of(&broker, request.headers(), jwt.as_deref()).await {
                Ok(p) => p,
                Err(why) => {
                    tracing::info!(why, "HTTP authentication refused");
                    return refused(StatusCode::UNAUTHORIZED, why);
                }
            }
        }
    };
    let access = broker.authorizer().access(&principal, ip);
    let need = route_access::need(request.method(), request.uri().path());
    let caller = Caller {
        access: access.clone(),
        name: principal,
    };
    let mut response = if route_access::allowed(&broker, &access, &need) {
        request.extensions_mut().insert(caller.clone());
        next.run(request).await
    } else {
        refused(StatusCode::FORBIDDEN, "not authorized")
    };
    response.extensions_mut().insert(caller);
    response
}
