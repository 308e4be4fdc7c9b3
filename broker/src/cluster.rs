//! The cluster as this broker sees it (the live brokers, which broker
//! leads each topic and at which epochs) and the placement round that
//! keeps it and the log in step with the metadata store.
//!
//! Every [`ROUND`], while its lease is live, each broker asks the store to
//! give every topic a live leader and to even the load by at most one
//! move (`balance_leadership`, one transaction under a lock, so brokers
//! doing it at once decide in turn), then reads the placement back: the
//! log leads what the store names it for and lets go of the rest
//! ([`Log::follow`]), and Metadata answers from this view. A broker that
//! died is out of the placement once its lease lapses, so its topics move
//! within the lease plus one round. A broker balances only once its own
//! lease has been live for a lease period ([`Membership::settled`]): after
//! an outage of the store every lease lapsed at once, and the first broker
//! back must not move the topics of the others before they renew. The
//! group coordinator is placed the
//! same way; the broker it lands on loads the groups ([`Seat::take`]).
//! The round also loads the schema registry again when another broker
//! changed it ([`Registry::follow`]). Where the store announces changes
//! (PostgreSQL's NOTIFY), a change of the registry or of the topics made
//! on another broker is taken in at once, without waiting for the round.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use floe_storage::log::{now_ms, Log};
use floe_storage::meta::placement::GROUP_COORDINATOR;
use floe_storage::meta::{BrokerRecord, ChangeCounts, CoordinatorTerm, MetadataStore, TopicRecord};
use tracing::{info, warn};

use crate::groups::consumer::TopicCatalog;
use crate::groups::seat::Seat;
use crate::membership::Membership;
use crate::registry::Registry;

/// How often placement is balanced and read back.
pub const ROUND: Duration = Duration::from_secs(1);

/// Fair-share moves one round may make (a broker that joins takes its
/// share over a few rounds rather than in a storm of moves).
const FAIR_MOVES_PER_ROUND: usize = 1;

/// A topic as placed in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedTopic {
    /// Kafka topic id.
    pub id: uuid::Uuid,
    /// The broker leading every partition of it.
    pub leader_id: i32,
    /// Each partition's leader epoch, by index.
    pub epochs: Vec<i32>,
    /// Its explicitly set configs.
    pub configs: BTreeMap<String, String>,
}

/// One reading of the placement.
#[derive(Debug, Default)]
struct View {
    brokers: Vec<BrokerRecord>,
    topics: BTreeMap<String, PlacedTopic>,
}

/// The cluster view, refreshed by the placement round.
pub struct Cluster {
    meta: Arc<dyn MetadataStore>,
    broker_id: i32,
    view: RwLock<Arc<View>>,
    /// The broker coordinating consumer groups (-1 until placed): an
    /// atomic, as every request asks; set here only once the seat has
    /// loaded the groups.
    coordinator: AtomicI32,
    seat: Arc<Seat>,
    registry: Arc<Registry>,
}

impl Cluster {
    /// Balances placement once, makes `log` follow it, and starts the
    /// round.
    pub async fn start(
        meta: Arc<dyn MetadataStore>,
        log: Arc<Log>,
        membership: Arc<Membership>,
        seat: Arc<Seat>,
        registry: Arc<Registry>,
    ) -> anyhow::Result<Arc<Cluster>> {
        let cluster = Arc::new(Cluster {
            meta,
            broker_id: log.broker_id(),
            view: RwLock::new(Arc::new(View::default())),
            coordinator: AtomicI32::new(-1),
            seat,
            registry,
        });
        cluster.balance().await?;
        cluster.refresh(&log).await?;
        tokio::spawn(run(
            Arc::downgrade(&cluster),
            Arc::downgrade(&log),
            Arc::downgrade(&membership),
        ));
        if let Some(changes) = cluster.meta.changes() {
            tokio::spawn(take_in_changes(
                Arc::downgrade(&cluster),
                Arc::downgrade(&log),
                Arc::downgrade(&membership),
                changes,
            ));
        }
        Ok(cluster)
    }

    fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The live brokers, by id.
    pub fn brokers(&self) -> Vec<BrokerRecord> {
        self.view().brokers.clone()
    }

    /// The broker coordinating every consumer group, once placed.
    pub fn group_coordinator(&self) -> Option<i32> {
        Some(self.coordinator.load(Ordering::Relaxed)).filter(|&id| id >= 0)
    }

    /// A topic's placement, by name.
    pub fn topic(&self, name: &str) -> Option<PlacedTopic> {
        self.view().topics.get(name).cloned()
    }

