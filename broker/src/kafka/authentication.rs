//! A connection's authentication. On a PLAINTEXT listener every
//! connection is the `anonymous` principal (or the one the listener is
//! configured with, `--listener-principals`); on an SSL listener that
//! requires client certificates, the certificate's subject. On a SASL listener nothing but
//! ApiVersions, SaslHandshake and SaslAuthenticate passes until the client
//! has authenticated (Kafka closes a connection that sends anything else
//! first, and so does floe); the principal is then the user's name (or
//! an OAUTHBEARER token's subject). A session may be bounded
//! (KIP-368: a token's expiry, `--connections-max-reauth-ms`): its
//! lifetime is told in SaslAuthenticate, the client authenticates again
//! before it ends, and a request after its end closes the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_protocol::frame::{Request, Response};
use floe_protocol::kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use floe_storage::meta::MetadataStore;
use tracing::info;

use crate::jwt::{now_seconds, JwtVerifier};
use crate::kafka::api::s;
use crate::kafka::errors::code;
use crate::registry::ANONYMOUS;
use crate::sasl::{Handshake, SaslMechanism, Session, Step};

/// How a listener authenticates its connections.
#[derive(Clone)]
pub enum ListenerAuth {
    /// Not at all: every connection is `anonymous`.
    None,
    /// With SASL.
    Sasl(SaslSettings),
}

/// A SASL listener's settings.
#[derive(Clone)]
pub struct SaslSettings {
    /// The mechanisms offered.
    pub offered: Arc<[SaslMechanism]>,
    /// OAUTHBEARER's token checker.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// Kafka's `connections.max.reauth.ms`: the longest a login lasts
    /// before the client must authenticate again (None: for ever, unless
    /// its token expires).
    pub max_reauth: Option<Duration>,
}

/// What becomes of one request.
pub enum Verdict {
    /// Handled as usual, for this principal.
    Dispatch,
    /// Answered here.
    Answer(Response),
    /// Answered here, then the connection is closed (a failed login).
    AnswerAndClose(Response),
    /// The connection is closed without an answer.
    Close,
}

/// One connection's authentication.
pub struct Gate {
    sasl: Option<Session>,
    /// The longest a login lasts.
    max_reauth: Option<Duration>,
    /// When the current login ends (KIP-368).
    session_end: Option<Instant>,
    /// The subject of the client's certificate (mTLS).
    certificate: Option<String>,
    /// The principal when nothing authenticates the connection.
    unauthenticated: Arc<str>,
}

impl Gate {
    /// The gate of a connection to a listener that authenticates as
    /// `auth`, and whose unauthenticated connections are `unauthenticated`
    /// (`anonymous`, unless the listener names another principal).
    pub fn new(auth: &ListenerAuth, unauthenticated: Arc<str>) -> Gate {
        let (sasl, max_reauth) = match auth {
            ListenerAuth::None => (None, None),
            ListenerAuth::Sasl(s) => (
                Some(Session::new(s.offered.clone(), s.jwt.clone())),
                s.max_reauth,
            ),
        };
        Gate {
            sasl,
            max_reauth,
            session_end: None,
            certificate: None,
            unauthenticated,
        }
    }

    /// The client presented a certificate whose subject is `subject`: the
    /// principal where no SASL login names one (with SASL_SSL the login
    /// decides, as in Kafka).
    pub fn certified(&mut self, subject: String) {
        self.certificate = Some(subject);
    }

    /// Who the connection is: `anonymous` on a listener without
    /// authentication, the user once authenticated.
    pub fn principal(&self) -> &str {
        match &self.sasl {
            None => self.certificate.as_deref().unwrap_or(&self.unauthenticated),
            Some(s) => s.principal().unwrap_or(ANONYMOUS),
        }
    }

    fn authenticated(&self) -> bool {
        self.sasl.as_ref().is_none_or(|s| s.principal().is_some())
    }

