//! The intake objects this broker wrote lately, kept in memory until their
//! chunks have moved into the topics' own files. Every topic's move reads
//! its chunks of every intake object written since its last move: on S3
//! that was one ranged GET per topic per object (at 100 topics and a
//! 200 ms linger, ~500 GETs a second, as much as the PUTs cost), and on any
//! store a read of bytes the broker had in hand a few seconds before. A
//! Kafka fetch of a chunk no tail cache holds any more reads from here too.
//!
//! Bounded by the intake budget ([`crate::memory::MemoryBudget::intake`]):
//! the oldest objects make room, and reads of an object no longer kept go
//! to the store as before. An object leaves when it is deleted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::memory::{Gauge, Held};
use crate::sync::lock;

/// Kept intake objects, by path, within a budget.
pub(crate) struct IntakeCache {
    gauge: Arc<Gauge>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_object: HashMap<String, (Bytes, Held)>,
    /// The same objects, oldest first.
    order: VecDeque<String>,
}

impl IntakeCache {
    pub(crate) fn new(gauge: Arc<Gauge>) -> Self {
        IntakeCache {
            gauge,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Keeps `bytes`, the whole of `object`, making room by dropping the
    /// oldest objects; not kept if it is larger than the whole budget.
    pub(crate) fn keep(&self, object: &str, bytes: Bytes) {
        if bytes.len() > self.gauge.limit() {
            return;
        }
        let mut kept = lock(&self.kept);
        let held = loop {
            if let Some(held) = self.gauge.try_hold(bytes.len()) {
                break held;
            }
            match kept.order.pop_front() {
                Some(oldest) => drop(kept.by_object.remove(&oldest)),
                None => return,
            }
        };
        kept.order.push_back(object.to_string());
        kept.by_object.insert(object.to_string(), (bytes, held));
    }

    /// The whole of `object`, if kept.
    pub(crate) fn get(&self, object: &str) -> Option<Bytes> {
        lock(&self.kept)
            .by_object
            .get(object)
            .map(|(b, _)| b.clone())
    }

    /// Bytes kept.
    pub(crate) fn bytes(&self) -> usize {
        self.gauge.used()
    }

    /// Drops `object` (deleted from the store).
    pub(crate) fn forget(&self, object: &str) {
        let mut kept = lock(&self.kept);
        if kept.by_object.remove(object).is_some() {
            kept.order.retain(|o| o != object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_objects_make_room_and_forgotten_ones_go() {
        let gauge = Gauge::new(10);
        let cache = IntakeCache::new(gauge.clone());
        cache.keep("a", Bytes::from_static(b"aaaa"));
        cache.keep("b", Bytes::from_static(b"bbbb"));
        assert_eq!(gauge.used(), 8);
        cache.keep("c", Bytes::from_static(b"cccc"));
        assert!(cache.get("a").is_none(), "the oldest made room");
        assert_eq!(cache.get("b").as_deref(), Some(&b"bbbb"[..]));
        assert_eq!(gauge.used(), 8);
        cache.forget("b");
        assert!(cache.get("b").is_none());
        assert_eq!(gauge.used(), 4);
        cache.keep("huge", Bytes::from(vec![0u8; 11]));
        assert!(cache.get("huge").is_none(), "larger than the budget");
        assert_eq!(cache.get("c").as_deref(), Some(&b"cccc"[..]));
        assert_eq!(gauge.used(), 4);
    }
}
