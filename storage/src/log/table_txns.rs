//! What a topic's Iceberg table may show of its transactions.
//!
//! A snapshot never holds a record of an open or aborted transaction, nor
//! a marker, while the Kafka log keeps all of them (read_uncommitted
//! consumers read aborted records, as in Kafka):
//!
//! - **Held back at the boundary.** A file holding a row at or past its
//!   partition's first open transaction waits outside the table, and so
//!   does every later file holding rows of a partition a waiting file
//!   holds (a table never has a hole below the offsets it holds, so
//!   `floe.kafka.offsets` stays a true "everything up to here").
//! - **Hidden by delete files.** A file that may enter the table, and
//!   holds markers or records of aborted transactions, enters with a
//!   position-delete file hiding exactly those rows
//!   ([`crate::table::deletes`]).
//!
//! Both follow from the partition's transactions in memory, which the
//! store's markers and open transactions rebuild after a restart.

use super::*;

/// A file the table may take now, with the rows it must hide.
pub(super) struct Ready {
    pub path: String,
    pub size: u64,
    pub hidden_rows: Vec<i64>,
}

/// The pending files split into those the table takes now and how many
/// wait for transactions to end.
pub(super) struct TableReady {
    pub ready: Vec<Ready>,
    pub held: usize,
}

impl Log {
    /// Splits the files `pending` (path, size; in write order) for the
    /// table of `topic` into those it may take now, each with the rows it
    /// must hide, and those that wait (see the module doc).
    pub(super) async fn table_ready(
        &self,
        topic: &TopicLog,
        pending: Vec<(String, i64)>,
    ) -> Result<TableReady> {
        let size = |s: i64| s.max(0) as u64;
        // Most topics never see a transaction: nothing to look at.
        let transactional = topic
            .partitions()
            .iter()
            .any(|p| !lock(&p.state).txns.is_empty());
        if !transactional {
            let ready = pending
                .into_iter()
                .map(|(path, s)| Ready {
                    path,
                    size: size(s),
                    hidden_rows: Vec::new(),
                })
                .collect();
            return Ok(TableReady { ready, held: 0 });
        }
        let boundaries: BTreeMap<i32, i64> = topic
            .partitions()
            .iter()
            .filter_map(|p| lock(&p.state).txns.table_boundary().map(|b| (p.index, b)))
            .collect();
        let index = compaction::segment_index(topic);
        let paths: Vec<&str> = pending.iter().map(|(p, _)| p.as_str()).collect();
        let held = held_back(&paths, &index, boundaries);
        let mut ready = Vec::new();
        for (path, s) in &pending {
            if held.contains(path.as_str()) {
                continue;
            }
            let hidden_rows = self.hidden_rows(topic, &index, path, size(*s)).await?;
            ready.push(Ready {
                path: path.clone(),
                size: size(*s),
                hidden_rows,
            });
        }
        Ok(TableReady {
            held: held.len(),
            ready,
        })
    }

    /// The rows (positions in the file) of the file at `path` that are
    /// markers or records of aborted transactions: read from its
    /// partition and offset columns, only when its segments span one.
    async fn hidden_rows(
        &self,
        topic: &TopicLog,
        index: &BTreeMap<i32, Vec<SegmentRecord>>,
        path: &str,
        size: u64,
    ) -> Result<Vec<i64>> {
        let mut views = HashMap::new();
        for (&partition, segs) in index {
            let Some(part) = topic.partition(partition) else {
                continue;
            };
            let mut spans = segs.iter().filter(|s| s.path == path).peekable();
            let Some(first) = spans.peek().map(|s| s.base_offset) else {
                continue;
            };
            let last = spans.map(|s| s.last_offset).max().unwrap_or(first);
            let view = lock(&part.state).txns.view(first, last + 1);
            if !view.is_empty() {
                views.insert(partition, view);
            }
        }
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let footer = self.footer(path, size).await?;
        let groups = footer.metadata().num_row_groups();
        let mut hidden = Vec::new();
        let mut position = 0i64;
        for group in 0..groups {
            let batches = self
                .read_row_group(
                    path,
                    size as i64,
                    group as i32,
                    None,
                    None,
                    Some(&[crate::columns::col::PARTITION, crate::columns::col::OFFSET]),
                )
                .await?;
            for b in &batches {
                let (partitions, offsets) = partition_and_offset(b)?;
                for (p, o) in partitions.values().iter().zip(offsets.values()) {
                    if views.get(p).is_some_and(|v| v.hides(*o)) {
                        hidden.push(position);
                    }
                    position += 1;
                }
            }
        }
        Ok(hidden)
    }
}

