//! Access tokens floe issues itself: an OAuth2 client-credentials grant
//! (the Iceberg REST catalog's `/v1/oauth/tokens`, which PyIceberg and
//! Spark call with `credential=user:password`) answers a JWT signed with
//! HMAC-SHA256 under a key every broker of the cluster shares (kept in the
//! metadata store), so a token issued by one broker is good at all of
//! them. The HTTP API takes it as a bearer token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde_json::{json, Value};

use floe_storage::meta::MetadataStore;

/// The `cluster` row holding the signing key.
const KEY_NAME: &str = "http.token.key";

/// The issuer floe writes into its tokens.
const ISSUER: &str = "floe";

/// Issues and checks floe's own tokens.
pub struct TokenIssuer {
    key: hmac::Key,
}

impl TokenIssuer {
    /// The issuer with the cluster's key (made by the first broker).
    pub async fn open(meta: &dyn MetadataStore) -> anyhow::Result<TokenIssuer> {
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let secret = meta.cluster_value_or_insert(KEY_NAME, &fresh).await?;
        Ok(TokenIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        })
    }

    /// A token naming `principal`, good for `lifetime` seconds from `now`.
    pub fn issue(&self, principal: &str, now: i64, lifetime: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        let claims = json!({"iss": ISSUER, "sub": principal, "iat": now, "exp": now + lifetime});
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The principal of a token floe issued, if it is one, unaltered and
    /// unexpired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Option<String> {
        let (signed, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).ok()?;
        let (header, body) = signed.split_once('.')?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        if claims.get("iss")?.as_str()? != ISSUER || claims.get("exp")?.as_i64()? <= now {
            return None;
        }
        Some(claims.get("sub")?.as_str()?.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &str) -> TokenIssuer {
        TokenIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    #[test]
    fn a_token_is_good_until_it_expires_and_only_under_its_key() {
        let a = issuer("one");
        let t = a.issue("alice", 1000, 60);
        assert_eq!(a.verify(&t, 1059), Some("alice".into()));
        assert_eq!(a.verify(&t, 1060), None);
        assert_eq!(issuer("two").verify(&t, 1000), None);
        let (head, rest) = t.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD
            .encode(json!({"iss": "floe", "sub": "admin", "iat": 1000, "exp": 9999}).to_string());
        assert_eq!(a.verify(&format!("{head}.{forged}.{tag}"), 1000), None);
    }
}
