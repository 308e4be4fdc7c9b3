//! Limits on the Kafka listener's connections: how many are admitted in
//! total and per client address, how long one may sit idle, and how long a
//! request may take to arrive once its size is known.
//!
//! A connection over a limit is closed as soon as it is accepted, with a
//! log line (at most one per limit every ten seconds, so a flood does not
//! flood the log too); connections already admitted are not affected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::groups::lock;

/// The limits, from the command line.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections admitted at once (Kafka's `max.connections`).
    pub max_total: usize,
    /// Connections admitted at once from one address (Kafka's
    /// `max.connections.per.ip`).
    pub max_per_address: usize,
    /// A connection that sends nothing for this long is closed (Kafka's
    /// `connections.max.idle.ms`).
    pub idle: Duration,
    /// A request must arrive whole within this long of its first bytes.
    pub request_arrival: Duration,
}

/// Counts admitted connections; a [`Permit`] stands for one.
pub struct Admission {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    warned_total: RateLimit,
    warned_address: RateLimit,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// An admitted connection; dropping it frees its place.
pub struct Permit {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            counts: Mutex::new(Counts::default()),
            warned_total: RateLimit::default(),
            warned_address: RateLimit::default(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// A place for a connection from `address`, or `None` (logged) when a
    /// limit is reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Permit> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.limits.max_total {
            drop(counts);
            if self.warned_total.allow() {
                warn!(%address, limit = self.limits.max_total,
                    "connection refused: the broker holds --max-connections connections (further refusals are logged at most every 10 s)");
            }
            return None;
        }
        let from_address = counts.by_address.entry(address).or_default();
        if *from_address >= self.limits.max_per_address {
            drop(counts);
            if self.warned_address.allow() {
                warn!(%address, limit = self.limits.max_per_address,
                    "connection refused: this address holds --max-connections-per-address connections (further refusals are logged at most every 10 s)");
            }
            return None;
        }
        *from_address += 1;
        counts.total += 1;
        Some(Permit {
            admission: self.clone(),
            address,
        })
    }

    /// Connections admitted now.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Permit {
    /// The limits the connection lives under.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.admission.limits
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.admission.counts);
        counts.total -= 1;
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

/// Lets one event through every ten seconds.
#[derive(Default)]
pub struct RateLimit {
    last_ms: AtomicU64,
}

impl RateLimit {
    const EVERY: Duration = Duration::from_secs(10);

    /// True at most once every ten seconds.
    pub fn allow(&self) -> bool {
        let now = epoch().elapsed().as_millis() as u64 + Self::EVERY.as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        now >= last + Self::EVERY.as_millis() as u64
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Raises the process's open-file limit to its hard limit (each connection
/// is a file descriptor) and answers the soft limit now in force.
pub fn raise_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write/read the struct we pass and
    // nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_total: total,
            max_per_address: per,
            idle: Duration::from_secs(1),
            request_arrival: Duration::from_secs(1),
        }
    }

    #[test]
    fn permits_count_total_and_per_address() {
        let a = Admission::new(limits(3, 2));
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = a.admit(one).unwrap();
        let p2 = a.admit(one).unwrap();
        assert!(a.admit(one).is_none(), "per address");
        let p3 = a.admit(two).unwrap();
        assert!(a.admit(two).is_none(), "total");
        drop(p1);
        assert!(a.admit(two).is_some(), "a freed place is reused");
        drop((p2, p3));
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn rate_limit_lets_the_first_through() {
        let r = RateLimit::default();
        assert!(r.allow());
        assert!(!r.allow());
    }
}
