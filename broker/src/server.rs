//! The Kafka listener: one task per connection.
//!
//! Kafka processes a connection's requests one at a time, and clients rely
//! on it (an idempotent producer with five requests in flight expects them
//! appended in order). floe keeps that order for the part of a request that
//! changes state ([`crate::api::dispatch`]) and lets the rest (waiting for
//! the flush, long polls) run concurrently; responses are written in request
//! order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use floe_protocol::frame::{encode_response, parse_frame, unsupported_response, ParsedFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::api;
use crate::Broker;

/// Requests a connection may have in flight before its reader waits.
const MAX_IN_FLIGHT: usize = 64;

/// Accepts connections until the listener fails.
pub async fn serve_kafka(listener: TcpListener, broker: Arc<Broker>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        tokio::spawn(async move {
            connection(stream, peer, broker).await;
        });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    debug!(%peer, "connection opened");
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Option<Bytes>>>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Ok(Some(bytes)) => {
                    if wr.write_all(&bytes).await.is_err() {
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
    });
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    loop {
        let mut size = [0u8; 4];
        if rd.read_exact(&mut size).await.is_err() {
            break;
        }
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > broker.max_frame_bytes {
            warn!(%peer, size, limit = broker.max_frame_bytes, "frame size out of bounds; closing the connection");
            break;
        }
        let mut frame = BytesMut::zeroed(size as usize);
        if rd.read_exact(&mut frame).await.is_err() {
            break;
        }
        let handle = match parse_frame(frame.freeze()) {
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
                let bytes = unsupported_response(api_key, correlation_id);
                tokio::spawn(async move { Some(bytes) })
            }
            Ok(ParsedFrame::Request { header, request }) => {
                let version = header.request_api_version;
                let correlation_id = header.correlation_id;
                let pending = api::dispatch(&broker, &header, *request, peer).await;
                tokio::spawn(async move {
                    let response = pending.await?;
                    match encode_response(correlation_id, version, &response) {
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
    let _ = writer.await;
    debug!(%peer, "connection closed");
}
