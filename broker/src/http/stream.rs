//! An HTTP connection's bytes: plain TCP, or TLS (`--http-tls`) whose
//! handshake runs within the connection's first reads and writes, so the
//! accept loop never waits on a slow client's handshake.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

/// The stream of one HTTP connection.
pub enum HttpStream {
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
    pub fn new(stream: TcpStream, tls: Option<&TlsAcceptor>) -> HttpStream {
        match tls {
            None => HttpStream::Plain(stream),
            Some(acceptor) => HttpStream::Handshaking(Box::new(acceptor.accept(stream))),
        }
    }

    /// Ready once the handshake (if any) is done.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let HttpStream::Handshaking(accept) = self {
            match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(tls) => *self = HttpStream::Tls(Box::new(tls)),
                Err(e) => {
                    *self = HttpStream::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            HttpStream::Failed => Poll::Ready(Err(io::Error::new(
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
        match this {
            HttpStream::Plain($s) => {
                let $s = Pin::new($s);
                $op
            }
            HttpStream::Tls(tls) => {
                let $s = Pin::new(tls.as_mut());
                $op
            }
            HttpStream::Handshaking(_) | HttpStream::Failed => {
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
