//! ApiVersions: what floe serves.

use floe_protocol::frame::api_version_list;
use floe_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

pub(super) fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(api_version_list())
        .with_finalized_features_epoch(-1)
}
