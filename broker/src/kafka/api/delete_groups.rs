//! DeleteGroups: groups without members, with their offsets.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use floe_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::kafka::errors::code;
use crate::Broker;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: DeleteGroupsRequest,
    access: &crate::acl::Access,
) -> DeleteGroupsResponse {
    use crate::acl::{Operation, Resource};
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        if !access.allows(Resource::Group(&id), Operation::Delete) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code::GROUP_AUTHORIZATION_FAILED),
            );
            continue;
        }
        let consumer_protocol = broker.consumer_groups().get(&id).is_some();
        if consumer_protocol && !broker.consumer_groups().remove_if_empty(&id) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code::NON_EMPTY_GROUP),
            );
            continue;
        }
        let known = consumer_protocol || super::group_known(broker, &id).await;
        let e = if known {
            broker.groups().delete(&id).await
        } else {
            code::GROUP_ID_NOT_FOUND
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(e),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
