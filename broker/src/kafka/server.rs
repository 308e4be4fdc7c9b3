//! The Kafka listener: one task per connection.
//!
//! Kafka processes a connection's requests one at a time, and clients rely
//! on it (an idempotent producer with five requests in flight expects them
//! appended in order). floe keeps that order for the part of a request that
//! changes state ([`crate::kafka::api::dispatch`]) and lets the rest (waiting for
//! the flush, long polls) run concurrently; responses are written in request
//! order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_protocol::frame::{encode_response, parse_frame, unsupported_response, ParsedFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::kafka::api;
use crate::kafka::authentication::{Gate, ListenerAuth, Verdict};
use crate::kafka::certificate_principal::subject_of;
use crate::kafka::connections::{Admission, ConnectionLimits, Permit, RateLimit};
use crate::kafka::principal_mapping::PrincipalMapping;
use crate::Broker;

/// Requests a connection may have in flight before its reader waits.
/// Large: librdkafka sends one produce request per partition and does not
/// wait for the answer, and every request in flight joins the same flush
/// tick. At 64, a producer writing 300 partitions waited 5 ticks per round
/// of its partitions (p99 ack 27 s on a 200 ms linger).
const MAX_IN_FLIGHT: usize = 4096;

/// Request bytes a connection may have in flight (read and not yet
/// answered) before its reader waits: what bounds a connection's memory
/// when [`MAX_IN_FLIGHT`] does not. A frame larger than this waits until
/// it is the only one.
const MAX_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// Read buffer of a connection. Small: an idle connection costs little,
/// and a large frame is read straight into its own buffer.
const READ_BUFFER: usize = 16 * 1024;

/// One Kafka listener: its name (what its clients are told addresses
/// for), how it authenticates, and its TLS.
#[derive(Clone)]
pub struct KafkaListener {
    /// The listener's name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: Arc<str>,
    /// How it authenticates connections.
    pub auth: ListenerAuth,
    /// Its TLS, for SSL and SASL_SSL.
    pub tls: Option<TlsAcceptor>,
    /// The principal of a connection nothing authenticates.
    pub unauthenticated: Arc<str>,
    /// How a client certificate's subject becomes the principal.
    pub principal_mapping: Arc<PrincipalMapping>,
}

/// Accepts connections for ever. A failed accept (out of file descriptors,
/// a connection reset before it was accepted) is logged and retried: the
/// broker keeps serving the connections it has.
pub async fn serve_kafka(
    listener: TcpListener,
    broker: Arc<Broker>,
    admission: Arc<Admission>,
    kafka: KafkaListener,
) {
    let accept_failed = RateLimit::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if accept_failed.allow() {
                    warn!(error = %e, open = admission.open(),
                        "accepting a connection failed; retrying (further failures are logged at most every 10 s)");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = admission.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let gate = Gate::new(&kafka.auth, kafka.unauthenticated.clone());
        tokio::spawn(connection(
            stream,
            peer,
            broker,
            permit,
            gate,
            kafka.clone(),
        ));
    }
}

