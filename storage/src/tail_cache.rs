//! The newest committed batches of a partition, kept in memory as the
//! producer sent them (stamped with their offsets), so consumers at the tail
//! never touch object storage. Bounded in bytes by the partition's share of
//! the broker's tail-cache budget, which the log sets as partitions come
//! and go; oldest batches go first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// One partition's tail.
#[derive(Debug, Default)]
pub struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    capacity: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct CachedBatch {
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
}

impl TailCache {
    /// An empty cache holding at most `capacity` bytes (read at each push:
    /// the share may change).
    pub fn new(capacity: Arc<AtomicUsize>) -> Self {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    /// Adds a committed batch. Batches must arrive in offset order and be
    /// contiguous with what is cached; a gap resets the cache.
    pub fn push(&mut self, base_offset: i64, last_offset: i64, bytes: Bytes) {
        if let Some(last) = self.batches.back() {
            if last.last_offset + 1 != base_offset {
                self.clear();
            }
        }
        self.bytes += bytes.len();
        self.batches.push_back(CachedBatch {
            base_offset,
            last_offset,
            bytes,
        });
        self.trim();
    }

    /// Drops the oldest batches beyond the capacity (all of them if the
    /// newest alone is larger: the bound holds whatever the batch sizes).
    pub fn trim(&mut self) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        while self.bytes > capacity {
            let Some(b) = self.batches.pop_front() else {
                break;
            };
            self.bytes -= b.bytes.len();
        }
    }

    /// Drops the batches from the oldest through the one holding `offset`:
    /// key compaction rewrote those records, and a read of them must go to
    /// its files. What stays is still contiguous.
    pub fn forget_through(&mut self, offset: i64) {
        while self
            .batches
            .front()
            .is_some_and(|b| b.base_offset <= offset)
        {
            if let Some(b) = self.batches.pop_front() {
                self.bytes -= b.bytes.len();
            }
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Batches from the one holding `offset`, up to `max_bytes` (the first
    /// batch always, even if larger). None when `offset` is older than the
    /// cache. Returns the batches and the offset after the last one.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Option<(Vec<Bytes>, i64)> {
        let first = self.batches.front()?;
        if offset < first.base_offset {
            return None;
        }
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut size = 0;
        let mut next = offset;
        for b in self.batches.range(start..) {
            if !out.is_empty() && size + b.bytes.len() > max_bytes {
                break;
            }
            size += b.bytes.len();
            next = b.last_offset + 1;
            out.push(b.bytes.clone());
        }
        Some((out, next))
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_through_an_offset_sends_older_reads_to_the_files() {
        let mut c = TailCache::new(Arc::new(AtomicUsize::new(100)));
        c.push(0, 4, Bytes::from(vec![0; 10]));
        c.push(5, 9, Bytes::from(vec![1; 10]));
        c.push(10, 14, Bytes::from(vec![2; 10]));
        c.forget_through(7);
        assert!(c.read(9, 100).is_none());
        assert_eq!(c.read(10, 100).map(|r| r.1), Some(15));
        assert_eq!(c.size(), 10);
    }

    #[test]
    fn reads_from_the_batch_holding_the_offset() {
        let share = Arc::new(AtomicUsize::new(25));
        let mut c = TailCache::new(share.clone());
        c.push(0, 4, Bytes::from(vec![0; 10]));
        c.push(5, 9, Bytes::from(vec![1; 10]));
        assert_eq!(c.read(7, 100).unwrap().0.len(), 1);
        assert_eq!(c.read(3, 100).unwrap().1, 10);
        assert_eq!(
            c.read(3, 5).unwrap().0.len(),
            1,
            "first batch even when over max_bytes"
        );
        c.push(10, 14, Bytes::from(vec![2; 10]));
        assert!(c.read(3, 100).is_none(), "evicted");
        assert_eq!(c.size(), 20);
        c.push(20, 21, Bytes::from(vec![3; 10]));
        assert!(c.read(10, 100).is_none(), "a gap resets");
        assert!(c.read(15, 100).is_none());
        assert_eq!(c.read(20, 100).map(|r| r.0.len()), Some(1));
        // A smaller share applies at the next trim; a batch larger than the
        // share is not kept at all.
        c.push(22, 23, Bytes::from(vec![4; 10]));
        share.store(10, Ordering::Relaxed);
        c.trim();
        assert_eq!((c.size(), c.read(20, 100).is_none()), (10, true));
        c.push(24, 30, Bytes::from(vec![5; 11]));
        assert_eq!(c.size(), 0);
        assert!(c.read(24, 100).is_none());
    }
}
