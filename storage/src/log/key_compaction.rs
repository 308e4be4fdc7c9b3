//! Key compaction (`cleanup.policy=compact`): which part of a topic's log
//! is rewritten with each key's latest record, and when.
//!
//! Kafka's cleaner rewrites the log from its start up to the first offset
//! it may not touch, and only once enough of that part is dirty. Here:
//!
//! - The compactable part of a partition is the longest prefix of its
//!   segments that sit in the topic's own table files (not intake chunks:
//!   those are the head, still moving), that are older than
//!   `min.compaction.lag.ms`, and that are not the partition's last
//!   segment (Kafka's active segment, which its cleaner never touches).
//!   Files hold several partitions, so a file is rewritten only if all of
//!   its segments lie in those prefixes, and the prefixes shrink until
//!   they hold only such files: the region is then, in every partition, an
//!   unbroken block from the log start, and its output takes exactly its
//!   place. One pass reads at most [`PASS_BYTES_PER_TARGET`] compaction
//!   targets of files (it holds them in memory).
//! - It runs when the dirty share of the region (bytes in files no key
//!   compaction wrote) reaches `min.cleanable.dirty.ratio`, or when a dirty
//!   segment is older than `max.compaction.lag.ms`, or when asked.
//! - The rewrite (`Rewrite::Keys`) is one file swapped for the region's
//!   files in one metadata transaction, so a crash leaves either the old
//!   files or the new one, never a mix; offsets are kept (consumers see
//!   gaps, as in Kafka).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use super::compaction::{is_key_compacted, segment_index, CompactionStats, Rewrite};
use super::latest_per_key::TombstoneRule;
use super::{now_ms, Log, TopicLog};
use crate::error::Result;
use crate::intake;
use crate::meta::{FileRecord, SegmentRecord};
use crate::topic_config::KeyCompaction;

/// One pass reads at most this many compaction targets of files.
const PASS_BYTES_PER_TARGET: u64 = 4;

/// The files a key compaction rewrites, in write order, and how much of
/// them is dirty.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Region {
    pub files: Vec<FileRecord>,
    pub dirty_bytes: u64,
    pub clean_bytes: u64,
    /// The oldest append time of a dirty segment.
    pub oldest_dirty_ms: Option<i64>,
}

impl Region {
    /// Whether the rules call for compacting it now.
    fn due(&self, rules: &KeyCompaction, now_ms: i64) -> bool {
        if self.dirty_bytes == 0 {
            return false;
        }
        let total = (self.dirty_bytes + self.clean_bytes) as f64;
        self.dirty_bytes as f64 / total >= rules.min_dirty_ratio
            || self
                .oldest_dirty_ms
                .is_some_and(|t| t < now_ms.saturating_sub(rules.max_lag_ms))
    }
}

/// The region of the log a key compaction may rewrite now (see the
/// module doc), reading at most `cap_bytes` of files.
pub(super) fn plan_region(
    files: &[FileRecord],
    index: &BTreeMap<i32, Vec<SegmentRecord>>,
    min_lag_ms: i64,
    now_ms: i64,
    cap_bytes: u64,
) -> Region {
    let by_path: HashMap<&str, &FileRecord> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut allowed: HashSet<&str> = files
        .iter()
        .filter(|f| f.in_table && !intake::is_chunk(&f.path))
        .map(|f| f.path.as_str())
        .collect();
    let mut region = inside(index, &allowed, min_lag_ms, now_ms);
    let size = |paths: &HashSet<&str>| -> u64 {
        paths
            .iter()
            .filter_map(|p| by_path.get(p))
            .map(|f| f.size_bytes.max(0) as u64)
            .sum()
    };
    if size(&region) > cap_bytes {
        // The oldest files within the cap (at least one), then the
        // prefixes again over those alone.
        let mut total = 0;
        allowed = files
            .iter()
            .filter(|f| region.contains(f.path.as_str()))
            .take_while(|f| {
                let fits = total == 0 || total + f.size_bytes.max(0) as u64 <= cap_bytes;
                total += f.size_bytes.max(0) as u64;
                fits
            })
            .map(|f| f.path.as_str())
            .collect();
        region = inside(index, &allowed, min_lag_ms, now_ms);
    }
    let mut out = Region {
        files: files
            .iter()
            .filter(|f| region.contains(f.path.as_str()))
            .cloned()
            .collect(),
        ..Region::default()
    };
    for s in index.values().flatten() {
        if !region.contains(s.path.as_str()) {
            continue;
        }
        let bytes = s.size_bytes.max(0) as u64;
        if is_key_compacted(&s.path) {
            out.clean_bytes += bytes;
        } else {
            out.dirty_bytes += bytes;
            out.oldest_dirty_ms = Some(
                out.oldest_dirty_ms
                    .map_or(s.append_time_ms, |t| t.min(s.append_time_ms)),
            );
        }
    }
    out
}

