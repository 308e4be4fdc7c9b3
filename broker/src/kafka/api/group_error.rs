//! A group request refused as a whole, with one error wherever the request
//! names a group: NOT_COORDINATOR from a broker that does not coordinate
//! consumer groups now (the cluster placed the group coordinator
//! elsewhere, or this broker's lease lapsed), so the client asks
//! FindCoordinator again (ListGroups lists nothing: Kafka's admin clients
//! ask every broker and merge); GROUP_AUTHORIZATION_FAILED (or
//! TOPIC_AUTHORIZATION_FAILED) where the ACLs refuse it ([`refusal`]).

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

use crate::acl::{Access, Operation, Resource};
use crate::kafka::errors::code;

/// The error the ACLs give a request about one group, if they refuse it:
/// Kafka's checks (READ on the group to join, sync, heartbeat, leave and
/// commit; DESCRIBE to fetch its offsets; DELETE to delete them; and
/// DESCRIBE on each topic a KIP-848 member subscribes to). Requests about
/// several groups are checked group by group by their handlers.
pub(super) fn refusal(request: &Request, access: &Access) -> Option<i16> {
    use Operation::*;
    let (group, op) = match request {
        Request::JoinGroup(r) => (r.group_id.as_str(), Read),
        Request::SyncGroup(r) => (r.group_id.as_str(), Read),
        Request::Heartbeat(r) => (r.group_id.as_str(), Read),
        Request::LeaveGroup(r) => (r.group_id.as_str(), Read),
        Request::OffsetCommit(r) => (r.group_id.as_str(), Read),
        Request::OffsetDelete(r) => (r.group_id.as_str(), Delete),
        Request::OffsetFetch(r) if r.groups.is_empty() => (r.group_id.as_str(), Describe),
        Request::ConsumerGroupHeartbeat(r) => (r.group_id.as_str(), Read),
        _ => return None,
    };
    if !access.allows(Resource::Group(group), op) {
        return Some(code::GROUP_AUTHORIZATION_FAILED);
    }
    if let Request::ConsumerGroupHeartbeat(r) = request {
        let topics = r.subscribed_topic_names.iter().flatten();
        let hidden = topics
            .into_iter()
            .any(|t| !access.allows(Resource::Topic(t.as_str()), Describe));
        if hidden {
            return Some(code::TOPIC_AUTHORIZATION_FAILED);
        }
    }
    None
}

/// The answer to `request` if it is a group request, with `error`
/// wherever it names a group; `None` for any other.
pub(super) fn answer(request: &Request, version: i16, error: i16) -> Option<Response> {
    Some(match request {
        Request::JoinGroup(_) => Response::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(error)
                .with_generation_id(-1),
        ),
        Request::SyncGroup(_) => {
            Response::SyncGroup(SyncGroupResponse::default().with_error_code(error))
        }
        Request::Heartbeat(_) => {
            Response::Heartbeat(HeartbeatResponse::default().with_error_code(error))
        }
        Request::LeaveGroup(_) => {
            Response::LeaveGroup(LeaveGroupResponse::default().with_error_code(error))
        }
        Request::OffsetDelete(_) => {
            Response::OffsetDelete(OffsetDeleteResponse::default().with_error_code(error))
        }
        Request::ConsumerGroupHeartbeat(_) => Response::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(error),
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
                                            .with_error_code(error)
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
                            .with_error_code(error)
                    })
                    .collect(),
            ),
        ),
        Request::OffsetFetch(_) => {
            Response::OffsetFetch(OffsetFetchResponse::default().with_error_code(error))
        }
        Request::DescribeGroups(r) => Response::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(error)
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
                            .with_error_code(error)
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
                            .with_error_code(error)
                    })
                    .collect(),
            ),
        ),
        Request::ListGroups(_) if error == code::NOT_COORDINATOR => {
            Response::ListGroups(ListGroupsResponse::default())
        }
        _ => return None,
    })
}
