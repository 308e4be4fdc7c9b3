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
    OffsetForLeaderEpoch => OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse;
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
    DescribeTopicPartitions => DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse;
    DescribeLogDirs => DescribeLogDirsRequest, DescribeLogDirsResponse;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    SyncGroup => SyncGroupRequest, SyncGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse;
    DeleteGroups => DeleteGroupsRequest, DeleteGroupsResponse;
    OffsetDelete => OffsetDeleteRequest, OffsetDeleteResponse;
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse;
    ConsumerGroupDescribe => ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse;
    SaslHandshake => SaslHandshakeRequest, SaslHandshakeResponse;
    SaslAuthenticate => SaslAuthenticateRequest, SaslAuthenticateResponse;
    DescribeUserScramCredentials => DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse;
    AlterUserScramCredentials => AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse;
    CreateAcls => CreateAclsRequest, CreateAclsResponse;
    DescribeAcls => DescribeAclsRequest, DescribeAclsResponse;
    DeleteAcls => DeleteAclsRequest, DeleteAclsResponse;
    AddPartitionsToTxn => AddPartitionsToTxnRequest, AddPartitionsToTxnResponse;
    AddOffsetsToTxn => AddOffsetsToTxnRequest, AddOffsetsToTxnResponse;
    EndTxn => EndTxnRequest, EndTxnResponse;
    TxnOffsetCommit => TxnOffsetCommitRequest, TxnOffsetCommitResponse;
    DescribeProducers => DescribeProducersRequest, DescribeProducersResponse;
    DescribeTransactions => DescribeTransactionsRequest, DescribeTransactionsResponse;
    ListTransactions => ListTransactionsRequest, ListTransactionsResponse;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// ApiVersions v3 request as librdkafka sends it: header v2 (flexible),
    /// client software name and version as compact strings.
    const API_VERSIONS_V3: &[u8] = &[
        0, 18, 0, 3, // api key 18, version 3
        0, 0, 0, 42, // correlation id
        0, 7, b'r', b'd', b'k', b'a', b'f', b'k', b'a', // client id (nullable string)
        0,    // header tagged fields
        11, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k', b'a', // compact string
        6, b'2', b'.', b'1', b'2', b'.', // compact string "2.12."
        0,    // body tagged fields
    ];

    #[test]
    fn parses_a_flexible_api_versions_request() {
        match parse_frame(Bytes::from_static(API_VERSIONS_V3)).unwrap() {
            ParsedFrame::Request { header, request } => {
                assert_eq!(header.correlation_id, 42);
                assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
                match *request {
                    Request::ApiVersions(r) => {
                        assert_eq!(r.client_software_name.as_str(), "librdkafka")
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_apis_and_versions_are_reported_not_failed() {
        let mut v = API_VERSIONS_V3.to_vec();
        v[3] = 99;
        assert!(matches!(
            parse_frame(Bytes::from(v)).unwrap(),
            ParsedFrame::Unsupported {
                api_key: 18,
                api_version: 99,
                correlation_id: 42
            }
        ));
        let unknown = [0x03, 0xE7, 0, 0, 0, 0, 0, 7, 0xFF, 0xFF];
        assert!(matches!(
            parse_frame(Bytes::copy_from_slice(&unknown)).unwrap(),
            ParsedFrame::Unsupported {
                api_key: 999,
                correlation_id: 7,
                ..
            }
        ));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(
            parse_frame(Bytes::from_static(&[0, 18, 0])),
            Err(FrameError::TooShort(3))
        ));
        // Metadata v1 declaring 5 topics and then ending.
        let truncated = [0, 3, 0, 1, 0, 0, 0, 1, 0xFF, 0xFF, 0, 0, 0, 5];
        assert!(matches!(
            parse_frame(Bytes::copy_from_slice(&truncated)),
            Err(FrameError::Body { .. })
        ));
        // Every prefix of a valid request fails cleanly, never panics.
        for cut in 0..API_VERSIONS_V3.len() {
            let _ = parse_frame(Bytes::copy_from_slice(&API_VERSIONS_V3[..cut]));
        }
    }

    #[test]
    fn responses_carry_size_and_correlation_id() {
        let resp =
            Response::ApiVersions(ApiVersionsResponse::default().with_api_keys(api_version_list()));
        let bytes = encode_response(42, 3, &resp).unwrap();
        assert_eq!(frame_size(&bytes).unwrap() as usize, bytes.len() - 4);
        assert_eq!(&bytes[4..8], &42i32.to_be_bytes());
        // ApiVersions responses keep header v0 even when flexible: byte 8 is
        // the error code, not a tagged-field count.
        assert_eq!(&bytes[8..10], &[0, 0]);
    }

    #[test]
    fn unsupported_answers_follow_kip_511() {
        let b = unsupported_response(18, 5);
        assert_eq!(&b[4..8], &5i32.to_be_bytes());
        assert_eq!(&b[8..10], &UNSUPPORTED_VERSION.to_be_bytes());
        let n = i32::from_be_bytes([b[10], b[11], b[12], b[13]]) as usize;
        assert_eq!(n, SUPPORTED_APIS.len());
        let other = unsupported_response(999, 6);
        assert_eq!(&other[..], &[0, 0, 0, 6, 0, 0, 0, 6, 0, 35]);
    }
}
