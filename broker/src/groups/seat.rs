//! The seat of group coordination on this broker: the classic and KIP-848
//! coordinators, loaded from the metadata store again each time this
//! broker becomes the cluster's group coordinator (its placement row,
//! `GROUP_COORDINATOR`, names it at a new epoch), so a coordinator that
//! moves takes over every group as last saved: members, generations and
//! assignments; committed offsets are read from the store on each request
//! anyway. The seat's writes are made in its term ([`GroupSaver::hold`]),
//! so the store refuses them once the placement moved on.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use floe_storage::meta::CoordinatorTerm;

use super::consumer::{ConsumerGroups, TopicCatalog};
use super::saver::GroupSaver;
use super::Coordinator;

/// Both coordinators, and the placement epoch they were loaded at.
pub struct Seat {
    saver: Arc<GroupSaver>,
    initial_delay: Duration,
    classic: RwLock<Arc<Coordinator>>,
    consumer: RwLock<Arc<ConsumerGroups>>,
    /// The term the groups were last loaded in; `None` until then.
    taken_at: Mutex<Option<CoordinatorTerm>>,
}

impl Seat {
    /// An empty seat (the groups are loaded when this broker takes it),
    /// expiring KIP-848 members that stop heartbeating while it holds them.
    pub fn open(saver: Arc<GroupSaver>, initial_delay: Duration) -> Arc<Seat> {
        let seat = Arc::new(Seat {
            classic: RwLock::new(Coordinator::idle(saver.clone(), initial_delay)),
            consumer: RwLock::new(ConsumerGroups::idle(saver.clone())),
            saver,
            initial_delay,
            taken_at: Mutex::new(None),
        });
        let expiring = Arc::downgrade(&seat);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match expiring.upgrade() {
                    Some(s) => s.consumer().expire(),
                    None => return,
                }
            }
        });
        seat
    }

    /// The classic protocol's coordinator.
    pub fn classic(&self) -> Arc<Coordinator> {
        self.classic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The KIP-848 coordinator.
    pub fn consumer(&self) -> Arc<ConsumerGroups> {
        self.consumer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// This broker holds the coordinator placement in `term`: if it did
    /// not hold it in that term already, the groups are loaded again from
    /// the store (another broker coordinated them meanwhile).
    pub async fn take(&self, term: CoordinatorTerm, catalog: &TopicCatalog) -> anyhow::Result<()> {
        if *self.taken_at.lock().unwrap_or_else(|e| e.into_inner()) == Some(term) {
            return Ok(());
        }
        // Saves of this broker's earlier term land before the reload (or
        // are refused, if another broker held the seat meanwhile).
        self.saver.flush().await;
        self.saver.hold(Some(term));
        let classic = Coordinator::open(self.saver.clone(), self.initial_delay).await?;
        let consumer = ConsumerGroups::open(self.saver.clone(), catalog).await?;
        *self.classic.write().unwrap_or_else(|e| e.into_inner()) = classic;
        *self.consumer.write().unwrap_or_else(|e| e.into_inner()) = consumer;
        *self.taken_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(term);
        tracing::info!(epoch = term.epoch, "coordinating consumer groups");
        Ok(())
    }

    /// This broker no longer holds the coordinator placement (or cannot
    /// know it does: its lease lapsed): the groups it held are dropped, with
    /// their timers and any save not written yet, so that nothing of this
    /// term overwrites what the new holder saves.
    pub fn leave(&self) {
        if self
            .taken_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_none()
        {
            return;
        }
        *self.classic.write().unwrap_or_else(|e| e.into_inner()) =
            Coordinator::idle(self.saver.clone(), self.initial_delay);
        *self.consumer.write().unwrap_or_else(|e| e.into_inner()) =
            ConsumerGroups::idle(self.saver.clone());
        self.saver.hold(None);
        self.saver.discard_pending();
        tracing::info!("no longer coordinating consumer groups");
    }
}