/// The files among `allowed` whose segments all lie in their partitions'
/// compactable prefixes, those prefixes shrunk until they hold only such
/// files.
fn inside<'a>(
    index: &'a BTreeMap<i32, Vec<SegmentRecord>>,
    allowed: &HashSet<&str>,
    min_lag_ms: i64,
    now_ms: i64,
) -> HashSet<&'a str> {
    let young = now_ms.saturating_sub(min_lag_ms);
    // Each partition's prefix of segments that may be compacted on their
    // own: never its last one.
    let mut prefix: BTreeMap<i32, usize> = index
        .iter()
        .map(|(&p, segs)| {
            let n = segs
                .iter()
                .take(segs.len().saturating_sub(1))
                .take_while(|s| allowed.contains(s.path.as_str()) && s.append_time_ms <= young)
                .count();
            (p, n)
        })
        .collect();
    loop {
        let mut whole: HashMap<&str, bool> = HashMap::new();
        for (p, segs) in index {
            let n = prefix[p];
            for (i, s) in segs.iter().enumerate() {
                *whole.entry(s.path.as_str()).or_insert(true) &= i < n;
            }
        }
        let mut shrunk = false;
        for (p, segs) in index {
            let n = prefix[p];
            let keep = segs[..n]
                .iter()
                .position(|s| !whole[s.path.as_str()])
                .unwrap_or(n);
            if keep < n {
                prefix.insert(*p, keep);
                shrunk = true;
            }
        }
        if !shrunk {
            return whole
                .into_iter()
                .filter(|(_, w)| *w)
                .map(|(path, _)| path)
                .collect();
        }
    }
}

