//! Which live broker leads each topic: the pure decision, no IO (the store
//! applies it in one transaction, [`super::MetadataStore::balance_leadership`]).
//!
//! A topic is led whole by one broker: the topic is floe's unit of file
//! layout (one flush buffer, one Iceberg table, one compaction and
//! retention pass per topic), so its leader is also the one broker that
//! rewrites its files, and no other broker's index of them goes stale.
//! Load is counted in partitions.
//!
//! Two kinds of moves:
//! - a topic whose leader is not live goes to the least loaded live
//!   broker, always (its clients are waiting);
//! - to even the load, a topic moves from the most to the least loaded
//!   broker only when that lowers the spread, at most `max_fair_moves` per
//!   decision: a broker that joins takes its share over a few rounds, not
//!   in a storm of moves.
//!
//! The group coordinator is placed the same way ([`GROUP_COORDINATOR`]).

use std::collections::BTreeMap;

/// The placement row of the group coordinator: every consumer group is
/// coordinated by the broker that leads it, placed like a one-partition
/// topic (the broker that leads Kafka's `__consumer_offsets` partition of a
/// group coordinates it). It moves only when its broker dies: a move
/// costs every group a rebalance.
pub const GROUP_COORDINATOR: &str = "__floe_group_coordinator";

/// A topic's leadership as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLeader {
    /// Topic.
    pub topic: String,
    /// The broker leading every partition of it.
    pub leader_id: i32,
    /// Number of partitions (the load it puts on its leader).
    pub partitions: i32,
    /// Each partition's leader epoch, by index.
    pub epochs: Vec<i32>,
}

/// One change of leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderMove {
    /// Topic.
    pub topic: String,
    /// Its leader before.
    pub from: i32,
    /// Its leader after.
    pub to: i32,
}

