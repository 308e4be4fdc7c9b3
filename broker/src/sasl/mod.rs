//! SASL authentication of a Kafka connection: PLAIN and SCRAM-SHA-256/512
//! against the users' SCRAM credentials in the metadata store (so every
//! broker of a cluster knows the same users), and OAUTHBEARER with JWTs
//! signed by trusted keys ([`crate::jwt`]); one [`Session`] per
//! connection, which may authenticate again (KIP-368) as the same
//! principal.
//!
//! `scram.rs` holds the SCRAM exchange and credentials, `oauthbearer.rs`
//! RFC 7628's message; this file the session's states and the
//! credentials' storage form.

pub mod oauthbearer;
pub mod scram;

use std::sync::Arc;

use floe_storage::meta::{MetadataStore, ScramCredentialRecord};
use scram::{Credential, Exchange, Mechanism};

use crate::jwt::JwtVerifier;

/// Why authentication failed, said to the client (Kafka's
/// SASL_AUTHENTICATION_FAILED carries the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(String);

impl SaslError {
    fn malformed(why: &str) -> SaslError {
        SaslError(format!("malformed SASL message: {why}"))
    }

    fn failed(why: &str) -> SaslError {
        SaslError(format!("authentication failed: {why}"))
    }

    /// The one message for a wrong user or password: which of the two is
    /// not said.
    fn bad_credentials() -> SaslError {
        SaslError("authentication failed: invalid user name or password".into())
    }
}

/// A mechanism a listener may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN: the password in the clear (only over TLS in production).
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(Mechanism),
    /// OAUTHBEARER: a JWT signed by a trusted key.
    OAuthBearer,
}

impl SaslMechanism {
    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// By SASL name.
    pub fn by_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            "OAUTHBEARER" => Some(SaslMechanism::OAuthBearer),
            other => Mechanism::by_name(other).map(SaslMechanism::Scram),
        }
    }
}

/// Where a session stands.
enum State {
    /// Nothing yet: a SaslHandshake must come first.
    Start,
    /// The mechanism is chosen; its first token is awaited.
    Chosen(SaslMechanism),
    /// SCRAM's server-first message was sent.
    Scram(Box<Exchange>),
    /// Authenticated as this principal; a token's expiry (seconds since
    /// the epoch) bounds the session.
    Done(String, Option<i64>),
    /// Failed: the connection is closed.
    Failed,
}

/// The authentication of one connection.
pub struct Session {
    offered: Arc<[SaslMechanism]>,
    /// OAUTHBEARER's token checker, where it is offered.
    jwt: Option<Arc<JwtVerifier>>,
    state: State,
    /// The principal being authenticated again (KIP-368): the new login
    /// must name it.
    again: Option<String>,
    /// The handshake was SaslHandshake v0: the tokens that follow come
    /// bare (a size and the bytes), not in SaslAuthenticate requests.
    bare: bool,
}

/// What a SaslHandshake gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The mechanism is taken.
    Accepted,
    /// Not offered here (UNSUPPORTED_SASL_MECHANISM).
    Unsupported,
    /// Out of turn (ILLEGAL_SASL_STATE).
    OutOfTurn,
}

/// What a SaslAuthenticate gets.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes back; more are expected (SCRAM's server-first) or
    /// the session is authenticated (PLAIN's empty answer, SCRAM's
    /// server-final).
    Answer(Vec<u8>),
    /// Refused; the connection is closed after the answer.
    Refused(SaslError),
    /// Out of turn (ILLEGAL_SASL_STATE).
    OutOfTurn,
}

impl Session {
    /// A session offering `offered`.
    pub fn new(offered: Arc<[SaslMechanism]>, jwt: Option<Arc<JwtVerifier>>) -> Session {
        Session {
            offered,
            jwt,
            state: State::Start,
            again: None,
            bare: false,
        }
    }

    /// The mechanisms offered, by name.
    pub fn offered(&self) -> Vec<&'static str> {
        self.offered.iter().map(|m| m.name()).collect()
    }

    /// The authenticated principal, once there is one.
    pub fn principal(&self) -> Option<&str> {
        match &self.state {
            State::Done(p, _) => Some(p),
            _ => None,
        }
    }

    /// When the credential of the session expires (a token's `exp`, in
    /// seconds since the epoch), if it does.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.state {
            State::Done(_, expires) => *expires,
            _ => None,
        }
    }

    /// SaslHandshake; `bare` for its v0, after which the tokens come bare.
    /// Once authenticated, a SaslHandshake (v1) starts authenticating
    /// again (KIP-368).
    pub fn handshake(&mut self, mechanism: &str, bare: bool) -> Handshake {
        match &self.state {
            State::Start => {}
            State::Done(p, _) if !bare => self.again = Some(p.clone()),
            _ => return Handshake::OutOfTurn,
        }
        match SaslMechanism::by_name(mechanism).filter(|m| self.offered.contains(m)) {
            Some(m) => {
                self.state = State::Chosen(m);
                self.bare = bare;
                Handshake::Accepted
            }
            None => Handshake::Unsupported,
        }
    }

    /// True when the next bytes from the client are a bare token (after a
    /// SaslHandshake v0, until the login ends).
    pub fn awaits_bare_token(&self) -> bool {
        self.bare && matches!(self.state, State::Chosen(_) | State::Scram(_))
    }

    /// SaslAuthenticate with the client's token (or a bare token).
    pub async fn authenticate(&mut self, token: &[u8], meta: &dyn MetadataStore) -> Step {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let step = match state {
            State::Chosen(SaslMechanism::Plain) => plain(token, meta).await.map(|user| {
                self.state = State::Done(user, None);
                Vec::new()
            }),
            State::Chosen(SaslMechanism::OAuthBearer) => {
                oauthbearer::authenticate(token, self.jwt.as_deref()).map(|v| {
                    self.state = State::Done(v.principal, Some(v.expires_at));
                    Vec::new()
                })
            }
            State::Chosen(SaslMechanism::Scram(m)) => {
                scram_first(m, token, meta).await.map(|(exchange, answer)| {
                    self.state = State::Scram(Box::new(exchange));
                    answer.into_bytes()
                })
            }
            State::Scram(exchange) => exchange.finish(token).map(|answer| {
                self.state = State::Done(exchange.user.clone(), None);
                answer.into_bytes()
            }),
            other => {
                self.state = other;
                return Step::OutOfTurn;
            }
        };
        let again = self.again.take();
        match step {
            Ok(_) if again.is_some() && again.as_deref() != self.principal() => {
                self.state = State::Failed;
                Step::Refused(SaslError::failed(
                    "a re-authentication may not change the principal",
                ))
            }
            Ok(answer) => Step::Answer(answer),
            Err(e) => Step::Refused(e),
        }
    }
}

