//! Parsed Parquet footers of the files the log reads, bounded in bytes
//! (see [`crate::memory::MemoryBudget::footers`]): a footer of a file with
//! a thousand row groups weighs about a megabyte, so a count bound says
//! nothing about memory. The oldest entries go first.

use std::collections::{HashMap, VecDeque};

use parquet::arrow::arrow_reader::ArrowReaderMetadata;

/// Footers by file path.
pub(super) struct FooterCache {
    entries: HashMap<String, (ArrowReaderMetadata, usize)>,
    /// Paths in the order they were inserted (some may be gone).
    order: VecDeque<String>,
    bytes: usize,
    capacity: usize,
}

impl FooterCache {
    pub(super) fn new(capacity: usize) -> Self {
        FooterCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<ArrowReaderMetadata> {
        self.entries.get(path).map(|(m, _)| m.clone())
    }

    /// Keeps `meta` for `path`, dropping the oldest footers beyond the
    /// capacity (a footer larger than the capacity is not kept).
    pub(super) fn insert(&mut self, path: String, meta: ArrowReaderMetadata) {
        let size = meta.metadata().memory_size() + path.len();
        self.remove(&path);
        if size > self.capacity {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        self.bytes += size;
        self.order.push_back(path.clone());
        self.entries.insert(path, (meta, size));
        // Paths removed out of order stay in `order` until they come up:
        // keep that list from outgrowing the entries.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|p| entries.contains_key(p));
        }
    }

    pub(super) fn remove(&mut self, path: &str) {
        if let Some((_, size)) = self.entries.remove(path) {
            self.bytes -= size;
        }
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self.entries.keys().filter(|p| !keep(p)).cloned().collect();
        for p in gone {
            self.remove(&p);
        }
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}
