//! The API versions floe serves.
//!
//! Each range is the intersection of what `kafka-protocol` can encode and what
//! floe's handlers implement. Clients pick the highest version both sides
//! support, so the maxima here decide which wire formats we see in practice.

use kafka_protocol::messages::ApiKey;

/// One advertised API: key and inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    /// The API key.
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> SupportedApi {
    SupportedApi { key, min, max }
}

/// Every API floe answers, in ApiVersions order.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    // Produce v12+ belongs to transactions v2 (KIP-890) and v13 addresses
    // topics by id only; both arrive with the transactions issue.
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 16),
    api(ApiKey::ListOffsets, 1, 8),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    // v10 of both addresses topics by id.
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    // After v0 the SASL tokens come bare (outside Kafka's framing); after
    // v1 in SaslAuthenticate. librdkafka takes a broker without v0 for
    // one without SASL at all.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    // v1 adds prefixed patterns (KIP-290); Kafka 4 dropped v0, and so
    // does kafka-protocol, so clients that still send it get
    // UNSUPPORTED_VERSION like they would from Kafka 4.
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // Transactions v1 (KIP-98). The versions that belong to transactions
    // v2 (KIP-890: EndTxn v5, AddOffsetsToTxn v4, TxnOffsetCommit v5)
    // are not served, and ApiVersions names no `transaction.version`
    // feature, so Kafka 4 clients use v1.
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 4),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
];

/// The served range for `key`, if floe serves it at all.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// True when floe serves `key` at `version`.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|a| (a.min..=a.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn advertised_ranges_are_encodable_by_kafka_protocol() {
        for a in SUPPORTED_APIS {
            let valid = a.key.valid_versions();
            assert!(a.min <= a.max, "{:?}", a.key);
            assert!(
                valid.min <= a.min && a.max <= valid.max,
                "{:?} {:?}",
                a.key,
                valid
            );
        }
        assert_eq!(
            kafka_protocol::messages::ApiVersionsRequest::VERSIONS.max,
            supported(ApiKey::ApiVersions).unwrap().max
        );
    }

    #[test]
    fn negotiation_edges() {
        assert!(is_supported(ApiKey::Produce, 3));
        assert!(is_supported(ApiKey::Produce, 11));
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(!is_supported(ApiKey::Produce, 12));
        assert!(is_supported(ApiKey::SaslHandshake, 0));
        assert!(!is_supported(ApiKey::SaslHandshake, 2));
    }
}
