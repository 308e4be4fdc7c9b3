//! ConsumerGroupDescribe (KIP-848).

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use floe_protocol::kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::s;
use crate::groups::consumer::TopicAssignment;
use crate::kafka::errors::code;
use crate::Broker;

fn assignment(broker: &Broker, a: &TopicAssignment) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                let name = broker
                    .log()
                    .topic_by_id(*id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(s(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: ConsumerGroupDescribeRequest,
    access: &crate::acl::Access,
) -> ConsumerGroupDescribeResponse {
    use crate::acl::{Operation, Resource};
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default().with_group_id(id.clone());
            if !access.allows(Resource::Group(&id), Operation::Describe) {
                return d.with_error_code(code::GROUP_AUTHORIZATION_FAILED);
            }
            let Some(g) = broker.consumer_groups().get(&id) else {
                return d
                    .with_error_code(code::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(s(format!(
                        "group {} is not a consumer-protocol group",
                        id.as_str()
                    ))));
            };
            let members = g
                .members
                .values()
                .map(|m| {
                    Member::default()
                        .with_member_id(s(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(s))
                        .with_rack_id(m.rack_id.clone().map(s))
                        .with_member_epoch(m.epoch)
                        .with_client_id(s(m.client_id.clone()))
                        .with_client_host(s(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed
                                .iter()
                                .map(|t| TopicName(s(t.clone())))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(m.regex.clone().map(s))
                        .with_assignment(assignment(broker, &m.assigned))
                        .with_target_assignment(assignment(
                            broker,
                            &g.target.get(&m.id).cloned().unwrap_or_default(),
                        ))
                })
                .collect();
            d.with_group_state(s(g.state()))
                .with_group_epoch(g.epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(s(g.assignor.clone()))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
