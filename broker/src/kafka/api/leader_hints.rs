//! KIP-951 leader hints: a produce or fetch refused with
//! NOT_LEADER_OR_FOLLOWER (or, for fetch, FENCED_LEADER_EPOCH) names the
//! partition's current leader and epoch, and the response carries that
//! broker's endpoint, so a client goes there at once instead of asking for
//! metadata first (librdkafka 2.4+ and Kafka 3.7+ clients use them).

use std::collections::BTreeSet;

use crate::broker::BrokerAddress;
use crate::Broker;

/// The endpoints of the leaders `hints` named, as `$endpoint` (produce and
/// fetch responses each have their own type for it, with the same fields).
macro_rules! node_endpoints {
    ($hints:expr, $endpoint:ty) => {
        $hints
            .endpoints()
            .into_iter()
            .map(|e| {
                <$endpoint>::default()
                    .with_node_id(e.node_id.into())
                    .with_host($crate::kafka::api::s(e.host))
                    .with_port(e.port)
                    .with_rack(e.rack.map($crate::kafka::api::s))
            })
            .collect()
    };
}
pub(super) use node_endpoints;

/// The leaders named in one response, for its endpoint list.
pub(super) struct LeaderHints<'a> {
    broker: &'a Broker,
    /// The listener the request came in through.
    listener: &'a str,
    named: BTreeSet<i32>,
}

impl<'a> LeaderHints<'a> {
    pub(super) fn new(broker: &'a Broker, listener: &'a str) -> Self {
        LeaderHints {
            broker,
            listener,
            named: BTreeSet::new(),
        }
    }

    /// The (leader id, leader epoch) of a partition led by another live
    /// broker, noted for [`LeaderHints::endpoints`]; `None` when there is no
    /// such leader to send the client to (this broker cannot know where
    /// the partition is led while its own lease is lapsed).
    pub(super) fn leader(&mut self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        if !self.broker.membership().is_live() {
            return None;
        }
        let placed = self.broker.placed(topic)?;
        let epoch = *placed.epochs.get(usize::try_from(partition).ok()?)?;
        let leader = placed.leader_id;
        let live = self
            .broker
            .cluster()
            .brokers()
            .iter()
            .any(|b| b.broker_id == leader);
        if leader == self.broker.broker_id() || !live {
            return None;
        }
        self.named.insert(leader);
        Some((leader, epoch))
    }

    /// The endpoints of every leader named, in id order, on the
    /// request's listener.
    pub(super) fn endpoints(&self) -> Vec<BrokerAddress> {
        self.broker
            .addresses(self.listener)
            .into_iter()
            .filter(|b| self.named.contains(&b.node_id))
            .collect()
    }
}
