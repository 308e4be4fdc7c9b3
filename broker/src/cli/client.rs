//! A small Kafka client for the CLI: one connection per broker, requests
//! one at a time, each at the highest version both sides speak (from the
//! broker's ApiVersions). PLAINTEXT only, for now.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a connection or a response may take.
const WAIT: Duration = Duration::from_secs(30);

/// The largest response taken.
const MAX_RESPONSE: usize = 256 << 20;

/// One connection to one broker.
pub struct Connection {
    stream: TcpStream,
    correlation: i32,
    /// The broker's highest version of each API.
    versions: HashMap<i16, i16>,
    address: String,
    client_id: StrBytes,
}

impl Connection {
    /// Connects to `address` (host:port) and asks which versions it speaks.
    pub async fn open(address: &str) -> anyhow::Result<Connection> {
        let stream = timeout(WAIT, TcpStream::connect(address))
            .await
            .with_context(|| format!("connecting to {address}: timed out"))?
            .with_context(|| {
                format!("connecting to {address} (is a broker running there? --brokers)")
            })?;
        stream.set_nodelay(true)?;
        let mut c = Connection {
            stream,
            correlation: 0,
            versions: HashMap::new(),
            address: address.to_string(),
            client_id: StrBytes::from_static_str("floe-cli"),
        };
        let answer = c.send(ApiVersionsRequest::default(), 0).await?;
        if answer.error_code != 0 {
            bail!(
                "{address} refused ApiVersions (error {})",
                answer.error_code
            );
        }
        c.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.max_version))
            .collect();
        Ok(c)
    }

    /// Sends `client_id` from now on (a purpose rides on it:
    /// `floe-cli;purpose=billing`).
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        self.client_id = StrBytes::from_string(client_id.to_string());
        self
    }

    /// The broker this connection reaches.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The version [`Connection::call`] would send `R` at, up to
    /// `at_most` (None when the broker does not serve it), for requests
    /// whose fields differ by version.
    pub fn version<R: Request>(&self, at_most: i16) -> Option<i16> {
        let theirs = *self.versions.get(&R::KEY)?;
        Some(theirs.min(R::VERSIONS.max).min(at_most)).filter(|v| *v >= R::VERSIONS.min)
    }

    /// Sends `request` at the highest version both sides speak, up to
    /// `at_most`.
    pub async fn call<R: Request>(
        &mut self,
        request: R,
        at_most: i16,
    ) -> anyhow::Result<R::Response> {
        let theirs = *self.versions.get(&R::KEY).with_context(|| {
            format!(
                "{} does not serve {:?}",
                self.address,
                ApiKey::try_from(R::KEY)
            )
        })?;
        let version = theirs.min(R::VERSIONS.max).min(at_most);
        if version < R::VERSIONS.min {
            bail!(
                "{} serves {:?} only up to v{theirs}",
                self.address,
                ApiKey::try_from(R::KEY)
            );
        }
        self.send(request, version).await
    }

    async fn send<R: Request>(&mut self, request: R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        request.encode(&mut buf, version)?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let address = self.address.clone();
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let size = self.stream.read_i32().await?;
            if size < 0 || size as usize > MAX_RESPONSE {
                bail!("{address} sent a response of {size} bytes");
            }
            let mut body = vec![0u8; size as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        };
        let mut body = timeout(WAIT, exchange)
            .await
            .with_context(|| format!("{address} did not answer within {WAIT:?}"))??;
        let answer = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if answer.correlation_id != self.correlation {
            bail!("{address} answered out of order");
        }
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            tracing::debug!(left = body.remaining(), "bytes after a response");
        }
        Ok(response)
    }
}
