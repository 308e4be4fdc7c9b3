//! ListGroups, with the state filter of v4+.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use floe_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::s;
use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: ListGroupsRequest,
    version: i16,
    access: &crate::acl::Access,
) -> ListGroupsResponse {
    use crate::acl::{Operation, Resource};
    // As Kafka: DESCRIBE on the cluster lists every group; otherwise the
    // groups the principal may describe.
    let everything = access.sees(Resource::Cluster, Operation::Describe);
    let mut groups: Vec<(String, String, String)> = broker
        .groups()
        .describe_all()
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.state.name().to_string()))
        .collect();
    for g in broker.consumer_groups().all() {
        groups.push((g.id.clone(), "consumer".into(), g.state().to_string()));
    }
    // Groups that only have committed offsets (assign()-style consumers) are
    // Empty groups, as in Kafka.
    match broker.meta().groups_with_offsets().await {
        Ok(ids) => {
            for id in ids {
                if !groups.iter().any(|g| g.0 == id) {
                    groups.push((id, "consumer".into(), "Empty".into()));
                }
            }
        }
        Err(_) => return ListGroupsResponse::default().with_error_code(code::KAFKA_STORAGE_ERROR),
    }
    groups.retain(|(id, _, _)| everything || access.sees(Resource::Group(id), Operation::Describe));
    groups.sort();
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let listed = groups
        .into_iter()
        .filter(|(_, _, state)| filter.is_empty() || filter.contains(&state.to_lowercase()))
        .map(|(id, ptype, state)| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(ptype));
            let g = if version >= 4 {
                g.with_group_state(s(state))
            } else {
                g
            };
            if version >= 5 {
                g.with_group_type(s("classic"))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}