/// The moves that give every topic a live leader and even the load (see
/// the module documentation). `live` is the ids of the live brokers; with
/// none, nothing moves.
pub fn plan_moves(live: &[i32], topics: &[TopicLeader], max_fair_moves: usize) -> Vec<LeaderMove> {
    if live.is_empty() {
        return Vec::new();
    }
    let mut load: BTreeMap<i32, i64> = live.iter().map(|&b| (b, 0)).collect();
    let mut led: BTreeMap<i32, Vec<&TopicLeader>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for t in topics {
        match load.get_mut(&t.leader_id) {
            Some(l) => {
                *l += i64::from(t.partitions);
                led.entry(t.leader_id).or_default().push(t);
            }
            None => orphans.push(t),
        }
    }
    let least = |load: &BTreeMap<i32, i64>| {
        load.iter()
            .min_by_key(|(b, l)| (**l, **b))
            .map(|(b, _)| *b)
            .unwrap_or(live[0])
    };
    let mut moves = Vec::new();
    // Largest first, so the big ones spread before the small ones fill in.
    orphans.sort_by(|a, b| b.partitions.cmp(&a.partitions).then(a.topic.cmp(&b.topic)));
    for t in orphans {
        let to = least(&load);
        *load.entry(to).or_default() += i64::from(t.partitions);
        led.entry(to).or_default().push(t);
        moves.push(LeaderMove {
            topic: t.topic.clone(),
            from: t.leader_id,
            to,
        });
    }
    for _ in 0..max_fair_moves {
        let to = least(&load);
        let Some((&from, &most)) = load.iter().max_by_key(|(b, l)| (**l, -**b)) else {
            break;
        };
        let fewest = load[&to];
        // The largest topic of the busiest broker that, moved, leaves both
        // below the busiest's load now.
        let Some(pick) = led.get(&from).and_then(|ts| {
            ts.iter()
                .filter(|t| t.topic != GROUP_COORDINATOR)
                .filter(|t| fewest + i64::from(t.partitions) < most)
                .max_by(|a, b| a.partitions.cmp(&b.partitions).then(b.topic.cmp(&a.topic)))
                .copied()
        }) else {
            break;
        };
        let p = i64::from(pick.partitions);
        *load.entry(from).or_default() -= p;
        *load.entry(to).or_default() += p;
        if let Some(ts) = led.get_mut(&from) {
            ts.retain(|t| t.topic != pick.topic);
        }
        led.entry(to).or_default().push(pick);
        match moves.iter_mut().find(|m| m.topic == pick.topic) {
            Some(m) => m.to = to,
            None => moves.push(LeaderMove {
                topic: pick.topic.clone(),
                from,
                to,
            }),
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, leader_id: i32, partitions: i32) -> TopicLeader {
        TopicLeader {
            topic: name.into(),
            leader_id,
            partitions,
            epochs: vec![0; partitions as usize],
        }
    }

    fn loads(live: &[i32], topics: &[TopicLeader], moves: &[LeaderMove]) -> Vec<i64> {
        live.iter()
            .map(|&b| {
                topics
                    .iter()
                    .filter(|t| {
                        let leader = moves
                            .iter()
                            .find(|m| m.topic == t.topic)
                            .map_or(t.leader_id, |m| m.to);
                        leader == b
                    })
                    .map(|t| i64::from(t.partitions))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn topics_of_a_dead_broker_spread_over_the_live_ones() {
        let topics: Vec<_> = (0..6).map(|i| topic(&format!("t{i}"), 0, 4)).collect();
        let moves = plan_moves(&[1, 2], &topics, 0);
        assert_eq!(moves.len(), 6);
        assert!(moves.iter().all(|m| m.from == 0 && m.to != 0));
        assert_eq!(loads(&[1, 2], &topics, &moves), vec![12, 12]);
    }

    #[test]
    fn a_broker_that_joins_takes_its_share_a_few_moves_at_a_time() {
        let mut topics: Vec<_> = (0..9).map(|i| topic(&format!("t{i}"), 0, 1)).collect();
        let live = [0, 1, 2];
        let first = plan_moves(&live, &topics, 2);
        assert_eq!(first.len(), 2, "at most the bound per decision");
        let mut rounds = 1;
        let mut moves = first;
        loop {
            for m in &moves {
                topics
                    .iter_mut()
                    .find(|t| t.topic == m.topic)
                    .unwrap()
                    .leader_id = m.to;
            }
            moves = plan_moves(&live, &topics, 2);
            if moves.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 10, "never settles");
        }
        assert_eq!(loads(&live, &topics, &[]), vec![3, 3, 3]);
    }

    #[test]
    fn a_balanced_or_unimprovable_placement_does_not_move() {
        let topics = vec![topic("big", 0, 10), topic("a", 1, 1), topic("b", 1, 1)];
        assert!(plan_moves(&[0, 1], &topics, 5).is_empty());
        let even = vec![topic("a", 0, 3), topic("b", 1, 3)];
        assert!(plan_moves(&[0, 1], &even, 5).is_empty());
        assert!(plan_moves(&[], &even, 5).is_empty(), "no live broker");
    }

    #[test]
    fn the_group_coordinator_moves_only_when_its_broker_dies() {
        let mut topics = vec![topic(GROUP_COORDINATOR, 0, 1), topic("a", 0, 1)];
        let moves = plan_moves(&[0, 1], &topics, 5);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].topic, "a");
        topics[1].leader_id = 1;
        topics.push(topic("b", 1, 1));
        assert!(plan_moves(&[0, 1], &topics, 5).is_empty());
        let moves = plan_moves(&[1], &topics, 5);
        assert_eq!(moves.len(), 1);
        assert_eq!(
            (moves[0].topic.as_str(), moves[0].to),
            (GROUP_COORDINATOR, 1)
        );
    }

    #[test]
    fn one_live_broker_takes_everything() {
        let topics = vec![topic("a", 3, 2), topic("b", 0, 1)];
        let moves = plan_moves(&[0], &topics, 1);
        assert_eq!(
            moves,
            vec![LeaderMove {
                topic: "a".into(),
                from: 3,
                to: 0
            }]
        );
    }
}