/// A connection, closed when this broker's lease lapses: it may no longer
/// lead what it serves, and its view of the cluster may be stale, so its
/// clients are sent away as from a broker that died (a client that keeps a
/// connection asks that broker for metadata again and again). While the
/// lease is lapsed, connections are closed as soon as they open.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    permit: Permit,
    gate: Gate,
    kafka: KafkaListener,
) {
    let membership = broker.membership().clone();
    let listener = kafka.name;
    let mapping = kafka.principal_mapping;
    let talk = async move {
        let Some(acceptor) = kafka.tls else {
            let (rd, wr) = stream.into_split();
            return conversation(rd, wr, peer, broker, permit, gate, listener).await;
        };
        // The handshake must finish as a request must arrive: in time.
        let limit = permit.limits().request_arrival;
        match timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let mut gate = gate;
                let certificate = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                if let Some(subject) = certificate.and_then(|c| subject_of(c)) {
                    let Some(principal) = mapping.principal(&subject) else {
                        info!(%peer, subject, "closing a connection whose certificate no --ssl-principal-mapping-rules rule applies to");
                        return;
                    };
                    gate.certified(principal);
                }
                let (rd, wr) = tokio::io::split(tls);
                conversation(rd, wr, peer, broker, permit, gate, listener).await
            }
            Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => debug!(%peer, "TLS handshake did not finish in time"),
        }
    };
    tokio::select! {
        () = talk => {}
        () = membership.lapsed() => {
            debug!(%peer, "closing the connection: this broker's lease lapsed");
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn conversation<R, W>(
    rd: R,
    mut wr: W,
    peer: SocketAddr,
    broker: Arc<Broker>,
    permit: Permit,
    mut gate: Gate,
    listener: Arc<str>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    debug!(%peer, "connection opened");
    let limits = permit.limits().clone();
    let _gauge = broker.metrics().connection();
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Option<Bytes>>>(MAX_IN_FLIGHT);
    let mut writer = AbortOnDrop(tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Ok(Some(bytes)) => {
                    // A TLS stream takes the bytes into its session and
                    // writes what the socket accepts now; the rest goes
                    // out only on a flush (or the next write). Without one,
                    // the tail of a large response waited for the next
                    // response (which may never come: the client waits for
                    // this one) and the client timed out. On TCP a no-op.
                    let sent = async {
                        wr.write_all(&bytes).await?;
                        wr.flush().await
                    };
                    if sent.await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(%peer, error = %e, "request handler failed; closing the connection");
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
    }));
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    let in_flight_bytes = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES));
    loop {
        let mut size = [0u8; 4];
        match timeout(limits.idle, rd.read_u8()).await {
            Err(_) => {
                info!(%peer, idle_ms = limits.idle.as_millis() as u64, "closing an idle connection (--connections-max-idle-ms)");
                break;
            }
            Ok(Err(_)) => break,
            Ok(Ok(first)) => size[0] = first,
        }
        // The whole request must arrive within the limit, counted from its
        // first byte; waiting for the connection's in-flight budget is
        // ours, not the client's, and is not counted.
        let arrival = tokio::time::Instant::now() + limits.request_arrival;
        let size = match timeout_at(arrival, rd.read_exact(&mut size[1..])).await {
            Err(_) => {
                arrival_timed_out(&peer, &limits);
                break;
            }
            Ok(Err(_)) => break,
            Ok(Ok(_)) => i32::from_be_bytes(size),
        };
        if size < 0 || size as usize > broker.max_frame_bytes() {
            warn!(%peer, size, limit = broker.max_frame_bytes(), "frame size out of bounds; closing the connection");
            break;
        }
        let size = size as usize;
        let waited = tokio::time::Instant::now();
        // Held until the request is answered.
        let budget = in_flight_bytes
            .clone()
            .acquire_many_owned(size.clamp(1, MAX_IN_FLIGHT_BYTES) as u32)
            .await
            .expect("the semaphore is never closed");
        let arrival = arrival + waited.elapsed();
        let frame = timeout_at(arrival, async {
            // Memory grows with the bytes that arrive, not with the size
            // the client announced.
            let mut frame = Vec::with_capacity(size.min(1 << 20));
            (&mut rd).take(size as u64).read_to_end(&mut frame).await?;
            if frame.len() < size {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok::<_, std::io::Error>(frame)
        })
        .await;
        let frame = match frame {
            Err(_) => {
                arrival_timed_out(&peer, &limits);
                break;
            }
            Ok(Err(_)) => break,
            Ok(Ok(frame)) => Bytes::from(frame),
        };
        // After a SaslHandshake v0 the login's tokens come bare, as do the
        // answers: a size and the bytes.
        if gate.awaits_bare_token() {
            drop(budget);
            let Some(answer) = gate.bare_token(&frame, broker.meta().as_ref()).await else {
                info!(%peer, "closing a connection whose login was refused");
                break;
            };
            let mut bytes = Vec::with_capacity(4 + answer.len());
            bytes.extend_from_slice(&(answer.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&answer);
            let bytes = Some(Bytes::from(bytes));
            if tx.send(tokio::spawn(async move { bytes })).await.is_err() {
                break;
            }
            continue;
        }
        let handle = match parse_frame(frame) {
            Err(e) => {
                warn!(%peer, error = %e, "malformed request; closing the connection");
                break;
            }
            Ok(ParsedFrame::Unsupported {
                api_key,
                api_version,
                correlation_id,
            }) => {
                debug!(%peer, api_key, api_version, "unsupported API or version");
                drop(budget);
                let bytes = unsupported_response(api_key, correlation_id);
                tokio::spawn(async move { Some(bytes) })
            }
            Ok(ParsedFrame::Request { header, request }) => {
                let version = header.request_api_version;
                let correlation_id = header.correlation_id;
                let api_key = header.request_api_key;
                let admitted = gate.admit(&request, version, broker.meta().as_ref()).await;
                let (answer, close) = match admitted {
                    Verdict::Dispatch => (None, false),
                    Verdict::Answer(r) => (Some(r), false),
                    Verdict::AnswerAndClose(r) => (Some(r), true),
                    Verdict::Close => {
                        info!(%peer, api_key, "closing a connection that sent a request before authenticating");
                        break;
                    }
                };
                if let Some(response) = answer {
                    drop(budget);
                    let bytes = encode_response(correlation_id, version, &response).ok();
                    if tx.send(tokio::spawn(async move { bytes })).await.is_err() || close {
                        break;
                    }
                    continue;
                }
                let started = std::time::Instant::now();
                let pending = api::dispatch(
                    &broker,
                    &header,
                    *request,
                    peer,
                    gate.principal(),
                    &listener,
                )
                .await;
                let metrics = broker.metrics().clone();
                tokio::spawn(async move {
                    let response = pending.await;
                    drop(budget);
                    metrics.request(api_key, started.elapsed().as_secs_f64());
                    match encode_response(correlation_id, version, &response?) {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            warn!(error = %e, "could not encode a response");
                            None
                        }
                    }
                })
            }
        };
        if tx.send(handle).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = (&mut writer.0).await;
    drop(permit);
    debug!(%peer, "connection closed");
}

fn arrival_timed_out(peer: &SocketAddr, limits: &ConnectionLimits) {
    warn!(%peer, limit_ms = limits.request_arrival.as_millis() as u64,
        "a request did not arrive whole in time (--request-arrival-timeout-ms); closing the connection");
}
