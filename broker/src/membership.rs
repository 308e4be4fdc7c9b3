//! This broker's membership of the cluster: its id registered in the
//! metadata store by this run of the process (an incarnation), under a
//! lease it keeps renewing.
//!
//! At start a broker registers a new incarnation of its id. Another
//! incarnation holding the id with a live lease is waited for, because it
//! is usually a previous run that died: if its lease lapses, the id is
//! taken; if its lease is renewed meanwhile, it is running, and this
//! broker stops with a message naming it. A holder that advertises the
//! very listener this process has just bound cannot be running (the port
//! is ours), so it is taken over at once: a broker restarted after
//! `kill -9` is back without waiting for its old lease.
//!
//! A broker that cannot renew within its lease (the metadata store is
//! unreachable) or finds its id taken stops serving at once:
//! [`Membership::is_live`] turns false and produce and fetch answer
//! NOT_LEADER_OR_FOLLOWER, so clients go elsewhere, until a renewal
//! succeeds. It cannot know whether it still leads; commits it attempts
//! meanwhile are refused by the leader-epoch check anyway.
//!
//! The live brokers are the cluster: topic leadership is placed among
//! them (`cluster.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use floe_storage::log::now_ms;
use floe_storage::meta::{BrokerRecord, ListenerAddress, MetadataStore};
use tracing::{error, info, warn};

/// This broker's registration and whether its lease is live.
pub struct Membership {
    meta: Arc<dyn MetadataStore>,
    record: BrokerRecord,
    lease: Duration,
    /// When the process started counting (for `live_until`).
    epoch: Instant,
    /// Nanoseconds after `epoch` until which the lease is surely live: the
    /// moment the last successful renewal was *sent*, plus the lease.
    live_until: AtomicU64,
    /// Nanoseconds after `epoch` when the lease last became live (at
    /// registration, or renewed after it had lapsed).
    live_since: AtomicU64,
    /// The id was taken by another incarnation: never live again.
    lost: AtomicBool,
}

