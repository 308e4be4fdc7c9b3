//! The log's invariants, checked on demand for one topic: what an operator
//! (`GET /admin/topics/{name}/check`) and the consistency checker ask after
//! faults, to know that nothing acknowledged became unreadable.
//!
//! For every partition: the stored segment index covers [log start, high
//! watermark) with no gap and no overlap; the broker's in-memory index and
//! high watermark agree with the stored ones; every segment's run of rows
//! exists and holds exactly the offsets the index claims, in order, of its
//! own partition (on a compacted topic, a segment key compaction thinned
//! out holds fewer, in order, ending with its last offset).

use std::collections::BTreeMap;

use arrow_array::{Array, Int32Array, Int64Array};
use serde::Serialize;

use super::{lock, read_lock, Log, TopicLog};
use crate::error::Result;
use crate::meta::SegmentRecord;
use crate::segment::col;

/// What the check found in one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCheck {
    /// Partition index.
    pub partition: i32,
    /// First offset in the log, as stored.
    pub log_start_offset: i64,
    /// High watermark, as stored.
    pub high_watermark: i64,
    /// Segments in the stored index.
    pub segments: usize,
    /// Rows read back from the segments at or above the log start.
    pub records: i64,
    /// Every broken invariant, one sentence each.
    pub problems: Vec<String>,
}

/// What the check found in one topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicCheck {
    /// Topic name.
    pub topic: String,
    /// Every partition.
    pub partitions: Vec<PartitionCheck>,
}

impl TopicCheck {
    /// Every problem, prefixed with its partition.
    pub fn problems(&self) -> Vec<String> {
        self.partitions
            .iter()
            .flat_map(|p| {
                p.problems
                    .iter()
                    .map(move |m| format!("partition {}: {m}", p.partition))
            })
            .collect()
    }
}

