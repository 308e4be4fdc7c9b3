//! One module per Kafka API. [`dispatch`] applies a request in connection
//! order and returns the future that produces its response.

use std::future::Future;
use std::pin::Pin;

use floe_protocol::frame::{Request, Response};
use floe_protocol::kafka_protocol::messages::{
    RequestHeader, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use floe_protocol::kafka_protocol::protocol::StrBytes;

use crate::kafka::errors::code;
use crate::Broker;

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod broker_configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod group_error;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leader_hints;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
mod txn_offset_commit;
mod user_scram_credentials;

/// The rest of a request, run concurrently; None means "no response"
/// (acks=0 produce).
pub type Pending = Pin<Box<dyn Future<Output = Option<Response>> + Send>>;

fn ready(r: Response) -> Pending {
    Box::pin(async move { Some(r) })
}

/// Applies `request` and returns the future of its response.
pub async fn dispatch(
    broker: &std::sync::Arc<Broker>,
    header: &RequestHeader,
    request: Request,
    peer: std::net::SocketAddr,
    principal: &str,
    listener: &str,
) -> Pending {
    let v = header.request_api_version;
    let access = broker.authorizer().access(principal, peer.ip());
    if let Some(error) = group_error::refusal(&request, &access) {
        if let Some(r) = group_error::answer(&request, v, error) {
            return ready(r);
        }
    }
    if !broker.coordinates_groups() {
        if let Some(r) = group_error::answer(&request, v, code::NOT_COORDINATOR) {
            return ready(r);
        }
    }
    let access = &access;
    match request {
        Request::FindCoordinator(r) => ready(Response::FindCoordinator(find_coordinator::handle(
            broker, r, v, access, listener,
        ))),
        Request::JoinGroup(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default().to_string();
            join_group::handle(broker, r, v, client_id, format!("/{}", peer.ip()))
        }
        Request::SyncGroup(r) => sync_group::handle(broker, r, v),
        Request::ConsumerGroupHeartbeat(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default().to_string();
            let host = format!("/{}", peer.ip());
            ready(Response::ConsumerGroupHeartbeat(
                consumer_group_heartbeat::handle(broker, r, client_id, host),
            ))
        }
        Request::ConsumerGroupDescribe(r) => ready(Response::ConsumerGroupDescribe(
            consumer_group_describe::handle(broker, r, access),
        )),
        Request::Heartbeat(r) => ready(Response::Heartbeat(heartbeat::handle(broker, r))),
        Request::LeaveGroup(r) => ready(Response::LeaveGroup(leave_group::handle(broker, r, v))),
        Request::OffsetCommit(r) => ready(Response::OffsetCommit(
            offset_commit::handle(broker, r, v, access).await,
        )),
        Request::OffsetFetch(r) => ready(Response::OffsetFetch(
            offset_fetch::handle(broker, r, v, access).await,
        )),
        Request::ListGroups(r) => ready(Response::ListGroups(
            list_groups::handle(broker, r, v, access).await,
        )),
        Request::DescribeGroups(r) => ready(Response::DescribeGroups(
            describe_groups::handle(broker, r, v, access).await,
        )),
        Request::DeleteGroups(r) => ready(Response::DeleteGroups(
            delete_groups::handle(broker, r, access).await,
        )),
        Request::OffsetDelete(r) => ready(Response::OffsetDelete(
            offset_delete::handle(broker, r, access).await,
        )),
        Request::ApiVersions(r) => ready(Response::ApiVersions(api_versions::handle(r, v))),
        Request::Metadata(r) => ready(Response::Metadata(
            metadata::handle(broker, r, v, access, listener).await,
        )),
        Request::Produce(r) => produce::handle(broker, r, v, access, listener).await,
        Request::Fetch(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default().to_string();
            let access = access.clone();
            fetch::handle(
                broker.clone(),
                r,
                v,
                client_id,
                principal.to_string(),
                access,
                listener.to_string(),
            )
        }
        Request::ListOffsets(r) => {
            let (b, access) = (broker.clone(), access.clone());
            Box::pin(async move {
                Some(Response::ListOffsets(
                    list_offsets::handle(&b, r, v, &access).await,
                ))
            })
        }
        Request::OffsetForLeaderEpoch(r) => ready(Response::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, r, access),
        )),
        Request::CreateTopics(r) => ready(Response::CreateTopics(
            create_topics::handle(broker, r, v, access).await,
        )),
        Request::DeleteTopics(r) => ready(Response::DeleteTopics(
            delete_topics::handle(broker, r, v, access).await,
        )),
        Request::CreatePartitions(r) => ready(Response::CreatePartitions(
            create_partitions::handle(broker, r, access).await,
        )),
        Request::DeleteRecords(r) => ready(Response::DeleteRecords(
            delete_records::handle(broker, r, access).await,
        )),
        Request::InitProducerId(r) => ready(Response::InitProducerId(
            init_producer_id::handle(broker, r, access).await,
        )),
        Request::DescribeConfigs(r) => ready(Response::DescribeConfigs(describe_configs::handle(
            broker, r, v, access,
        ))),
        Request::AlterConfigs(r) => ready(Response::AlterConfigs(
            alter_configs::handle(broker, r, access).await,
        )),
        Request::IncrementalAlterConfigs(r) => ready(Response::IncrementalAlterConfigs(
            incremental_alter_configs::handle(broker, r, access).await,
        )),
        Request::DescribeCluster(r) => ready(Response::DescribeCluster(describe_cluster::handle(
            broker, r, v, access, listener,
        ))),
        Request::DescribeTopicPartitions(r) => ready(Response::DescribeTopicPartitions(
            describe_topic_partitions::handle(broker, r, access),
        )),
        Request::DescribeLogDirs(r) => ready(Response::DescribeLogDirs(describe_log_dirs::handle(
            broker, r, access,
        ))),
        Request::DescribeUserScramCredentials(r) => ready(Response::DescribeUserScramCredentials(
            user_scram_credentials::describe(broker, r, access).await,
        )),
        Request::AlterUserScramCredentials(r) => ready(Response::AlterUserScramCredentials(
            user_scram_credentials::alter(broker, r, access).await,
        )),
        Request::CreateAcls(r) => {
            ready(Response::CreateAcls(acls::create(broker, r, access).await))
        }
        Request::DescribeAcls(r) => ready(Response::DescribeAcls(
            acls::describe(broker, r, access).await,
        )),
        Request::DeleteAcls(r) => {
            ready(Response::DeleteAcls(acls::delete(broker, r, access).await))
        }
        Request::AddPartitionsToTxn(r) => ready(Response::AddPartitionsToTxn(
            add_partitions_to_txn::handle(broker, r, v, access).await,
        )),
        Request::AddOffsetsToTxn(r) => ready(Response::AddOffsetsToTxn(
            add_offsets_to_txn::handle(broker, r, access).await,
        )),
        Request::EndTxn(r) => ready(Response::EndTxn(end_txn::handle(broker, r, access).await)),
        Request::TxnOffsetCommit(r) => ready(Response::TxnOffsetCommit(
            txn_offset_commit::handle(broker, r, v, access).await,
        )),
        Request::DescribeProducers(r) => ready(Response::DescribeProducers(
            describe_producers::handle(broker, r, access),
        )),
        Request::DescribeTransactions(r) => ready(Response::DescribeTransactions(
            describe_transactions::describe(broker, r, access).await,
        )),
        Request::ListTransactions(r) => ready(Response::ListTransactions(
            describe_transactions::list(broker, r, access).await,
        )),
        // The connection's gate answers these ([`crate::kafka::authentication`]).
        Request::SaslHandshake(_) => ready(Response::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(code::ILLEGAL_SASL_STATE),
        )),
        Request::SaslAuthenticate(_) => ready(Response::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_error_code(code::ILLEGAL_SASL_STATE),
        )),
    }
}

/// A protocol string from text.
pub(crate) fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// True when the group has committed offsets in the metadata store.
pub(crate) async fn has_offsets(broker: &Broker, group_id: &str) -> bool {
    broker
        .meta()
        .fetch_offsets(group_id)
        .await
        .map(|o| !o.is_empty())
        .unwrap_or(false)
}

/// True when the classic coordinator knows the group or it has offsets:
/// what DeleteGroups and OffsetDelete mean by "the group exists".
pub(crate) async fn group_known(broker: &Broker, group_id: &str) -> bool {
    broker.groups().describe(group_id).is_some() || has_offsets(broker, group_id).await
}

/// Checks a client's view of the leader epoch against ours, as Fetch and
/// ListOffsets do (KIP-320). -1 means the client does not know.
pub(crate) fn check_leader_epoch(client: i32, ours: i32) -> i16 {
    use crate::kafka::errors::code;
    if client < 0 || client == ours {
        code::NONE
    } else if client < ours {
        code::FENCED_LEADER_EPOCH
    } else {
        code::UNKNOWN_LEADER_EPOCH
    }
}
