//! What key compaction keeps of a partition's rows: Kafka's cleaner rules.
//!
//! Of the rows a compaction reads (a prefix of the partition's log, in
//! offset order), a row stays if no later row of the region has its key.
//! A tombstone (null value) that is its key's latest stays until it has
//! been in the log for `delete.retention.ms`, then goes too. A row without
//! a key goes (Kafka refuses them on compacted topics; older ones, from
//! before the topic was compacted, are dropped by its cleaner as well).
//! The region's last row always stays: it ends the segment that takes the
//! region's place, so the index keeps its offsets (Kafka's active segment,
//! which its cleaner never touches, plays that part there).

use std::collections::HashMap;

use arrow_array::{BooleanArray, RecordBatch};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::segment;
use crate::typed::ReadLayout;

/// When a tombstone may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TombstoneRule {
    /// Now, in milliseconds.
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
}

impl TombstoneRule {
    fn expired(&self, append_ms: i64) -> bool {
        append_ms < self.now_ms.saturating_sub(self.delete_retention_ms)
    }
}

/// A key as the cleaner's map holds it: 16 bytes of its SHA-256, so the
/// map's size depends on the number of keys, not their length (Kafka's
/// cleaner keeps 16 bytes of MD5).
type KeyDigest = [u8; 16];

fn digest(key: &[u8]) -> KeyDigest {
    let d = Sha256::digest(key);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// One row, as the cleaner sees it.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: Option<KeyDigest>,
    tombstone: bool,
    append_ms: i64,
}

/// Which rows stay, by the rules above.
fn keep(rows: &[Row], rule: TombstoneRule) -> Vec<bool> {
    let mut latest: HashMap<KeyDigest, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(k) = r.key {
            latest.insert(k, i);
        }
    }
    let last = rows.len().checked_sub(1);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            Some(i) == last
                || r.key.is_some_and(|k| {
                    latest.get(&k) == Some(&i) && !(r.tombstone && rule.expired(r.append_ms))
                })
        })
        .collect()
}

/// Each partition's rows (batches in offset order) without those the
/// rules let go; a batch left with no row is dropped.
pub(super) fn latest_per_key(
    partitions: Vec<(i32, Vec<RecordBatch>)>,
    layout: &ReadLayout,
    rule: TombstoneRule,
) -> Result<Vec<(i32, Vec<RecordBatch>)>> {
    let mut out = Vec::with_capacity(partitions.len());
    for (partition, batches) in partitions {
        let mut rows = Vec::new();
        for b in &batches {
            segment::visit_keys(b, layout, |key, tombstone, append_ms| {
                rows.push(Row {
                    key: key.map(digest),
                    tombstone,
                    append_ms,
                })
            })?;
        }
        let keep = keep(&rows, rule);
        let mut kept = Vec::with_capacity(batches.len());
        let mut at = 0;
        for b in batches {
            let mask = BooleanArray::from(keep[at..at + b.num_rows()].to_vec());
            at += b.num_rows();
            let b = arrow_select::filter::filter_record_batch(&b, &mask)?;
            if b.num_rows() > 0 {
                kept.push(b);
            }
        }
        out.push((partition, kept));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: TombstoneRule = TombstoneRule {
        now_ms: 10_000,
        delete_retention_ms: 1_000,
    };

    fn row(key: Option<&str>, tombstone: bool, append_ms: i64) -> Row {
        Row {
            key: key.map(|k| digest(k.as_bytes())),
            tombstone,
            append_ms,
        }
    }

    fn kept(rows: &[Row]) -> Vec<usize> {
        keep(rows, RULE)
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn each_key_keeps_its_latest_row() {
        let rows = [
            row(Some("a"), false, 0),
            row(Some("b"), false, 0),
            row(Some("a"), false, 0),
            row(Some("c"), false, 0),
            row(Some("b"), false, 0),
            row(Some("c"), false, 0),
        ];
        assert_eq!(kept(&rows), vec![2, 4, 5]);
    }

    #[test]
    fn a_tombstone_stays_until_delete_retention_has_passed() {
        let rows = [
            row(Some("a"), false, 0),
            row(Some("a"), true, 9_500), // recent: kept
            row(Some("b"), false, 0),
            row(Some("b"), true, 8_000), // old: goes, and b with it
            row(Some("c"), false, 0),
        ];
        assert_eq!(kept(&rows), vec![1, 4]);
    }

    #[test]
    fn rows_without_a_key_go_but_the_last_row_always_stays() {
        let rows = [
            row(None, false, 0),
            row(Some("a"), false, 0),
            row(Some("a"), true, 0),
        ];
        // The expired tombstone ends the region: it stays.
        assert_eq!(kept(&rows), vec![2]);
        let rows = [row(Some("a"), false, 0), row(None, false, 0)];
        assert_eq!(kept(&rows), vec![0, 1]);
        assert_eq!(kept(&[]), Vec::<usize>::new());
    }
}