impl Log {
    /// Checks a topic's invariants (see the module doc). Reads the offset
    /// column of every row group, so it costs one ranged read per segment.
    ///
    /// The log keeps changing while it is checked (flushes, compaction,
    /// retention), so a check that finds a problem is made again, up to
    /// three times: a real problem stays, a race between two reads does not.
    pub async fn check_topic(&self, topic: &TopicLog) -> Result<TopicCheck> {
        let mut attempt = 0;
        loop {
            let check = self.check_once(topic).await?;
            attempt += 1;
            if check.problems().is_empty() || attempt == 3 {
                return Ok(check);
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    async fn check_once(&self, topic: &TopicLog) -> Result<TopicCheck> {
        // The partitions' offsets and the segments, read until the
        // partitions did not change around the segments' read.
        let (stored_parts, segments) = loop {
            let before = self.meta.list_partitions(&topic.name).await?;
            let segments = self.meta.list_segments(&topic.name).await?;
            if self.meta.list_partitions(&topic.name).await? == before {
                break (before, segments);
            }
        };
        let mut stored: BTreeMap<i32, Vec<SegmentRecord>> = BTreeMap::new();
        for s in segments {
            stored.entry(s.partition).or_default().push(s);
        }
        let mut partitions = Vec::with_capacity(stored_parts.len());
        for p in stored_parts {
            let mut segs = stored.remove(&p.partition).unwrap_or_default();
            segs.sort_by_key(|s| s.base_offset);
            let mut check = PartitionCheck {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
                segments: segs.len(),
                records: 0,
                problems: Vec::new(),
            };
            self.check_memory(topic, &segs, &mut check);
            check_coverage(&segs, topic.config().compacted(), &mut check);
            for s in &segs {
                self.check_rows(s, &mut check).await;
            }
            partitions.push(check);
        }
        for (partition, segs) in stored {
            partitions.push(PartitionCheck {
                partition,
                log_start_offset: 0,
                high_watermark: 0,
                segments: segs.len(),
                records: 0,
                problems: vec!["segments of a partition the topic does not have".into()],
            });
        }
        Ok(TopicCheck {
            topic: topic.name.clone(),
            partitions,
        })
    }

    /// The broker's own view against the stored one.
    fn check_memory(&self, topic: &TopicLog, stored: &[SegmentRecord], check: &mut PartitionCheck) {
        let Some(part) = topic.partition(check.partition) else {
            check
                .problems
                .push("the broker does not know this partition".into());
            return;
        };
        let (hw, start) = {
            let st = lock(&part.state);
            (st.high_watermark, st.log_start_offset)
        };
        // A flush may commit between the two reads: the broker may be
        // ahead of what was read from the store, never behind.
        if hw < check.high_watermark || start < check.log_start_offset {
            check.problems.push(format!(
                "the broker serves [{start}, {hw}) but the store holds [{}, {})",
                check.log_start_offset, check.high_watermark
            ));
        }
        let memory: Vec<(i64, i64, String, i32)> = read_lock(&part.segments)
            .values()
            .filter(|s| s.base_offset < check.high_watermark && s.last_offset >= start)
            .map(|s| (s.base_offset, s.last_offset, s.path.clone(), s.row_group))
            .collect();
        let on_disk: Vec<(i64, i64, String, i32)> = stored
            .iter()
            .filter(|s| s.base_offset < check.high_watermark && s.last_offset >= start)
            .map(|s| (s.base_offset, s.last_offset, s.path.clone(), s.row_group))
            .collect();
        if memory != on_disk {
            check.problems.push(format!(
                "the broker's segment index ({} segments) differs from the stored one ({})",
                memory.len(),
                on_disk.len()
            ));
        }
    }

    /// One segment's rows against what the index claims.
    async fn check_rows(&self, s: &SegmentRecord, check: &mut PartitionCheck) {
        let where_ = format!(
            "segment [{}, {}] ({} row group {} from row {})",
            s.base_offset, s.last_offset, s.path, s.row_group, s.first_row
        );
        let cols = [col::PARTITION, col::OFFSET];
        let batches = match self
            .row_group_batches(s, s.base_offset, None, Some(&cols))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                check.problems.push(format!("{where_} cannot be read: {e}"));
                return;
            }
        };
        let mut expected = s.base_offset;
        let mut rows = 0i64;
        for b in &batches {
            let (Some(parts), Some(offsets)) = (
                b.column_by_name(col::PARTITION)
                    .and_then(|c| c.as_any().downcast_ref::<Int32Array>()),
                b.column_by_name(col::OFFSET)
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
            ) else {
                check
                    .problems
                    .push(format!("{where_} lacks its offset columns"));
                return;
            };
            for i in 0..b.num_rows() {
                let (partition, offset) = (parts.value(i), offsets.value(i));
                if partition != s.partition {
                    check
                        .problems
                        .push(format!("{where_} holds a row of partition {partition}"));
                    return;
                }
                let in_order = if s.has_gaps() {
                    offset >= expected
                } else {
                    offset == expected
                };
                if !in_order {
                    check.problems.push(format!(
                        "{where_} holds offset {offset} where {expected} belongs"
                    ));
                    return;
                }
                expected = offset + 1;
                rows += 1;
                if offset >= check.log_start_offset && offset < check.high_watermark {
                    check.records += 1;
                }
            }
        }
        if rows != s.record_count || expected != s.last_offset + 1 {
            check.problems.push(format!(
                "{where_} holds {rows} rows up to offset {} where the index claims {}",
                expected - 1,
                s.record_count
            ));
        }
    }
}

/// The stored segments against [log start, high watermark): one unbroken
/// chain, each segment dense (or, on a `compacted` topic, holding at least
/// one row).
fn check_coverage(segs: &[SegmentRecord], compacted: bool, check: &mut PartitionCheck) {
    let (start, hw) = (check.log_start_offset, check.high_watermark);
    let mut next = start;
    for s in segs {
        let span = s.last_offset - s.base_offset + 1;
        let fits = if compacted {
            (1..=span).contains(&s.record_count)
        } else {
            s.record_count == span
        };
        if !fits {
            check.problems.push(format!(
                "segment [{}, {}] claims {} rows",
                s.base_offset, s.last_offset, s.record_count
            ));
        }
        if s.last_offset < start {
            check.problems.push(format!(
                "segment [{}, {}] lies wholly below the log start {start}",
                s.base_offset, s.last_offset
            ));
            continue;
        }
        if s.base_offset > next {
            check.problems.push(format!(
                "no segment holds offsets [{next}, {})",
                s.base_offset
            ));
        } else if s.base_offset < next && next > start {
            check.problems.push(format!(
                "segment [{}, {}] overlaps offsets below {next}",
                s.base_offset, s.last_offset
            ));
        }
        next = next.max(s.last_offset + 1);
    }
    if next < hw {
        check
            .problems
            .push(format!("no segment holds offsets [{next}, {hw})"));
    } else if next > hw {
        check.problems.push(format!(
            "segments hold offsets up to {} beyond the high watermark {hw}",
            next - 1
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, last: i64) -> SegmentRecord {
        SegmentRecord::for_test(0, base, last, "f")
    }

    fn problems(segs: &[SegmentRecord], start: i64, hw: i64) -> Vec<String> {
        problems_of(segs, false, start, hw)
    }

    fn problems_of(segs: &[SegmentRecord], compacted: bool, start: i64, hw: i64) -> Vec<String> {
        let mut c = PartitionCheck {
            partition: 0,
            log_start_offset: start,
            high_watermark: hw,
            segments: segs.len(),
            records: 0,
            problems: Vec::new(),
        };
        check_coverage(segs, compacted, &mut c);
        c.problems
    }

    #[test]
    fn only_a_compacted_topic_may_hold_segments_with_gaps() {
        let thinned = SegmentRecord {
            record_count: 3,
            ..seg(0, 9)
        };
        let empty = SegmentRecord {
            record_count: 0,
            ..seg(10, 19)
        };
        assert_eq!(
            problems_of(std::slice::from_ref(&thinned), false, 0, 10),
            vec!["segment [0, 9] claims 3 rows"]
        );
        assert!(problems_of(std::slice::from_ref(&thinned), true, 0, 10).is_empty());
        assert_eq!(
            problems_of(&[thinned, empty], true, 0, 20),
            vec!["segment [10, 19] claims 0 rows"]
        );
    }

    #[test]
    fn coverage_finds_gaps_overlaps_and_overhangs() {
        assert!(problems(&[seg(0, 9), seg(10, 19)], 0, 20).is_empty());
        // DeleteRecords inside the first segment.
        assert!(problems(&[seg(0, 9), seg(10, 19)], 5, 20).is_empty());
        assert!(problems(&[], 7, 7).is_empty());
        assert_eq!(
            problems(&[seg(0, 9), seg(20, 29)], 0, 30),
            vec!["no segment holds offsets [10, 20)"]
        );
        assert_eq!(
            problems(&[seg(0, 29), seg(10, 19)], 0, 30),
            vec!["segment [10, 19] overlaps offsets below 30"]
        );
        assert_eq!(
            problems(&[seg(0, 9)], 0, 15),
            vec!["no segment holds offsets [10, 15)"]
        );
        assert_eq!(
            problems(&[seg(0, 9)], 0, 5),
            vec!["segments hold offsets up to 9 beyond the high watermark 5"]
        );
        assert_eq!(
            problems(&[seg(3, 9)], 0, 10),
            vec!["no segment holds offsets [0, 3)"]
        );
    }
}
