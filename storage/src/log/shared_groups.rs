//! Row groups that several partitions share, decoded once and kept a
//! moment. A flush's small partitions share row groups; a consumer catching
//! up on many partitions reads each of them once per partition, and every
//! read of a Parquet row group builds a reader (and a codec) per column
//! whatever the rows it wants: at 1 000 partitions that setup, not the
//! data, was the cost of catch-up. So the second read of a shared row group
//! within a few seconds decodes it whole and keeps it, and later reads
//! slice it. The first read stays a page-level read of its own rows (one
//! partition's consumer never pays for the whole group).
//!
//! Bounded by the read-ahead budget (the oldest unused groups make room);
//! groups unused for [`KEEP`] are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::sync::OnceCell;

use crate::memory::{Gauge, Held};
use crate::sync::lock;

/// How long an unused group (or the memory of one read of it) is kept.
const KEEP: Duration = Duration::from_secs(5);

/// A decoded row group, counted against the budget while kept.
pub(super) struct Decoded {
    /// All its rows.
    pub(super) batch: RecordBatch,
    _held: Held,
}

impl Decoded {
    /// `batch`, counted by `held` (from [`SharedGroups::reserve`]).
    pub(super) fn new(batch: RecordBatch, held: Held) -> Arc<Self> {
        Arc::new(Decoded { batch, _held: held })
    }
}

/// What a read of a shared row group should do.
pub(super) enum Plan {
    /// Read its own rows (the group was not read lately, or there is no
    /// room to keep it).
    ReadOwnRows,
    /// Take the rows from the whole group, decoding it first if no one
    /// has (the first reader fills the cell, with None if the budget had
    /// no room; concurrent readers wait for it).
    FromGroup(Arc<OnceCell<Option<Arc<Decoded>>>>),
}

struct Slot {
    last_used: Instant,
    reads: u32,
    cell: Option<Arc<OnceCell<Option<Arc<Decoded>>>>>,
}

/// The kept groups, by (file path, row group).
pub(super) struct SharedGroups {
    slots: Mutex<Slots>,
    gauge: Arc<Gauge>,
}

struct Slots {
    by_group: HashMap<(String, i32), Slot>,
    swept: Instant,
}

impl SharedGroups {
    pub(super) fn new(gauge: Arc<Gauge>) -> Self {
        SharedGroups {
            slots: Mutex::new(Slots {
                by_group: HashMap::new(),
                swept: Instant::now(),
            }),
            gauge,
        }
    }

    /// Records a read of row group `row_group` of `path` and says how to
    /// serve it.
    pub(super) fn plan(&self, path: &str, row_group: i32) -> Plan {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        if now.duration_since(slots.swept) >= KEEP / 5 {
            slots
                .by_group
                .retain(|_, s| now.duration_since(s.last_used) < KEEP);
            slots.swept = now;
        }
        let slot = slots
            .by_group
            .entry((path.to_string(), row_group))
            .or_insert(Slot {
                last_used: now,
                reads: 0,
                cell: None,
            });
        slot.last_used = now;
        slot.reads = slot.reads.saturating_add(1);
        match &slot.cell {
            Some(cell) => Plan::FromGroup(cell.clone()),
            None if slot.reads > 1 => {
                let cell = Arc::new(OnceCell::new());
                slot.cell = Some(cell.clone());
                Plan::FromGroup(cell)
            }
            None => Plan::ReadOwnRows,
        }
    }

    /// Reserves `bytes` for a group about to be decoded, if the budget
    /// has room, making room by dropping the groups unused longest.
    pub(super) fn reserve(&self, bytes: usize) -> Option<Held> {
        loop {
            if let Some(held) = self.gauge.try_hold(bytes) {
                return Some(held);
            }
            let mut slots = lock(&self.slots);
            let oldest = slots
                .by_group
                .iter()
                .filter(|(_, s)| s.cell.as_ref().is_some_and(|c| c.initialized()))
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                // Readers still holding it keep its memory until they are
                // done.
                Some(k) => drop(slots.by_group.remove(&k)),
                None => return None,
            }
        }
    }

    /// Forgets a group the budget had no room for (its readers read their
    /// own rows).
    pub(super) fn forget(&self, path: &str, row_group: i32) {
        lock(&self.slots)
            .by_group
            .remove(&(path.to_string(), row_group));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "o",
            Arc::new(Int64Array::from_iter_values(0..n)) as arrow_array::ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn the_second_read_of_a_group_decodes_it_and_the_budget_bounds_what_is_kept() {
        let g = Gauge::new(100);
        let groups = SharedGroups::new(g.clone());
        assert!(matches!(groups.plan("f", 0), Plan::ReadOwnRows));
        let Plan::FromGroup(cell) = groups.plan("f", 0) else {
            panic!("a second read takes the whole group")
        };
        let held = groups.reserve(60).unwrap();
        cell.set(Some(Decoded::new(batch(3), held))).ok().unwrap();
        assert_eq!(g.used(), 60);
        // Another group needs room: the one unused longest goes.
        groups.plan("f", 1);
        let Plan::FromGroup(other) = groups.plan("f", 1) else {
            panic!()
        };
        drop(cell);
        let held = groups.reserve(70).unwrap();
        other.set(Some(Decoded::new(batch(4), held))).ok().unwrap();
        assert_eq!(g.used(), 70);
        assert!(matches!(groups.plan("f", 0), Plan::ReadOwnRows));
        // More than the whole budget is never kept.
        assert!(groups.reserve(101).is_none());
    }
}
