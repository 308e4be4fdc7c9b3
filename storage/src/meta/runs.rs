//! A file's runs: the offset range of every partition it holds, encoded
//! into the file's one metadata row. A flush commits one row whatever the
//! number of partitions (a row per partition made a flush of 1 000
//! partitions 1 000 inserts, 85 % of its commit), and a rewrite checks
//! overlaps against decoded runs instead of a query per run.
//!
//! Format: a version byte (1), the run count, then per run the zigzag
//! varints of partition, base offset, last − base, record count, row
//! group, first row, append time (the first run's absolute, later runs'
//! the difference to the previous one), min timestamp − append time,
//! max − min timestamp, size in bytes (differences wrap, so any i64
//! comes back). About 15 bytes a run.

use std::collections::BTreeMap;

use super::SegmentRecord;
use crate::error::{Result, StorageError};

const VERSION: u8 = 1;

/// Encodes a file's runs (their topic, path and file size are the row's).
pub fn encode(runs: &[SegmentRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + runs.len() * 16);
    out.push(VERSION);
    put(&mut out, runs.len() as i64);
    let mut append = 0;
    for r in runs {
        put(&mut out, r.partition as i64);
        put(&mut out, r.base_offset);
        put(&mut out, r.last_offset.wrapping_sub(r.base_offset));
        put(&mut out, r.record_count);
        put(&mut out, r.row_group as i64);
        put(&mut out, r.first_row);
        put(&mut out, r.append_time_ms.wrapping_sub(append));
        append = r.append_time_ms;
        put(&mut out, r.min_timestamp.wrapping_sub(r.append_time_ms));
        put(&mut out, r.max_timestamp.wrapping_sub(r.min_timestamp));
        put(&mut out, r.size_bytes);
    }
    out
}

/// One partition's run in a file, as decoded (its topic, path and file
/// size are the file row's: [`Run::segment`] adds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Partition index.
    pub partition: i32,
    /// First offset.
    pub base_offset: i64,
    /// Last offset (inclusive).
    pub last_offset: i64,
    /// Number of rows.
    pub record_count: i64,
    /// Row group index in the file.
    pub row_group: i32,
    /// Index of the run's first row in its row group.
    pub first_row: i64,
    /// Lowest record timestamp.
    pub min_timestamp: i64,
    /// Highest record timestamp.
    pub max_timestamp: i64,
    /// Compressed bytes of the run's rows.
    pub size_bytes: i64,
    /// When the broker wrote it.
    pub append_time_ms: i64,
}

impl Run {
    /// The run as a segment of the file `path` of `topic`.
    pub fn segment(&self, topic: &str, path: &str, file_size: i64) -> SegmentRecord {
        SegmentRecord {
            topic: topic.to_string(),
            partition: self.partition,
            base_offset: self.base_offset,
            last_offset: self.last_offset,
            record_count: self.record_count,
            path: path.to_string(),
            file_size,
            row_group: self.row_group,
            first_row: self.first_row,
            min_timestamp: self.min_timestamp,
            max_timestamp: self.max_timestamp,
            size_bytes: self.size_bytes,
            append_time_ms: self.append_time_ms,
        }
    }

    /// Whether the run still holds records of the log: it ends at or
    /// after its partition's log start (a run wholly below it was dropped
    /// by retention or DeleteRecords, and is skipped wherever runs are
    /// read).
    pub fn is_live(&self, log_starts: &BTreeMap<i32, i64>) -> bool {
        self.last_offset >= log_starts.get(&self.partition).copied().unwrap_or(0)
    }
}

/// Decodes the runs of the file `path` (named in the error if the bytes
/// are damaged).
pub fn decode(path: &str, bytes: &[u8]) -> Result<Vec<Run>> {
    let corrupt = || StorageError::Corrupt(format!("the run index of {path}"));
    let mut input = match bytes.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => return Err(corrupt()),
    };
    let count = usize::try_from(take(&mut input).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    // Every run takes at least ten bytes: a count beyond that is corrupt,
    // not an allocation to attempt.
    if count > input.len() / 10 {
        return Err(corrupt());
    }
    let mut runs = Vec::with_capacity(count);
    let mut append: i64 = 0;
    for _ in 0..count {
        let mut next = || take(&mut input).ok_or_else(corrupt);
        let partition = i32::try_from(next()?).map_err(|_| corrupt())?;
        let base_offset = next()?;
        let last_offset = base_offset.wrapping_add(next()?);
        let record_count = next()?;
        let row_group = i32::try_from(next()?).map_err(|_| corrupt())?;
        let first_row = next()?;
        append = append.wrapping_add(next()?);
        let min_timestamp = append.wrapping_add(next()?);
        let max_timestamp = min_timestamp.wrapping_add(next()?);
        let size_bytes = next()?;
        runs.push(Run {
            partition,
            base_offset,
            last_offset,
            record_count,
            row_group,
            first_row,
            min_timestamp,
            max_timestamp,
            size_bytes,
            append_time_ms: append,
        });
    }
    if !input.is_empty() {
        return Err(corrupt());
    }
    Ok(runs)
}

fn put(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn take(input: &mut &[u8]) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(partition: i32, base: i64, n: i64) -> SegmentRecord {
        SegmentRecord {
            topic: "t".into(),
            partition,
            base_offset: base,
            last_offset: base + n - 1,
            record_count: n,
            path: "p".into(),
            file_size: 99,
            row_group: partition / 3,
            first_row: i64::from(partition) * 7,
            min_timestamp: 1_700_000_000_000 - 5,
            max_timestamp: 1_700_000_000_000 + 3,
            size_bytes: 1000 + n,
            append_time_ms: 1_700_000_000_000 + i64::from(partition % 2),
        }
    }

    #[test]
    fn runs_come_back_as_they_went_in() {
        let mut runs: Vec<SegmentRecord> =
            (0..1000).map(|p| run(p, i64::from(p) * 11, 3)).collect();
        runs.push(SegmentRecord {
            min_timestamp: -1,
            max_timestamp: i64::MAX,
            ..run(7, i64::MAX - 10, 5)
        });
        let bytes = encode(&runs);
        assert!(bytes.len() < 20 * runs.len(), "{} bytes", bytes.len());
        let back: Vec<SegmentRecord> = decode("p", &bytes)
            .unwrap()
            .iter()
            .map(|r| r.segment("t", "p", 99))
            .collect();
        assert_eq!(back, runs);
        assert_eq!(decode("p", &encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn damaged_bytes_are_corrupt_not_a_panic() {
        let bytes = encode(&[run(0, 0, 1), run(1, 5, 2)]);
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode("p", &bytes[..cut]),
                Err(StorageError::Corrupt(_))
            ));
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode("p", &extra).is_err());
        let mut huge = vec![VERSION];
        put(&mut huge, i64::MAX);
        assert!(decode("p", &huge).is_err());
        assert!(decode("p", &[2, 0]).is_err());
    }
}