impl Log {
    /// Key compaction of a topic whose `cleanup.policy` holds `compact`,
    /// if its dirty share or max lag calls for it, or whenever there is
    /// something to rewrite when `force`d (an operator's request).
    pub async fn compact_keys(&self, topic: &TopicLog, force: bool) -> Result<CompactionStats> {
        let rules = topic.config().key_compaction();
        let now = now_ms();
        let files = self.meta.files_in_order(&topic.name).await?;
        let index = segment_index(topic);
        let cap = self
            .cfg
            .compaction_target_bytes
            .saturating_mul(PASS_BYTES_PER_TARGET);
        let region = crate::background::cpu_bound(|| {
            plan_region(&files, &index, rules.min_lag_ms, now, cap)
        });
        let wanted = if force {
            !region.files.is_empty()
        } else {
            region.due(&rules, now)
        };
        if !wanted {
            return Ok(CompactionStats::default());
        }
        let started = Instant::now();
        let rule = TombstoneRule {
            now_ms: now,
            delete_retention_ms: rules.delete_retention_ms,
        };
        let Some(bytes_out) = self
            .rewrite_run(topic, &region.files, Rewrite::Keys(rule))
            .await?
        else {
            return Ok(CompactionStats::default());
        };
        Ok(CompactionStats {
            files_in: region.files.len(),
            files_out: 1,
            bytes_in: region.dirty_bytes + region.clean_bytes,
            bytes_out,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: i64, in_table: bool) -> FileRecord {
        FileRecord {
            path: path.into(),
            size_bytes: size,
            created_ms: 0,
            in_table,
        }
    }

    fn seg(partition: i32, base: i64, last: i64, path: &str, append: i64) -> SegmentRecord {
        SegmentRecord {
            append_time_ms: append,
            ..SegmentRecord::for_test(partition, base, last, path)
        }
    }

    fn index(segs: Vec<SegmentRecord>) -> BTreeMap<i32, Vec<SegmentRecord>> {
        let mut out: BTreeMap<i32, Vec<SegmentRecord>> = BTreeMap::new();
        for s in segs {
            out.entry(s.partition).or_default().push(s);
        }
        out
    }

    fn paths(r: &Region) -> Vec<&str> {
        r.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn the_last_segment_intake_chunks_and_young_segments_stay() {
        let files = vec![
            file("a", 100, true),
            file("b", 100, true),
            file("c", 100, false),
            file("obj#0", 100, false),
        ];
        // Partition 0: a, b, c (not in the table yet): a and b compact.
        // Partition 1: a, obj#0: a is fine, the chunk is the last anyway.
        let idx = index(vec![
            seg(0, 0, 9, "a", 0),
            seg(0, 10, 19, "b", 0),
            seg(0, 20, 29, "c", 0),
            seg(1, 0, 9, "a", 0),
            seg(1, 10, 19, "obj#0", 0),
        ]);
        let r = plan_region(&files, &idx, 0, 1_000, u64::MAX);
        assert_eq!(paths(&r), vec!["a", "b"]);
        assert_eq!((r.dirty_bytes, r.clean_bytes), (300, 0));
        // b is younger than the lag: it and what follows stay.
        let idx = index(vec![
            seg(0, 0, 9, "a", 0),
            seg(0, 10, 19, "b", 900),
            seg(0, 20, 29, "c", 0),
        ]);
        let r = plan_region(&files, &idx, 500, 1_000, u64::MAX);
        assert_eq!(paths(&r), vec!["a"]);
    }

    #[test]
    fn a_file_goes_only_with_all_of_its_segments() {
        // x holds partition 0's first segment and partition 1's last: it
        // cannot be rewritten, so partition 0's prefix stops before it.
        let files = vec![
            file("x", 100, true),
            file("y", 100, true),
            file("z", 100, true),
        ];
        let idx = index(vec![
            seg(0, 0, 9, "x", 0),
            seg(0, 10, 19, "y", 0),
            seg(0, 20, 29, "z", 0),
            seg(1, 0, 9, "y", 0),
            seg(1, 10, 19, "x", 0),
        ]);
        let r = plan_region(&files, &idx, 0, 1_000, u64::MAX);
        assert!(r.files.is_empty(), "{:?}", paths(&r));
    }

    #[test]
    fn clean_and_dirty_bytes_decide_with_the_ratio_and_the_max_lag() {
        let clean = "t/data/day=1/0000000000001-compacted-keys-x.parquet";
        let files = vec![
            file(clean, 300, true),
            file("d", 100, true),
            file("e", 100, true),
        ];
        let idx = index(vec![
            seg(0, 0, 9, clean, 0),
            seg(0, 10, 19, "d", 50),
            seg(0, 20, 29, "e", 60),
        ]);
        let r = plan_region(&files, &idx, 0, 1_000, u64::MAX);
        assert_eq!(paths(&r), vec![clean, "d"]);
        assert_eq!(
            (r.clean_bytes, r.dirty_bytes, r.oldest_dirty_ms),
            (100, 100, Some(50))
        );
        let mut rules = KeyCompaction {
            min_dirty_ratio: 0.5,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
            delete_retention_ms: 0,
        };
        assert!(r.due(&rules, 1_000));
        rules.min_dirty_ratio = 0.6;
        assert!(!r.due(&rules, 1_000));
        rules.max_lag_ms = 900;
        assert!(
            r.due(&rules, 1_000),
            "a dirty segment older than the max lag"
        );
    }

    #[test]
    fn a_pass_reads_at_most_its_cap_from_the_oldest_file() {
        let files = vec![
            file("a", 100, true),
            file("b", 100, true),
            file("c", 100, true),
        ];
        let idx = index(vec![
            seg(0, 0, 9, "a", 0),
            seg(0, 10, 19, "b", 0),
            seg(0, 20, 29, "c", 0),
            seg(0, 30, 39, "last", 0),
        ]);
        let r = plan_region(&files, &idx, 0, 1_000, 250);
        assert_eq!(paths(&r), vec!["a", "b"]);
    }
}
