//! An HTTP connection's bytes: plain TCP, or TLS (`--http-tls`) whose
//! handshake runs within the connection's first reads and writes, so the
//! accept loop never waits on a slow client's handshake. A client
//! certificate's principal is noted for the requests of the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

use crate::kafka::certificate_principal::subject_of;
use crate::kafka::principal_mapping::PrincipalMapping;

/// HTTPS: the acceptor, and how a client certificate's subject becomes
/// a principal (with `--tls-client-ca`, clients may present one).
#[derive(Clone)]
pub struct HttpTls {
    /// The TLS acceptor.
    pub acceptor: TlsAcceptor,
    /// Kafka's `ssl.principal.mapping.rules`.
    pub mapping: Arc<PrincipalMapping>,
}

/// Who a connection's client certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certified {
    /// The principal its subject maps to.
    Principal(String),
    /// A subject no mapping rule applies to.
    Unmapped(String),
}

/// Filled once a TLS handshake in which the client presented a
/// certificate is done; requests arrive only after it.
pub type CertificateSlot = Arc<OnceLock<Certified>>;

/// The stream of one HTTP connection.
pub struct HttpStream {
    state: State,
    certificate: CertificateSlot,
    mapping: Option<Arc<PrincipalMapping>>,
}

enum State {
    /// No TLS.
    Plain(TcpStream),
    /// TLS, handshake under way.
    Handshaking(Box<Accept<TcpStream>>),
    /// TLS, handshake done.
    Tls(Box<TlsStream<TcpStream>>),
    /// The handshake failed.
    Failed,
}

impl HttpStream {
    /// `stream` as it comes, or through a TLS handshake with `tls`.
    pub fn new(stream: TcpStream, tls: Option<&HttpTls>) -> HttpStream {
        let (state, mapping) = match tls {
            None => (State::Plain(stream), None),
            Some(t) => (
                State::Handshaking(Box::new(t.acceptor.accept(stream))),
                Some(t.mapping.clone()),
            ),
        };
        HttpStream {
            state,
            certificate: CertificateSlot::default(),
            mapping,
        }
    }

    /// The client certificate's principal, once the handshake is done.
    pub fn certificate(&self) -> CertificateSlot {
        self.certificate.clone()
    }

    /// Ready once the handshake (if any) is done.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Handshaking(accept) = &mut self.state {
            match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(tls) => {
                    let subject = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| subject_of(c));
                    if let (Some(subject), Some(mapping)) = (subject, &self.mapping) {
                        let certified = match mapping.principal(&subject) {
                            Some(p) => Certified::Principal(p),
                            None => Certified::Unmapped(subject),
                        };
                        let _ = self.certificate.set(certified);
                    }
                    self.state = State::Tls(Box::new(tls));
                }
                Err(e) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self.state {
            State::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Runs `$op` on the stream once it is ready.
macro_rules! on_ready {
    ($self:ident, $cx:ident, |$s:ident| $op:expr) => {{
        let this = $self.get_mut();
        ready!(this.poll_ready($cx))?;
        match &mut this.state {
            State::Plain($s) => {
                let $s = Pin::new($s);
                $op
            }
            State::Tls(tls) => {
                let $s = Pin::new(tls.as_mut());
                $op
            }
            State::Handshaking(_) | State::Failed => {
                unreachable!("poll_ready leaves a finished handshake or an error")
            }
        }
    }};
}

impl AsyncRead for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_ready!(self, cx, |s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_ready!(self, cx, |s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_ready!(self, cx, |s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_ready!(self, cx, |s| s.poll_shutdown(cx))
    }
}
