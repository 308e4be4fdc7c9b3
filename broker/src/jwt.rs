//! JSON Web Tokens signed by keys the operator trusts (a JWKS,
//! [`crate::jwks`]). floe verifies RS256/384/512 and
//! ES256/384 signatures (ring), refuses `none` and the HMAC algorithms
//! (a public key must never double as a shared secret), and checks the
//! expiry (required), `nbf`, and the issuer and audience when configured.
//! The principal is a claim of the token (`sub` by default), as Kafka's
//! OAUTHBEARER validator takes it.

use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

use crate::jwks::{KeyKind, KeySet};

/// How far a token's times may be off this machine's clock.
const SKEW_SECONDS: i64 = 30;

/// Why a token is refused (said to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct JwtError(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, JwtError> {
    Err(JwtError(why.into()))
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The principal's name (the configured claim).
    pub principal: String,
    /// When the token expires, in seconds since the epoch.
    pub expires_at: i64,
}

/// The checks tokens must pass.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `iss` must be this, when set.
    pub issuer: Option<String>,
    /// `aud` must be or contain this, when set.
    pub audience: Option<String>,
    /// The claim naming the principal.
    pub principal_claim: String,
}

/// Verifies tokens against the configured keys.
pub struct JwtVerifier {
    config: JwtConfig,
    keys: Arc<KeySet>,
}

impl JwtVerifier {
    /// A verifier of tokens signed by a key of `keys`.
    pub fn new(config: JwtConfig, keys: Arc<KeySet>) -> JwtVerifier {
        JwtVerifier { config, keys }
    }

    /// Verifies `token` at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return refuse("not a signed JWT (three dot-separated parts)");
        };
        let json = |part: &str, what: &str| -> Result<Value, JwtError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError(format!("the {what} is not base64url")))?;
            serde_json::from_slice(&bytes).map_err(|_| JwtError(format!("the {what} is not JSON")))
        };
        let head = json(header, "header")?;
        let claims = json(payload, "payload")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError("the signature is not base64url".into()))?;
        let alg = head.get("alg").and_then(Value::as_str).unwrap_or("");
        let kid = head.get("kid").and_then(Value::as_str);
        let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
        let keys = self.keys.keys();
        let candidates = keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid);
        let mut any = false;
        let mut good = false;
        for key in candidates {
            let Some(algorithm) = algorithm_for(alg, &key.kind) else {
                continue;
            };
            any = true;
            let ok = match &key.kind {
                KeyKind::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                    .verify(algorithm.rsa(), signed, &signature)
                    .is_ok(),
                KeyKind::Ec { point, .. } => UnparsedPublicKey::new(algorithm.ec(), point)
                    .verify(signed, &signature)
                    .is_ok(),
            };
            if ok {
                good = true;
                break;
            }
        }
        if !any {
            if kid.is_some() {
                // Perhaps a key rotated in since the keys were read.
                self.keys.unknown_key();
            }
            return refuse(format!(
                "no trusted key for algorithm `{alg}` and key id {kid:?}"
            ));
        }
        if !good {
            return refuse("the signature does not verify");
        }
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Value, now: i64) -> Result<Verified, JwtError> {
        let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
            return refuse("no expiry (`exp`)");
        };
        if exp + SKEW_SECONDS <= now {
            return refuse("the token has expired");
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
            if nbf - SKEW_SECONDS > now {
                return refuse("the token is not valid yet");
            }
        }
        if let Some(want) = &self.config.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(want) {
                return refuse(format!("the issuer is not {want}"));
            }
        }
        if let Some(want) = &self.config.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == want,
                Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return refuse(format!("the audience does not include {want}"));
            }
        }
        let claim = &self.config.principal_claim;
        let principal = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| JwtError(format!("no `{claim}` claim to name the principal")))?;
        Ok(Verified {
            principal: principal.to_string(),
            expires_at: exp,
        })
    }
}

/// A verification algorithm of ring.
enum Algorithm {
    Rsa(&'static signature::RsaParameters),
    Ec(&'static signature::EcdsaVerificationAlgorithm),
}

impl Algorithm {
    fn rsa(&self) -> &'static signature::RsaParameters {
        match self {
            Algorithm::Rsa(p) => p,
            Algorithm::Ec(_) => unreachable!("an EC algorithm is only paired with an EC key"),
        }
    }

    fn ec(&self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Algorithm::Ec(a) => a,
            Algorithm::Rsa(_) => unreachable!("an RSA algorithm is only paired with an RSA key"),
        }
    }
}

/// The algorithm `alg` names for a key of this kind, if they fit.
fn algorithm_for(alg: &str, key: &KeyKind) -> Option<Algorithm> {
    use signature::*;
    Some(match (alg, key) {
        ("RS256", KeyKind::Rsa { .. }) => Algorithm::Rsa(&RSA_PKCS1_2048_8192_SHA256),
        ("RS384", KeyKind::Rsa { .. }) => Algorithm::Rsa(&RSA_PKCS1_2048_8192_SHA384),
        ("RS512", KeyKind::Rsa { .. }) => Algorithm::Rsa(&RSA_PKCS1_2048_8192_SHA512),
        ("ES256", KeyKind::Ec { p384: false, .. }) => Algorithm::Ec(&ECDSA_P256_SHA256_FIXED),
        ("ES384", KeyKind::Ec { p384: true, .. }) => Algorithm::Ec(&ECDSA_P384_SHA384_FIXED),
        _ => return None,
    })
}

/// Seconds since the epoch, now.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A P-256 key pair, its JWKS file, and a verifier of it.
    fn setup(dir: &std::path::Path, kid: &str) -> (EcdsaKeyPair, JwtVerifier) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}]});
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let verifier = JwtVerifier::new(
            JwtConfig {
                issuer: Some("https://idp.example".into()),
                audience: Some("floe".into()),
                principal_claim: "sub".into(),
            },
            Arc::new(KeySet::file(&path).unwrap()),
        );
        (pair, verifier)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(header.to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{head}.{body}");
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn a_signed_token_names_its_principal_and_a_tampered_or_stale_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("floe-jwt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pair, v) = setup(&dir, "k1");
        let now = 1_800_000_000;
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let claims = |exp: i64, aud: &str| serde_json::json!({"sub": "alice", "iss": "https://idp.example", "aud": [aud], "exp": exp});
        let good = sign(&pair, header.clone(), claims(now + 60, "floe"));
        assert_eq!(
            v.verify(&good, now),
            Ok(Verified {
                principal: "alice".into(),
                expires_at: now + 60
            })
        );
        let refused = |t: &str| v.verify(t, now).unwrap_err().to_string();
        assert!(
            refused(&sign(&pair, header.clone(), claims(now - 120, "floe"))).contains("expired")
        );
        assert!(
            refused(&sign(&pair, header.clone(), claims(now + 60, "other"))).contains("audience")
        );
        // The payload changed after signing.
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            claims(now + 60, "floe")
                .to_string()
                .replace("alice", "admin"),
        );
        assert!(refused(&format!("{}.{forged}.{}", parts[0], parts[2])).contains("signature"));
        // `none`, HMAC and unknown key ids are not trusted.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(refused(&unsigned).contains("no trusted key"));
        let hs = sign(
            &pair,
            serde_json::json!({"alg": "HS256"}),
            claims(now + 60, "floe"),
        );
        assert!(refused(&hs).contains("no trusted key"));
        let other_kid = sign(
            &pair,
            serde_json::json!({"alg": "ES256", "kid": "k2"}),
            claims(now + 60, "floe"),
        );
        assert!(refused(&other_kid).contains("no trusted key"));
        assert!(refused("not-a-token").contains("three"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
