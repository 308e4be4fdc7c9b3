//! The broker's memory, bounded as a whole: what the log holds for produce
//! buffers, tail caches, read-ahead and Parquet footers has one budget per
//! use, shared by every topic and partition, so a broker with ten thousand
//! partitions holds no more than one with eight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Broker-wide bounds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Produce buffers of every topic, from the append to the flush's
    /// commit: producers wait while they hold this much.
    pub buffers: usize,
    /// Tail caches: every partition holds an equal share.
    pub tail_cache: usize,
    /// Segment reads started for consumers' next fetch: none starts
    /// beyond this.
    pub read_ahead: usize,
    /// Parsed Parquet footers.
    pub footers: usize,
    /// Intake objects this broker wrote, kept until their chunks move
    /// (see [`crate::intake_cache`]).
    pub intake: usize,
}

impl MemoryBudget {
    /// `total` split by use: buffers 40 %, tail caches 30 %, read-ahead,
    /// footers and intake objects 10 % each.
    pub fn of_total(total: usize) -> Self {
        let (tenth, buffers) = (total / 10, total / 10 * 4);
        MemoryBudget {
            buffers,
            // What rounding left over, so the parts add up to the total.
            tail_cache: total - buffers - 3 * tenth,
            read_ahead: tenth,
            footers: tenth,
            intake: tenth,
        }
    }

    /// The bounds added up.
    pub fn total(&self) -> usize {
        self.buffers + self.tail_cache + self.read_ahead + self.footers + self.intake
    }
}

impl Default for MemoryBudget {
    /// 1 GiB.
    fn default() -> Self {
        MemoryBudget::of_total(1 << 30)
    }
}

/// What the log holds now, by use (each against its [`MemoryBudget`]
/// bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Produce buffers, from append to commit.
    pub buffers: usize,
    /// Tail caches.
    pub tail_cache: usize,
    /// Read-ahead reserved.
    pub read_ahead: usize,
    /// Parquet footers.
    pub footers: usize,
    /// Intake objects kept.
    pub intake: usize,
}

/// Bytes in use against a limit, held by [`Held`] guards.
#[derive(Debug)]
pub(crate) struct Gauge {
    used: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl Gauge {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Gauge {
            used: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the limit is reached.
    pub(crate) fn full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Completes once bytes are freed after this call (take it before
    /// checking [`Gauge::full`], so no release is missed between the two).
    pub(crate) fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }

    /// A guard holding nothing yet (see [`Held::add`]).
    pub(crate) fn hold(self: &Arc<Self>) -> Held {
        Held {
            gauge: self.clone(),
            bytes: 0,
        }
    }

    /// `bytes` more, if they fit under the limit.
    pub(crate) fn try_hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + bytes <= self.limit).then_some(used + bytes)
            })
            .ok()
            .map(|_| Held {
                gauge: self.clone(),
                bytes,
            })
    }
}

/// Bytes counted against a [`Gauge`] until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    gauge: Arc<Gauge>,
    bytes: usize,
}

impl Held {
    /// Counts `bytes` more (whatever the limit: the caller waited for room
    /// before taking them).
    pub(crate) fn add(&mut self, bytes: usize) {
        self.gauge.used.fetch_add(bytes, Ordering::SeqCst);
        self.bytes += bytes;
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.gauge.used.fetch_sub(self.bytes, Ordering::SeqCst);
            self.gauge.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_bytes_count_until_dropped_and_wake_waiters() {
        let g = Gauge::new(100);
        let mut a = g.hold();
        a.add(60);
        assert!(g.try_hold(50).is_none(), "over the limit");
        let b = g.try_hold(40).unwrap();
        assert!(g.full());
        let freed = g.freed();
        drop(b);
        freed.await;
        assert_eq!(g.used(), 60);
        a.add(70);
        assert_eq!((g.used(), a.bytes()), (130, 130));
        drop(a);
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn the_total_splits_by_use() {
        let b = MemoryBudget::of_total(1000);
        assert_eq!(
            (b.buffers, b.tail_cache, b.read_ahead, b.footers, b.intake),
            (400, 300, 100, 100, 100)
        );
        assert_eq!(b.total(), 1000);
        assert_eq!(MemoryBudget::of_total((1 << 30) + 7).total(), (1 << 30) + 7);
    }
}
