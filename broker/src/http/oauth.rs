//! The OAuth2 token endpoint of the Iceberg REST catalog
//! (`POST /iceberg/v1/oauth/tokens`, RFC 6749's client-credentials grant):
//! the client id and secret are a user's name and password (in the form
//! or as HTTP basic credentials), and the answer is an access token floe
//! issued ([`crate::tokens`]) that the HTTP API takes as a bearer token.
//! This is how PyIceberg and Spark authenticate to a REST catalog with
//! `credential=client_id:client_secret`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::jwt::now_seconds;
use crate::Broker;

/// How long an issued token lasts, in seconds.
const LIFETIME: i64 = 3600;

/// The token route.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/iceberg/v1/oauth/tokens", post(token))
}

/// An OAuth2 error answer (RFC 6749 §5.2, the Iceberg spec's OAuthError).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
}

async fn token(
    State(b): State<Arc<Broker>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    // The form, parsed here so that a malformed one gets OAuth2's error.
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only the client_credentials grant is served",
        ));
    }
    let from_form = form
        .get("client_id")
        .zip(form.get("client_secret"))
        .map(|(u, p)| (u.clone(), p.clone()));
    let Some((user, password)) = from_form.or_else(|| super::authentication::basic(&headers))
    else {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id and client_secret are required",
        ));
    };
    if crate::sasl::check_password(b.meta().as_ref(), &user, &password)
        .await
        .is_err()
    {
        tracing::info!(user, "token request refused");
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client id or secret",
        ));
    }
    let token = b.tokens().issue(&user, now_seconds(), LIFETIME);
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": LIFETIME,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
    })))
}
