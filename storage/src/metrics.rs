//! Counters and histograms the broker exposes on `/metrics`: lock-free,
//! cheap enough for every request. Rendering is the broker's job.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed bucket bounds (Prometheus style: each bucket
/// counts observations at most its bound).
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, as f64 bits.
    sum: AtomicU64,
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (bound, observations at most the bound), cumulative, ascending.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// Bounds for durations in seconds: 0.5 ms to 10 s.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bounds for sizes in bytes: 1 KiB to 256 MiB, by fours.
pub const BYTES: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The values now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                total += n.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// What the log's write path measures.
pub struct FlushMetrics {
    /// Bytes of each object a flush wrote.
    pub bytes: Histogram,
    /// Records of each flush.
    pub records: Histogram,
    /// Seconds from a flush's start (encode, upload) to its commit.
    pub seconds: Histogram,
}

impl Default for FlushMetrics {
    fn default() -> Self {
        FlushMetrics {
            bytes: Histogram::new(BYTES),
            records: Histogram::new(&[1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0, 1_000_000.0]),
            seconds: Histogram::new(SECONDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 50.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 3)]);
        assert_eq!((s.count, s.sum), (4, 56.5));
    }
}
