//! The HTTP API's listener: connections are admitted under a limit (the
//! same [`Admission`] as the Kafka listener's), and a connection on which
//! no byte moves for the idle time is closed, so stalled or slow clients
//! cannot hold the API's places for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{sleep, Instant, Sleep};
use tracing::warn;

use super::stream::{CertificateSlot, Certified, HttpStream, HttpTls};
use crate::kafka::connections::{Admission, Permit, RateLimit};

/// A listener admitting connections under limits.
pub struct LimitedListener {
    inner: TcpListener,
    admission: Arc<Admission>,
    accept_failed: RateLimit,
    /// HTTPS, with `--http-tls`.
    tls: Option<HttpTls>,
}

impl LimitedListener {
    /// Wraps `inner`; its connections speak TLS with `tls`.
    pub fn new(
        inner: TcpListener,
        admission: Arc<Admission>,
        tls: Option<HttpTls>,
    ) -> LimitedListener {
        LimitedListener {
            inner,
            admission,
            accept_failed: RateLimit::default(),
            tls,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = IdleClosing;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleClosing, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    if let Some(permit) = self.admission.admit(peer.ip()) {
                        let idle = self.admission.limits().idle;
                        let stream = HttpStream::new(stream, self.tls.as_ref());
                        return (IdleClosing::new(stream, permit, idle), peer);
                    }
                }
                Err(e) => {
                    if self.accept_failed.allow() {
                        warn!(error = %e, "accepting an HTTP connection failed; retrying (further failures are logged at most every 10 s)");
                    }
                    sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The client's address and certificate, as handlers and middleware see
/// them (`ConnectInfo<Peer>`).
#[derive(Debug, Clone)]
pub struct Peer {
    addr: SocketAddr,
    certificate: CertificateSlot,
}

impl Peer {
    /// The client's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Who the client's certificate says it is, if it presented one.
    pub fn certified(&self) -> Option<&Certified> {
        self.certificate.get()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Peer {
        Peer {
            addr: *stream.remote_addr(),
            certificate: stream.io().stream.certificate(),
        }
    }
}

/// A connection that fails its reads and writes once no byte has moved for
/// the idle time; it holds its admission place until dropped.
pub struct IdleClosing {
    stream: HttpStream,
    _permit: Permit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleClosing {
    fn new(stream: HttpStream, permit: Permit, idle: Duration) -> IdleClosing {
        IdleClosing {
            stream,
            _permit: permit,
            idle,
            deadline: Box::pin(sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// A write's outcome: bytes written move the deadline; a write that
    /// waits fails once the deadline passed.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }

    /// Ready with an error once the deadline passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no byte moved within --http-idle-timeout-ms",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleClosing {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }
}

impl AsyncWrite for IdleClosing {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