impl Membership {
    /// Registers this broker (see the module documentation) and starts
    /// renewing its lease.
    pub async fn join(
        meta: Arc<dyn MetadataStore>,
        broker_id: i32,
        advertised: &[ListenerAddress],
        rack: Option<String>,
        lease: Duration,
    ) -> anyhow::Result<Arc<Membership>> {
        let lease_ms = lease.as_millis() as i64;
        let mut record = BrokerRecord {
            broker_id,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            host: advertised[0].host.clone(),
            port: advertised[0].port,
            rack,
            lease_expires_ms: 0,
            listeners: advertised.to_vec(),
        };
        let mut replacing: Option<String> = None;
        let mut waited_for: Option<BrokerRecord> = None;
        let epoch = Instant::now();
        // When the registration that succeeded was sent: its lease counts
        // from then, not from the start of the wait for an old holder.
        let mut sent;
        loop {
            sent = epoch.elapsed();
            let now = now_ms();
            record.lease_expires_ms = now + lease_ms;
            let Some(holder) = meta
                .register_broker(&record, replacing.as_deref(), now)
                .await?
            else {
                break;
            };
            if holder.host == record.host && holder.port == record.port {
                info!(
                    broker_id,
                    "taking over this broker id from a previous run at the same listener"
                );
                replacing = Some(holder.incarnation);
                continue;
            }
            if let Some(before) = &waited_for {
                if before.incarnation == holder.incarnation
                    && holder.lease_expires_ms > before.lease_expires_ms
                {
                    bail!(
                        "broker id {broker_id} is in use by a running broker at {}:{} (its lease \
                         keeps being renewed): give this broker another --broker-id",
                        holder.host,
                        holder.port
                    );
                }
            } else {
                warn!(broker_id, holder = %format!("{}:{}", holder.host, holder.port),
                    lapses_in_ms = holder.lease_expires_ms - now,
                    "this broker id is held by another run's lease; waiting for it to lapse");
            }
            let wait = (holder.lease_expires_ms - now + 50).clamp(50, lease_ms.max(50));
            waited_for = Some(holder);
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let membership = Arc::new(Membership {
            meta: meta.clone(),
            record,
            lease,
            epoch,
            live_until: AtomicU64::new((sent + lease).as_nanos() as u64),
            live_since: AtomicU64::new(sent.as_nanos() as u64),
            lost: AtomicBool::new(false),
        });
        tokio::spawn(renew(Arc::downgrade(&membership)));
        Ok(membership)
    }

    /// Whether this broker may serve: its lease is surely live.
    pub fn is_live(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
            && (self.epoch.elapsed().as_nanos() as u64) < self.live_until.load(Ordering::Relaxed)
    }

    /// Whether the lease has been live for a whole lease period: long
    /// enough for every other live broker to have renewed since. After an
    /// outage of the metadata store every lease lapsed together; a broker
    /// that has just renewed its own must not take the other brokers for
    /// dead before they had their chance (`cluster.rs` balances only then).
    pub fn settled(&self) -> bool {
        let since = Duration::from_nanos(self.live_since.load(Ordering::Relaxed));
        self.is_live() && self.epoch.elapsed().saturating_sub(since) >= self.lease
    }

    /// Resolves once the lease has lapsed (or the id was lost); renewals
    /// meanwhile push it back.
    pub async fn lapsed(&self) {
        loop {
            let left = self.time_left();
            if left.is_zero() || self.lost.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(left).await;
        }
    }

    /// How long the lease is surely live from now.
    fn time_left(&self) -> Duration {
        Duration::from_nanos(self.live_until.load(Ordering::Relaxed))
            .saturating_sub(self.epoch.elapsed())
    }

    /// Ends the registration (a clean stop), so that the next run of this
    /// id, wherever it starts, need not wait for the lease.
    pub async fn leave(&self) {
        self.lost.store(true, Ordering::Relaxed);
        if let Err(e) = self
            .meta
            .unregister_broker(self.record.broker_id, &self.record.incarnation)
            .await
        {
            warn!(error = %e, "could not end this broker's registration; its lease will lapse");
        }
    }

    /// One renewal; the lease counts from before the request was sent.
    async fn renew_once(&self) {
        let sent = self.epoch.elapsed();
        let expires = now_ms() + self.lease.as_millis() as i64;
        let r = &self.record;
        match self
            .meta
            .renew_broker_lease(r.broker_id, &r.incarnation, expires)
            .await
        {
            Ok(true) => {
                if !self.is_live() && !self.lost.load(Ordering::Relaxed) {
                    info!("the broker lease is renewed again: serving");
                    self.live_since
                        .store(sent.as_nanos() as u64, Ordering::Relaxed);
                }
                self.live_until
                    .store((sent + self.lease).as_nanos() as u64, Ordering::Relaxed);
            }
            Ok(false) => {
                // The row is gone or another incarnation's: take it again
                // if no one holds it.
                let mut record = r.clone();
                record.lease_expires_ms = expires;
                match self.meta.register_broker(&record, None, now_ms()).await {
                    Ok(None) => {
                        if !self.is_live() {
                            self.live_since
                                .store(sent.as_nanos() as u64, Ordering::Relaxed);
                        }
                        self.live_until
                            .store((sent + self.lease).as_nanos() as u64, Ordering::Relaxed);
                    }
                    Ok(Some(holder)) => {
                        self.lost.store(true, Ordering::Relaxed);
                        error!(broker_id = r.broker_id, holder = %format!("{}:{}", holder.host, holder.port),
                            "another broker took this broker id while our lease had lapsed: this broker no longer serves; stop it");
                    }
                    Err(e) => warn!(error = %e, "could not register the broker again"),
                }
            }
            Err(e) => match self.is_live() {
                true => {
                    warn!(error = %e, "could not renew the broker lease; serving until it lapses")
                }
                false => warn!(error = %e, "could not renew the broker lease; not serving"),
            },
        }
    }
}

/// Renews the lease three times per lease period while the broker runs,
/// saying so when it lapses (a renewal can hang on the metadata store for
/// longer than the lease).
async fn renew(membership: std::sync::Weak<Membership>) {
    loop {
        let Some(m) = membership.upgrade() else {
            return;
        };
        if m.lost.load(Ordering::Relaxed) {
            return;
        }
        let period = m.lease / 3;
        {
            let renewal = m.renew_once();
            tokio::pin!(renewal);
            let live = m.is_live();
            tokio::select! {
                _ = &mut renewal => {}
                _ = tokio::time::sleep(m.time_left()), if live => {
                    error!("the broker lease lapsed (the metadata store did not answer): not serving until it is renewed");
                    renewal.await;
                }
            }
        }
        drop(m);
        tokio::time::sleep(period).await;
    }
}
