//! The APIs this listener serves and at which versions, and `ApiVersions`, which tells
//! clients so. An API is listed only at the versions whose every field is served; what is
//! not listed is not served (a request for it closes the connection, as Kafka does).
//!
//! The lower bounds are Kafka 4.0's (KIP-896 removed older versions; the codec does not
//! decode them): every client that talks to Kafka 4 negotiates within them.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, ApiVersionsResponse, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::protocol::StrBytes;

/// The served APIs with their (min, max) versions.
pub(crate) const SERVED: &[(ApiKey, i16, i16)] = &[
    // v12 is v11 for a transactions-v2 producer (KIP-890): its partitions join its
    // transaction as it writes. v13 names topics by id: not served.
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 15),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // Kafka's consumer protocol (KIP-848); v1 lets the client make its member id and
    // subscribe by a regular expression.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932). v1 is Kafka 4.1's, the first GA version; ShareFetch and
    // ShareAcknowledge v2 (acquire modes, RENEW) are not in the codec.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    // v1 adds the lag of each partition: not in the codec.
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    // v0 runs the SASL tokens in bare frames (`sasl::bare_token`); v1 in SaslAuthenticate.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    // v2 adds a regular expression over transactional ids (KIP-1152): not served.
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    // v4+ carry many transactions and are sent by brokers only: not served.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
];

/// The features served, each (name, highest level), all finalized at that level:
/// `transaction.version` 2 (KIP-890: a client uses transactions v2), `group.version` 1
/// (KIP-848's consumer protocol) and `share.version` 1 (KIP-932's share groups), as
/// Kafka 4.2 finalizes them.
const FEATURES: &[(&str, i16)] =
    &[("transaction.version", 2), ("group.version", 1), ("share.version", 1)];
/// The epoch of the finalized features: they never change while a broker runs.
const FEATURES_EPOCH: i64 = 1;

/// The served version range of an API, if it is served.
pub(crate) fn served(key: ApiKey) -> Option<(i16, i16)> {
    SERVED.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

/// Whether `version` of `key` is served.
pub(crate) fn serves(key: ApiKey, version: i16) -> bool {
    served(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The `ApiVersions` answer: every served API with its range, and the [`FEATURES`] (v3+),
/// so a client that knows transactions v2 uses it, as against Kafka 4; `error_code` is
/// `UNSUPPORTED_VERSION` when the client asked at a version above ours (KIP-511: the
/// answer is then at version 0, which every client reads, and it picks a version from it).
pub(crate) fn answer(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SERVED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    let name = |n: &'static str| StrBytes::from_static_str(n);
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(
            FEATURES
                .iter()
                .map(|(n, level)| {
                    SupportedFeatureKey::default()
                        .with_name(name(n))
                        .with_min_version(0)
                        .with_max_version(*level)
                })
                .collect(),
        )
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(
            FEATURES
                .iter()
                .map(|(n, level)| {
                    FinalizedFeatureKey::default()
                        .with_name(name(n))
                        .with_min_version_level(*level)
                        .with_max_version_level(*level)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_ranges_are_within_what_the_codec_decodes() {
        for (key, min, max) in SERVED {
            let codec = key.valid_versions();
            assert!(codec.min <= *min && *max <= codec.max, "{key:?} {min}..={max} vs {codec:?}");
            assert!(min <= max, "{key:?}");
        }
        let mut keys: Vec<i16> = SERVED.iter().map(|(k, _, _)| *k as i16).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), SERVED.len(), "an API is listed twice");
    }

    #[test]
    fn versions_outside_the_range_are_not_served() {
        assert!(serves(ApiKey::Produce, 3));
        assert!(!serves(ApiKey::Produce, 2));
        assert!(!serves(ApiKey::Produce, 13));
        assert!(!serves(ApiKey::WriteTxnMarkers, 1));
    }
}
