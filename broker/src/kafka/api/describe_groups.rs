//! DescribeGroups.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use floe_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::authorized_operations::if_asked;
use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: DescribeGroupsRequest,
    version: i16,
    access: &Access,
) -> DescribeGroupsResponse {
    let mut out = Vec::with_capacity(req.groups.len());
    let asked = version >= 3 && req.include_authorized_operations;
    for id in req.groups {
        let group = Resource::Group(&id);
        if !access.allows(group, Operation::Describe) {
            out.push(
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code::GROUP_AUTHORIZATION_FAILED),
            );
            continue;
        }
        let d = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(if_asked(asked, access, group));
        let described = match broker.groups().describe(&id) {
            Some(g) => d
                .with_group_state(s(g.state.name()))
                .with_protocol_type(s(g.protocol_type))
                .with_protocol_data(s(g.protocol_name))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            let dm = DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                dm.with_group_instance_id(m.instance_id.map(s))
                            } else {
                                dm
                            }
                        })
                        .collect(),
                ),
            // Kafka describes an unknown group as Dead with no members.
            None => {
                let has_offsets = super::has_offsets(broker, &id).await;
                let d = d.with_group_state(s(if has_offsets { "Empty" } else { "Dead" }));
                if has_offsets {
                    d.with_protocol_type(s("consumer"))
                } else {
                    d
                }
            }
        };
        out.push(described);
    }
    DescribeGroupsResponse::default().with_groups(out)
}
