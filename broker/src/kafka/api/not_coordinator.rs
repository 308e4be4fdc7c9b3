//! The answer of a broker that does not coordinate consumer groups now
//! (the cluster placed the group coordinator elsewhere, or this broker's
//! lease lapsed) to a group request: NOT_COORDINATOR wherever the request
//! names a group, so the client asks FindCoordinator again; ListGroups
//! lists nothing (Kafka's admin clients ask every broker and merge).

use floe_protocol::frame::{Request, Response};
use floe_protocol::kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as NewDescribed;
use floe_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use floe_protocol::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use floe_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use floe_protocol::kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use floe_protocol::kafka_protocol::messages::{
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsResponse,
    DescribeGroupsResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse,
    SyncGroupResponse,
};

use crate::kafka::errors::code;

const NOT_COORDINATOR: i16 = code::NOT_COORDINATOR;

/// The answer to `request` if it is a group request; `None` for any other.
pub(super) fn answer(request: &Request, version: i16) -> Option<Response> {
    Some(match request {
        Request::JoinGroup(_) => Response::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(NOT_COORDINATOR)
                .with_generation_id(-1),
        ),
        Request::SyncGroup(_) => {
            Response::SyncGroup(SyncGroupResponse::default().with_error_code(NOT_COORDINATOR))
        }
        Request::Heartbeat(_) => {
            Response::Heartbeat(HeartbeatResponse::default().with_error_code(NOT_COORDINATOR))
        }
        Request::LeaveGroup(_) => {
            Response::LeaveGroup(LeaveGroupResponse::default().with_error_code(NOT_COORDINATOR))
        }
        Request::OffsetDelete(_) => {
            Response::OffsetDelete(OffsetDeleteResponse::default().with_error_code(NOT_COORDINATOR))
        }
        Request::ConsumerGroupHeartbeat(_) => Response::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(NOT_COORDINATOR),
        ),
        Request::OffsetCommit(r) => Response::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(NOT_COORDINATOR)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::OffsetFetch(r) if version >= 8 => Response::OffsetFetch(
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(NOT_COORDINATOR)
                    })
                    .collect(),
            ),
        ),
        Request::OffsetFetch(_) => {
            Response::OffsetFetch(OffsetFetchResponse::default().with_error_code(NOT_COORDINATOR))
        }
        Request::DescribeGroups(r) => Response::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(NOT_COORDINATOR)
                    })
                    .collect(),
            ),
        ),
        Request::ConsumerGroupDescribe(r) => Response::ConsumerGroupDescribe(
            ConsumerGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .iter()
                    .map(|g| {
                        NewDescribed::default()
                            .with_group_id(g.clone())
                            .with_error_code(NOT_COORDINATOR)
                    })
                    .collect(),
            ),
        ),
        Request::DeleteGroups(r) => Response::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .iter()
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(NOT_COORDINATOR)
                    })
                    .collect(),
            ),
        ),
        Request::ListGroups(_) => Response::ListGroups(ListGroupsResponse::default()),
        _ => return None,
    })
}