/// The partition and offset columns of rows read with only those two.
fn partition_and_offset(
    b: &RecordBatch,
) -> Result<(&arrow_array::Int32Array, &arrow_array::Int64Array)> {
    let column = |name: &str| {
        b.column_by_name(name)
            .ok_or_else(|| StorageError::Corrupt(format!("a data file has no {name} column")))
    };
    let partitions = column(crate::columns::col::PARTITION)?
        .as_any()
        .downcast_ref::<arrow_array::Int32Array>()
        .ok_or_else(|| StorageError::Corrupt("the partition column is not int32".into()))?;
    let offsets = column(crate::columns::col::OFFSET)?
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .ok_or_else(|| StorageError::Corrupt("the offset column is not int64".into()))?;
    Ok((partitions, offsets))
}

/// The files among `pending` the table may not take yet: those holding a
/// row at or past their partition's boundary (its first open
/// transaction), then every file holding a row past the first row of a
/// partition a held file holds, until nothing more is held. A pending
/// file the index does not know yet (its flush is committed but not yet
/// applied here) is held too.
fn held_back<'a>(
    pending: &[&'a str],
    index: &BTreeMap<i32, Vec<SegmentRecord>>,
    mut boundaries: BTreeMap<i32, i64>,
) -> HashSet<&'a str> {
    let mut spans: HashMap<&str, Vec<(i32, i64, i64)>> = HashMap::new();
    for (&partition, segs) in index {
        for s in segs {
            spans.entry(s.path.as_str()).or_default().push((
                partition,
                s.base_offset,
                s.last_offset,
            ));
        }
    }
    let mut held: HashSet<&str> = pending
        .iter()
        .copied()
        .filter(|p| !spans.contains_key(p))
        .collect();
    loop {
        let mut more = false;
        for &path in pending {
            if held.contains(path) {
                continue;
            }
            let file = &spans[path];
            let waits = file
                .iter()
                .any(|(p, _, last)| boundaries.get(p).is_some_and(|b| last >= b));
            if waits {
                held.insert(path);
                for &(p, base, _) in file {
                    let b = boundaries.entry(p).or_insert(base);
                    *b = (*b).min(base);
                }
                more = true;
            }
        }
        if !more {
            return held;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(segs: &[(i32, i64, i64, &str)]) -> BTreeMap<i32, Vec<SegmentRecord>> {
        let mut out: BTreeMap<i32, Vec<SegmentRecord>> = BTreeMap::new();
        for &(p, base, last, path) in segs {
            out.entry(p)
                .or_default()
                .push(SegmentRecord::for_test(p, base, last, path));
        }
        out
    }

    fn sorted(held: HashSet<&str>) -> Vec<&str> {
        let mut v: Vec<&str> = held.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn files_at_or_past_an_open_transaction_wait_and_so_do_files_after_them() {
        // a: p0 0-9, p1 0-4; b: p0 10-19; c: p1 5-9; d: p0 20-29.
        let idx = index(&[
            (0, 0, 9, "a"),
            (1, 0, 4, "a"),
            (0, 10, 19, "b"),
            (1, 5, 9, "c"),
            (0, 20, 29, "d"),
        ]);
        let pending = ["a", "b", "c", "d"];
        // No transaction open: all go.
        assert!(held_back(&pending, &idx, BTreeMap::new()).is_empty());
        // p1 has a transaction open from 7: c waits, nothing else.
        assert_eq!(
            sorted(held_back(&pending, &idx, BTreeMap::from([(1, 7)]))),
            vec!["c"]
        );
        // p1 from 3: a waits, so p0 past 0 waits too (b, d), and p1's c.
        assert_eq!(
            sorted(held_back(&pending, &idx, BTreeMap::from([(1, 3)]))),
            vec!["a", "b", "c", "d"]
        );
        // p0 from 15: b and d wait; a and c go.
        assert_eq!(
            sorted(held_back(&pending, &idx, BTreeMap::from([(0, 15)]))),
            vec!["b", "d"]
        );
    }

    #[test]
    fn a_file_the_index_does_not_know_yet_waits() {
        let idx = index(&[(0, 0, 9, "a")]);
        assert_eq!(
            sorted(held_back(&["a", "new"], &idx, BTreeMap::new())),
            vec!["new"]
        );
    }
}