    /// A topic's name and placement, by id.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<(String, PlacedTopic)> {
        self.view()
            .topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(n, t)| (n.clone(), t.clone()))
    }

    /// Every topic's name and placement, by name.
    pub fn topics(&self) -> Vec<(String, PlacedTopic)> {
        self.view()
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Gives every topic a live leader and evens the load a step.
    async fn balance(&self) -> anyhow::Result<()> {
        for m in self
            .meta
            .balance_leadership(now_ms(), FAIR_MOVES_PER_ROUND)
            .await?
        {
            info!(topic = %m.topic, from = m.from, to = m.to, "moved topic leadership");
        }
        Ok(())
    }

    /// Reads the placement back and makes `log` follow it.
    async fn refresh(&self, log: &Arc<Log>) -> anyhow::Result<()> {
        let read_at = std::time::Instant::now();
        let brokers = self.meta.live_brokers(now_ms()).await?;
        let leaders = self.meta.topic_leaders().await?;
        let records = self.meta.list_topics().await?;
        let coordinator = leaders
            .iter()
            .find(|l| l.topic == GROUP_COORDINATOR)
            .map(|l| (l.leader_id, l.epochs.first().copied().unwrap_or(0)));
        log.follow(&leaders, &records, read_at).await?;
        let mut records: BTreeMap<String, TopicRecord> =
            records.into_iter().map(|r| (r.name.clone(), r)).collect();
        let topics = leaders
            .into_iter()
            .filter_map(|l| {
                let r = records.remove(&l.topic)?;
                let id = uuid::Uuid::parse_str(&r.topic_id).ok()?;
                Some((
                    l.topic,
                    PlacedTopic {
                        id,
                        leader_id: l.leader_id,
                        epochs: l.epochs,
                        configs: r.configs,
                    },
                ))
            })
            .collect();
        let view = Arc::new(View { brokers, topics });
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view.clone();
        match coordinator {
            Some((broker_id, epoch)) if broker_id == self.broker_id => {
                let term = CoordinatorTerm { broker_id, epoch };
                self.seat.take(term, &catalog(&view.topics)).await?
            }
            _ => self.seat.leave(),
        }
        let holder = coordinator.map_or(-1, |(id, _)| id);
        self.coordinator.store(holder, Ordering::Relaxed);
        Ok(())
    }

    /// Reads the placement back now (after this broker created or deleted
    /// a topic, say), not at the next round.
    pub async fn refresh_now(&self, log: &Arc<Log>) {
        if let Err(e) = self.refresh(log).await {
            warn!(error = %e, "could not read the cluster's placement");
        }
    }
}

/// The topics' ids and partition counts, as the KIP-848 assignor needs
/// them.
pub fn catalog(topics: &BTreeMap<String, PlacedTopic>) -> TopicCatalog {
    topics
        .iter()
        .map(|(name, t)| (name.clone(), (t.id, t.epochs.len() as i32)))
        .collect()
}

/// The placement round (see the module documentation).
async fn run(cluster: Weak<Cluster>, log: Weak<Log>, membership: Weak<Membership>) {
    loop {
        tokio::time::sleep(ROUND).await;
        let (Some(cluster), Some(log), Some(membership)) =
            (cluster.upgrade(), log.upgrade(), membership.upgrade())
        else {
            return;
        };
        if !membership.is_live() {
            // It cannot know it still coordinates the groups.
            cluster.seat.leave();
            continue;
        }
        // Until every other broker had a lease period to renew since this
        // one did, their lapsed leases may be the same outage as ours.
        if membership.settled() {
            if let Err(e) = cluster.balance().await {
                warn!(error = %e, "could not balance topic leadership");
            }
        }
        if let Err(e) = cluster.refresh(&log).await {
            warn!(error = %e, "could not read the cluster's placement");
        }
        if let Err(e) = cluster.registry.follow().await {
            warn!(error = %e, "could not read the schema registry's changes");
        }
    }
}

/// Takes in the changes other brokers announce (see the module
/// documentation): the registry loaded again, the placement read back.
async fn take_in_changes(
    cluster: Weak<Cluster>,
    log: Weak<Log>,
    membership: Weak<Membership>,
    mut changes: tokio::sync::watch::Receiver<ChangeCounts>,
) {
    let mut seen = *changes.borrow_and_update();
    while changes.changed().await.is_ok() {
        let now = *changes.borrow_and_update();
        let (Some(cluster), Some(log), Some(membership)) =
            (cluster.upgrade(), log.upgrade(), membership.upgrade())
        else {
            return;
        };
        if now.registry != seen.registry {
            cluster.registry.catch_up().await;
        }
        // As in the round: a broker whose lease lapsed reads nothing back.
        if now.topics != seen.topics && membership.is_live() {
            cluster.refresh_now(&log).await;
        }
        seen = now;
    }
}
