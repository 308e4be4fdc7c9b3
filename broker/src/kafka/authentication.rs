//! A connection's authentication. On a PLAINTEXT listener every
//! connection is the `anonymous` principal; on an SSL listener that
//! requires client certificates, the certificate's subject. On a SASL listener nothing but
//! ApiVersions, SaslHandshake and SaslAuthenticate passes until the client
//! has authenticated (Kafka closes a connection that sends anything else
//! first, and so does floe); the principal is then the user's name.

use std::sync::Arc;

use floe_protocol::frame::{Request, Response};
use floe_protocol::kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use floe_storage::meta::MetadataStore;
use tracing::info;

use crate::kafka::api::s;
use crate::kafka::errors::code;
use crate::registry::ANONYMOUS;
use crate::sasl::{Handshake, SaslMechanism, Session, Step};

/// How a listener authenticates its connections.
#[derive(Debug, Clone)]
pub enum ListenerAuth {
    /// Not at all: every connection is `anonymous`.
    None,
    /// With SASL, offering these mechanisms.
    Sasl(Arc<[SaslMechanism]>),
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
    /// The subject of the client's certificate (mTLS).
    certificate: Option<String>,
}

impl Gate {
    /// The gate of a connection to a listener that authenticates as `auth`.
    pub fn new(auth: &ListenerAuth) -> Gate {
        Gate {
            sasl: match auth {
                ListenerAuth::None => None,
                ListenerAuth::Sasl(offered) => Some(Session::new(offered.clone())),
            },
            certificate: None,
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
            None => self.certificate.as_deref().unwrap_or(ANONYMOUS),
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
            Request::SaslAuthenticate(r) => self.authenticate(r, meta).await,
            Request::ApiVersions(_) => Verdict::Dispatch,
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

    async fn authenticate(
        &mut self,
        r: &SaslAuthenticateRequest,
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
                if let Some(user) = session.principal() {
                    info!(principal = user, "authenticated");
                }
                Verdict::Answer(Response::SaslAuthenticate(
                    SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                ))
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
