//! DescribeCluster.

use std::sync::Arc;

use floe_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use floe_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};

use super::s;
use crate::acl::{Access, Operation, Resource};
use crate::kafka::authorized_operations::if_asked;
use crate::kafka::errors::code;
use crate::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    req: DescribeClusterRequest,
    version: i16,
    access: &Access,
    listener: &str,
) -> DescribeClusterResponse {
    if !access.allows(Resource::Cluster, Operation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_cluster_authorized_operations(crate::kafka::authorized_operations::NOT_ASKED);
    }
    let r = DescribeClusterResponse::default()
        .with_cluster_id(s(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.broker_id()))
        .with_cluster_authorized_operations(if_asked(
            req.include_cluster_authorized_operations,
            access,
            Resource::Cluster,
        ))
        .with_brokers(
            broker
                .addresses(listener)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id))
                        .with_host(s(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(s))
                })
                .collect(),
        );
    if version >= 1 {
        r.with_endpoint_type(req.endpoint_type)
    } else {
        r
    }
}
