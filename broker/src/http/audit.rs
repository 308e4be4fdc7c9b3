//! Every HTTP request that changes something (POST, PUT, PATCH, DELETE:
//! schemas, compatibility levels, grants, users, topic configs, tables)
//! becomes an audit line with its outcome, whatever route serves it. The
//! principal is the authenticated caller's ([`super::authentication`]),
//! `User:ANONYMOUS` without authentication; a request refused for want of
//! credentials or permission is written too.

use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::authentication::Caller;
use super::listener::Peer;
use crate::acl::ANONYMOUS_PRINCIPAL;

/// The middleware.
pub async fn audited(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let host = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.addr().ip().to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let principal = response
        .extensions()
        .get::<Caller>()
        .map_or(ANONYMOUS_PRINCIPAL, |c| c.access.principal())
        .to_string();
    let status = response.status();
    let outcome = if status.is_success() {
        "ok".to_string()
    } else {
        format!("refused ({})", status.as_u16())
    };
    let principal = format!("{principal}@{host}");
    crate::audit::changed(
        &principal,
        &format!("HTTP:{path}"),
        method.as_str(),
        &outcome,
    );
    response
}