/// PLAIN: `[authzid] NUL user NUL password`; the authzid, if given, must
/// be the user.
async fn plain(token: &[u8], meta: &dyn MetadataStore) -> Result<String, SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| SaslError::malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::malformed(
            "PLAIN takes authzid, user and password",
        ));
    };
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::failed("a user may not act as another"));
    }
    check_password(meta, user, password).await?;
    Ok(user.to_string())
}

/// Checks `password` against the user's stored SCRAM credentials (PLAIN
/// logins, HTTP basic authentication); an unknown user and a wrong
/// password are refused alike.
pub async fn check_password(
    meta: &dyn MetadataStore,
    user: &str,
    password: &str,
) -> Result<(), SaslError> {
    let credentials = credentials(meta, user).await?;
    match credentials.iter().find(|c| c.admits(password)) {
        Some(_) => Ok(()),
        None => Err(SaslError::bad_credentials()),
    }
}

/// SCRAM's first round: the user's credential for `m`, or a made-up one
/// for a user that does not exist (the exchange then fails at its end,
/// as for a wrong password: the client cannot tell which).
async fn scram_first(
    m: Mechanism,
    token: &[u8],
    meta: &dyn MetadataStore,
) -> Result<(Exchange, String), SaslError> {
    let first = scram::client_first(token)?;
    let credential = credentials(meta, &first.user)
        .await?
        .into_iter()
        .find(|c| c.mechanism == m)
        .unwrap_or_else(|| {
            let salt = uuid::Uuid::new_v4();
            let unknown = uuid::Uuid::new_v4().to_string();
            Credential::from_password(m, &unknown, salt.as_bytes(), scram::MIN_ITERATIONS)
        });
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    Ok(Exchange::start(first, credential, &nonce))
}

/// A user's credentials, from the store.
async fn credentials(meta: &dyn MetadataStore, user: &str) -> Result<Vec<Credential>, SaslError> {
    let records = meta.scram_credentials(Some(user)).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read SCRAM credentials");
        SaslError::failed("the credentials cannot be read now; try again")
    })?;
    Ok(records.iter().filter_map(credential_of).collect())
}

/// The stored credentials of `user` for `password`, one per mechanism,
/// each with a salt of its own.
pub fn records_for(
    user: &str,
    password: &str,
    mechanisms: &[Mechanism],
    iterations: i32,
) -> Vec<ScramCredentialRecord> {
    mechanisms
        .iter()
        .map(|&m| {
            let salt = uuid::Uuid::new_v4();
            let c = Credential::from_password(m, password, salt.as_bytes(), iterations);
            record_of(user, &c)
        })
        .collect()
}

/// Stores `user` with `password` (both SCRAM mechanisms, the default
/// iterations) unless it already has credentials: the first administrator
/// of a broker whose HTTP API and Kafka listener ask for logins.
pub async fn ensure_user(
    meta: &dyn MetadataStore,
    user: &str,
    password: &str,
) -> Result<bool, floe_storage::StorageError> {
    if !meta.scram_credentials(Some(user)).await?.is_empty() {
        return Ok(false);
    }
    let all = [Mechanism::Sha512, Mechanism::Sha256];
    let records = records_for(user, password, &all, DEFAULT_ITERATIONS);
    meta.alter_scram_credentials(&records, &[]).await?;
    Ok(true)
}

/// The iterations a credential is stored with unless told otherwise.
pub const DEFAULT_ITERATIONS: i32 = 8192;

/// A stored credential, if its mechanism is known.
pub fn credential_of(r: &ScramCredentialRecord) -> Option<Credential> {
    Some(Credential {
        mechanism: Mechanism::by_name(&r.mechanism)?,
        salt: r.salt.clone(),
        iterations: r.iterations,
        stored_key: r.stored_key.clone(),
        server_key: r.server_key.clone(),
    })
}

/// A credential's stored form, for `user`.
pub fn record_of(user: &str, c: &Credential) -> ScramCredentialRecord {
    ScramCredentialRecord {
        user: user.to_string(),
        mechanism: c.mechanism.name().to_string(),
        salt: c.salt.clone(),
        iterations: c.iterations,
        stored_key: c.stored_key.clone(),
        server_key: c.server_key.clone(),
    }
}