    /// Decides about one request, answering the SASL ones.
    pub async fn admit(
        &mut self,
        request: &Request,
        version: i16,
        meta: &dyn MetadataStore,
    ) -> Verdict {
        match request {
            Request::SaslHandshake(r) => {
                Verdict::Answer(self.handshake(r.mechanism.as_str(), version == 0))
            }
            Request::SaslAuthenticate(r) => self.authenticate(r, version, meta).await,
            Request::ApiVersions(_) => Verdict::Dispatch,
            _ if self.session_end.is_some_and(|end| Instant::now() >= end) => {
                info!(
                    principal = self.principal(),
                    "session expired without re-authentication: connection closed"
                );
                Verdict::Close
            }
            _ if self.authenticated() => Verdict::Dispatch,
            _ => Verdict::Close,
        }
    }

    /// True when the next frame from the client is a bare SASL token (the
    /// exchange after a SaslHandshake v0), not a Kafka request.
    pub fn awaits_bare_token(&self) -> bool {
        self.sasl.as_ref().is_some_and(Session::awaits_bare_token)
    }

    /// A bare SASL token: the bytes to send back bare (empty at the end
    /// of a PLAIN login), or `None` when the login is refused and the
    /// connection is to be closed (v0 has no way to say why).
    pub async fn bare_token(&mut self, token: &[u8], meta: &dyn MetadataStore) -> Option<Vec<u8>> {
        let session = self.sasl.as_mut()?;
        match session.authenticate(token, meta).await {
            Step::Answer(bytes) => {
                if let Some(user) = session.principal() {
                    info!(principal = user, "authenticated");
                }
                Some(bytes)
            }
            Step::Refused(e) => {
                info!(error = %e, "authentication refused");
                None
            }
            Step::OutOfTurn => None,
        }
    }

    fn handshake(&mut self, mechanism: &str, bare: bool) -> Response {
        let Some(session) = &mut self.sasl else {
            return Response::SaslHandshake(
                SaslHandshakeResponse::default().with_error_code(code::UNSUPPORTED_SASL_MECHANISM),
            );
        };
        let error = match session.handshake(mechanism, bare) {
            Handshake::Accepted => code::NONE,
            Handshake::Unsupported => code::UNSUPPORTED_SASL_MECHANISM,
            Handshake::OutOfTurn => code::ILLEGAL_SASL_STATE,
        };
        Response::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(error)
                .with_mechanisms(session.offered().into_iter().map(s).collect()),
        )
    }

    /// How long the login just completed lasts: until its token expires
    /// or `max_reauth` passes, whichever comes first (None: unbounded).
    fn lifetime(&self) -> Option<Duration> {
        let token = self.sasl.as_ref().and_then(Session::expires_at).map(|exp| {
            let left = (exp - now_seconds()).max(0) as u64;
            Duration::from_secs(left)
        });
        match (token, self.max_reauth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn authenticate(
        &mut self,
        r: &SaslAuthenticateRequest,
        version: i16,
        meta: &dyn MetadataStore,
    ) -> Verdict {
        let refuse = |error: i16, message: String| {
            Verdict::AnswerAndClose(Response::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(error)
                    .with_error_message(Some(s(message))),
            ))
        };
        let Some(session) = &mut self.sasl else {
            return refuse(
                code::ILLEGAL_SASL_STATE,
                "this listener does not authenticate with SASL".into(),
            );
        };
        match session.authenticate(&r.auth_bytes, meta).await {
            Step::Answer(bytes) => {
                let mut response =
                    SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
                if let Some(user) = session.principal() {
                    info!(principal = user, "authenticated");
                    // v0 cannot say a lifetime: its logins are not bounded.
                    let lifetime = self.lifetime().filter(|_| version >= 1);
                    self.session_end = lifetime.map(|l| Instant::now() + l);
                    if let Some(l) = lifetime {
                        response.session_lifetime_ms =
                            l.as_millis().clamp(1, i64::MAX as u128) as i64;
                    }
                }
                Verdict::Answer(Response::SaslAuthenticate(response))
            }
            Step::Refused(e) => {
                info!(error = %e, "authentication refused");
                refuse(code::SASL_AUTHENTICATION_FAILED, e.to_string())
            }
            Step::OutOfTurn => refuse(
                code::ILLEGAL_SASL_STATE,
                "SaslAuthenticate out of turn: a SaslHandshake comes first, once".into(),
            ),
        }
    }
}
