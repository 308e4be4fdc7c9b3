//! Request framing: header parsing, typed request decoding, response encoding.
//!
//! A Kafka frame is a 4-byte big-endian size followed by that many bytes.
//! The broker reads the size, refuses frames over its limit, and hands the
//! payload here. Anything that does not parse is a [`FrameError`]: the
//! broker logs it and closes that connection only.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions::{self, SUPPORTED_APIS};

/// Kafka's default `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// The error code clients expect for an API or version the broker lacks.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Why a frame could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a request header needs.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// The header did not decode.
    #[error("malformed request header: {0}")]
    Header(String),
    /// The body did not decode at the version the header names.
    #[error("malformed {key:?} v{version} request body: {reason}")]
    Body {
        /// API of the request.
        key: ApiKey,
        /// Version of the request.
        version: i16,
        /// Decoder message.
        reason: String,
    },
    /// A response failed to encode (a broker bug, not client input).
    #[error("could not encode {key:?} v{version} response: {reason}")]
    Encode {
        /// API of the response.
        key: ApiKey,
        /// Version of the response.
        version: i16,
        /// Encoder message.
        reason: String,
    },
}

/// A frame after header parsing.
#[derive(Debug)]
pub enum ParsedFrame {
    /// An API and version floe serves.
    Request {
        /// The decoded header (client id, correlation id, ...).
        header: RequestHeader,
        /// The typed request body (boxed: request types are large).
        request: Box<Request>,
    },
    /// An API key or version floe does not serve: the caller answers with
    /// [`unsupported_response`] and keeps the connection open.
    Unsupported {
        /// Raw API key.
        api_key: i16,
        /// Raw API version.
        api_version: i16,
        /// Correlation id to echo.
        correlation_id: i32,
    },
}

macro_rules! requests {
    ($($variant:ident => $req:ty, $resp:ty;)*) => {
        /// A request floe serves, decoded.
        #[derive(Debug)]
        pub enum Request { $(#[doc = stringify!($req)] $variant($req),)* }

        /// A response to one of [`Request`]'s variants.
        #[derive(Debug)]
        pub enum Response { $(#[doc = stringify!($resp)] $variant($resp),)* }

        impl Request {
            fn decode(key: ApiKey, version: i16, body: &mut Bytes) -> Result<Self, FrameError> {
                let fail = |e: anyhow::Error| FrameError::Body { key, version, reason: format!("{e:#}") };
                match key {
                    $(ApiKey::$variant => <$req>::decode(body, version).map(Request::$variant).map_err(fail),)*
                    _ => Err(FrameError::Body { key, version, reason: "not served".into() }),
                }
            }
        }

        impl Response {
            /// The API this response answers.
            pub fn api_key(&self) -> ApiKey {
                match self { $(Response::$variant(_) => ApiKey::$variant,)* }
            }

            fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
                match self { $(Response::$variant(r) => r.encode(buf, version),)* }
            }
        }
    };
}

requests! {
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    DeleteRecords => DeleteRecordsRequest, DeleteRecordsResponse;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
    DescribeConfigs => DescribeConfigsRequest, DescribeConfigsResponse;
    AlterConfigs => AlterConfigsRequest, AlterConfigsResponse;
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse;
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse;
}

/// Parses one frame payload (without its size prefix).
pub fn parse_frame(mut frame: Bytes) -> Result<ParsedFrame, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = match ApiKey::try_from(api_key) {
        Ok(key) if versions::is_supported(key, api_version) => key,
        _ => {
            return Ok(ParsedFrame::Unsupported {
                api_key,
                api_version,
                correlation_id,
            });
        }
    };
    let header_version = key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::Header(format!("{e:#}")))?;
    let request = Box::new(Request::decode(key, api_version, &mut frame)?);
    Ok(ParsedFrame::Request { header, request })
}

/// Encodes a response with its size prefix and response header.
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> Result<Bytes, FrameError> {
    let key = response.api_key();
    let fail = |e: anyhow::Error| FrameError::Encode {
        key,
        version,
        reason: format!("{e:#}"),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, key.response_header_version(version))
        .map_err(fail)?;
    response.encode_body(&mut buf, version).map_err(fail)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The list of APIs for an ApiVersions response.
pub fn api_version_list() -> Vec<api_versions_response::ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            api_versions_response::ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

/// The answer to an API or version floe does not serve.
///
/// For ApiVersions, Kafka's rule (KIP-511): answer in v0 with
/// UNSUPPORTED_VERSION and the supported list, so the client can retry with
/// a version both sides know. For any other API the response schema of an
/// unknown version is unknowable; floe answers the correlation id followed by
/// the UNSUPPORTED_VERSION error code, which is where every response that
/// has a top-level error code keeps it.
pub fn unsupported_response(api_key: i16, correlation_id: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if api_key == ApiKey::ApiVersions as i16 {
        let resp = ApiVersionsResponse::default()
            .with_error_code(UNSUPPORTED_VERSION)
            .with_api_keys(api_version_list());
        // v0 of ApiVersionsResponse always encodes.
        let _ = resp.encode(&mut buf, 0);
    } else {
        buf.put_i16(UNSUPPORTED_VERSION);
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// Reads the size prefix of a frame, if four bytes are available.
pub fn frame_size(prefix: &[u8]) -> Option<i32> {
    let mut p = prefix;
    (p.len() >= 4).then(|| p.get_i32())
}
