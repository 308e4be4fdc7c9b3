//! Change notifications between brokers sharing a PostgreSQL store: a
//! transaction that changes the schema registry or the topics sends a
//! `NOTIFY` on [`CHANNEL`] (delivered when it commits), and every broker
//! listens on a connection of its own, so the others take the change in
//! within milliseconds rather than at their next placement round (which
//! stays, as the fallback when a notification is lost).

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tracing::warn;

/// The channel floe's notifications travel on.
pub(super) const CHANNEL: &str = "floe_changes";

/// What a notification says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Schemas, subjects, compatibility levels or grants.
    Registry,
    /// Topics: created, deleted, partitions added, configs changed.
    Topics,
    /// Access control lists.
    Acls,
}

impl Changed {
    /// The notification's payload.
    pub(super) fn payload(self) -> &'static str {
        match self {
            Changed::Registry => "registry",
            Changed::Topics => "topics",
            Changed::Acls => "acls",
        }
    }
}

/// How many changes of each kind this broker has been told of: a receiver
/// compares with what it saw last. Both move together when notifications
/// may have been missed (the listening connection was lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    /// Changes of the registry.
    pub registry: u64,
    /// Changes of the topics.
    pub topics: u64,
    /// Changes of the access control lists.
    pub acls: u64,
}

/// Listens on the database at `url` in the background; the receiver sees
/// the counts move. The task ends when every receiver is dropped.
pub(super) fn listen(url: String) -> watch::Receiver<ChangeCounts> {
    let (tx, rx) = watch::channel(ChangeCounts::default());
    tokio::spawn(async move {
        let mut listener: Option<PgListener> = None;
        loop {
            if tx.is_closed() {
                return;
            }
            let l = match &mut listener {
                Some(l) => l,
                None => match connect(&url).await {
                    Ok(l) => {
                        // Whatever was sent while nobody listened.
                        tx.send_modify(|c| {
                            c.registry += 1;
                            c.topics += 1;
                            c.acls += 1;
                        });
                        listener.insert(l)
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot listen for the other brokers' changes");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            tokio::select! {
                received = l.try_recv() => match received {
                    Ok(Some(n)) => tx.send_modify(|c| match n.payload() {
                        "registry" => c.registry += 1,
                        "topics" => c.topics += 1,
                        "acls" => c.acls += 1,
                        _ => {}
                    }),
                    // The connection was lost: connect again.
                    Ok(None) | Err(_) => listener = None,
                },
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

async fn connect(url: &str) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect(url).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}
