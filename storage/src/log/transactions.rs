//! Kafka transactions in a partition's log (KIP-98): the transactions
//! still open there, whose first offsets hold back the last stable offset
//! (LSO); the markers that ended the others; and what a read makes of
//! them. A marker is a row of the log like any record (so offsets stay
//! contiguous in the files); the store names its offset, and a read
//! rebuilds a control batch there. A `read_committed` read stops at the
//! LSO and leaves out the records of aborted transactions, so clients get
//! an empty aborted-transactions list and nothing to filter.

use super::*;
use crate::meta::{OffsetRanges, OpenTransactionRecord, TransactionMarkerRecord};

impl Log {
    /// Ends a producer's transaction in a partition with a commit or abort
    /// marker (KIP-98's WriteTxnMarkers, done by the partition's leader):
    /// the control record takes the next offset and is committed with the
    /// next flush, as records are. None when the producer has no
    /// transaction open there (nothing to mark, or marked already: the
    /// coordinator may ask again after a restart).
    pub async fn write_marker(
        &self,
        topic_name: &str,
        partition: i32,
        producer: (i64, i16),
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<Option<PendingAppend>> {
        let topic = self
            .topic(topic_name)
            .ok_or_else(|| StorageError::UnknownTopic(topic_name.to_string()))?;
        let part = topic.require_partition(partition)?;
        let now = now_ms();
        let mut buf = lock(&topic.buffer);
        if topic.deleted.load(Ordering::SeqCst) {
            return Err(StorageError::UnknownTopic(topic_name.to_string()));
        }
        if topic.released.load(Ordering::SeqCst) {
            return Err(StorageError::Fenced(format!(
                "{topic_name}-{partition}: another broker leads the topic now"
            )));
        }
        let mut st = lock(&part.state);
        let offset = st.next_offset;
        let Some(marker) = st.txns.end(topic_name, partition, producer, offset, commit) else {
            return Ok(None);
        };
        st.next_offset += 1;
        let bytes = records::marker_batch(
            offset,
            now,
            producer,
            commit,
            coordinator_epoch,
            st.leader_epoch,
        );
        let (key, value) = records::marker_record(commit, coordinator_epoch);
        let record = records::Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(Bytes::copy_from_slice(&key)),
            value: Some(Bytes::copy_from_slice(&value)),
            headers: Vec::new(),
        };
        buf.rows.push(partition, offset, now, 0, &record);
        // The marker's epoch is the producer's from now on (a coordinator
        // that aborted on a timeout bumped it, fencing the old producer).
        let entry = st.producers.entry(producer.0).or_default();
        if entry.epoch != producer.1 {
            entry.recent.clear();
            entry.epoch = producer.1;
        }
        let rec = entry.record(topic_name, partition, producer.0);
        buf.producers.insert((partition, producer.0), rec);
        buf.open_txns.insert(
            (partition, producer.0),
            OpenTransactionRecord {
                topic: topic_name.to_string(),
                partition,
                producer_id: producer.0,
                producer_epoch: producer.1,
                ranges: Vec::new(),
            },
        );
        buf.markers.push(marker);
        drop(st);
        buf.held.add(bytes.len());
        buf.tail.push((partition, offset, offset, bytes));
        let slot = buf.slot.clone();
        if buf.first_append.is_none() {
            buf.first_append = Some(Instant::now());
        }
        topic.wake.notify_one();
        Ok(Some(PendingAppend::new(Some(&slot), offset, -1)))
    }
}

/// A producer's open transaction in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OpenTxn {
    epoch: i16,
    ranges: OffsetRanges,
}

/// How a transaction ended, at its marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marker {
    producer_id: i64,
    epoch: i16,
    committed: bool,
}

/// The transactions of one partition.
#[derive(Debug, Default)]
pub(super) struct PartitionTxns {
    open: HashMap<i64, OpenTxn>,
    /// `open` as the store holds it (what a failed flush rolls back to).
    committed_open: HashMap<i64, OpenTxn>,
    markers: BTreeMap<i64, Marker>,
    /// Records of aborted transactions: first offset to (last offset,
    /// the abort marker's offset), disjoint.
    aborted: BTreeMap<i64, (i64, i64)>,
}

impl PartitionTxns {
    /// The first offset of any open transaction.
    pub(super) fn first_open(&self) -> Option<i64> {
        self.open
            .values()
            .filter_map(|t| t.ranges.first().map(|r| r.0))
            .min()
    }

    /// The first offset of a producer's transaction open here.
    pub(super) fn open_start(&self, producer_id: i64) -> Option<i64> {
        self.open
            .get(&producer_id)
            .and_then(|t| t.ranges.first().map(|r| r.0))
    }

    /// The first offset the topic's table may not take in yet: that of
    /// the first transaction open here, in the log or in the store (a
    /// marker not flushed yet still holds its transaction's records back,
    /// and so does a batch whose flush is committed but not yet applied
    /// here).
    pub(super) fn table_boundary(&self) -> Option<i64> {
        self.open
            .values()
            .chain(self.committed_open.values())
            .filter_map(|t| t.ranges.first().map(|r| r.0))
            .min()
    }

    /// No transaction has touched the partition (or all it left is below
    /// the log start).
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
            && self.committed_open.is_empty()
            && self.markers.is_empty()
            && self.aborted.is_empty()
    }

    /// Adds a transactional batch; returns the transaction as it stands.
    pub(super) fn add_batch(
        &mut self,
        topic: &str,
        partition: i32,
        producer: (i64, i16),
        first: i64,
        last: i64,
    ) -> OpenTransactionRecord {
        let t = self.open.entry(producer.0).or_insert_with(|| OpenTxn {
            epoch: producer.1,
            ranges: Vec::new(),
        });
        t.epoch = producer.1;
        match t.ranges.last_mut() {
            Some(r) if r.1 + 1 == first => r.1 = last,
            _ => t.ranges.push((first, last)),
        }
        OpenTransactionRecord {
            topic: topic.to_string(),
            partition,
            producer_id: producer.0,
            producer_epoch: producer.1,
            ranges: t.ranges.clone(),
        }
    }

    /// Ends the producer's open transaction with a marker at `offset`;
    /// None when it has none open here.
    pub(super) fn end(
        &mut self,
        topic: &str,
        partition: i32,
        producer: (i64, i16),
        offset: i64,
        committed: bool,
    ) -> Option<TransactionMarkerRecord> {
        let t = self.open.remove(&producer.0)?;
        self.markers.insert(
            offset,
            Marker {
                producer_id: producer.0,
                epoch: producer.1,
                committed,
            },
        );
        if !committed {
            self.aborted
                .extend(t.ranges.iter().map(|&(a, b)| (a, (b, offset))));
        }
        Some(TransactionMarkerRecord {
            topic: topic.to_string(),
            partition,
            offset,
            producer_id: producer.0,
            producer_epoch: producer.1,
            committed,
            ranges: t.ranges,
        })
    }

    /// Takes in what the store holds (at load).
    pub(super) fn load(
        &mut self,
        open: &[&OpenTransactionRecord],
        markers: &[&TransactionMarkerRecord],
    ) {
        for o in open {
            let t = OpenTxn {
                epoch: o.producer_epoch,
                ranges: o.ranges.clone(),
            };
            self.open.insert(o.producer_id, t.clone());
            self.committed_open.insert(o.producer_id, t);
        }
        for m in markers {
            self.markers.insert(
                m.offset,
                Marker {
                    producer_id: m.producer_id,
                    epoch: m.producer_epoch,
                    committed: m.committed,
                },
            );
            if !m.committed {
                self.aborted
                    .extend(m.ranges.iter().map(|&(a, b)| (a, (b, m.offset))));
            }
        }
    }

    /// A flush committed this change of an open transaction.
    pub(super) fn committed(&mut self, o: &OpenTransactionRecord) {
        if o.ranges.is_empty() {
            self.committed_open.remove(&o.producer_id);
        } else {
            self.committed_open.insert(
                o.producer_id,
                OpenTxn {
                    epoch: o.producer_epoch,
                    ranges: o.ranges.clone(),
                },
            );
        }
    }

    /// Back to what the store holds after a failed flush: nothing at or
    /// past the high watermark was written.
    pub(super) fn roll_back(&mut self, high_watermark: i64) {
        self.open = self.committed_open.clone();
        self.markers.split_off(&high_watermark);
        // An abort is undone with its marker.
        self.aborted
            .retain(|_, (_, marker)| *marker < high_watermark);
    }

    /// Forgets what lies wholly below the log start.
    pub(super) fn forget_below(&mut self, start: i64) {
        self.markers = self.markers.split_off(&start);
        self.aborted.retain(|_, (last, _)| *last >= start);
    }

    /// The markers and aborted records in [from, to).
    pub(super) fn view(&self, from: i64, to: i64) -> TxnView {
        let markers = self
            .markers
            .range(from..to)
            .map(|(o, m)| (*o, *m))
            .collect();
        let mut aborted: Vec<(i64, i64)> = self
            .aborted
            .range(..to)
            .rev()
            .take_while(|(_, (last, _))| *last >= from)
            .map(|(a, (b, _))| (*a, *b))
            .collect();
        aborted.reverse();
        TxnView { markers, aborted }
    }
}

/// The transactions a read's batches may meet.
#[derive(Debug, Default)]
pub(super) struct TxnView {
    markers: Vec<(i64, Marker)>,
    aborted: Vec<(i64, i64)>,
}

impl TxnView {
    /// No marker and no aborted record.
    pub(super) fn is_empty(&self) -> bool {
        self.markers.is_empty() && self.aborted.is_empty()
    }

    /// Whether the row at `offset` is no record a reader of committed
    /// data sees: a marker, or a record of an aborted transaction.
    pub(super) fn hides(&self, offset: i64) -> bool {
        self.marker(offset).is_some() || self.is_aborted(offset)
    }

    fn marker(&self, offset: i64) -> Option<Marker> {
        self.markers
            .binary_search_by_key(&offset, |(o, _)| *o)
            .ok()
            .map(|i| self.markers[i].1)
    }

    fn any_marker(&self, first: i64, last: i64) -> bool {
        self.markers.iter().any(|(o, _)| (first..=last).contains(o))
    }

    fn is_aborted(&self, offset: i64) -> bool {
        let i = self.aborted.partition_point(|(a, _)| *a <= offset);
        i > 0 && self.aborted[i - 1].1 >= offset
    }

    fn any_aborted(&self, first: i64, last: i64) -> bool {
        self.aborted.iter().any(|(a, b)| *a <= last && *b >= first)
    }

    /// The batches of a read as a client gets them: a marker's row as its
    /// control batch; for `committed_only`, nothing at or past `end` (the
    /// LSO) and no record of an aborted transaction. Batches with nothing
    /// to change are passed on as they are.
    pub(super) fn shape(
        &self,
        batches: Vec<Bytes>,
        end: i64,
        committed_only: bool,
    ) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(batches.len());
        for bytes in batches {
            let split = records::split_batches(bytes)
                .map_err(|e| StorageError::Corrupt(format!("a batch read back: {e}")))?;
            for b in split {
                let (first, last) = (b.header.base_offset, b.header.last_offset());
                if first >= end {
                    return Ok(out);
                }
                let control = b.header.is_control();
                let cut = last >= end
                    || (!control && self.any_marker(first, last))
                    || (committed_only && !control && self.any_aborted(first, last));
                if !cut {
                    out.push(b.bytes);
                    continue;
                }
                let recs = b
                    .records(MAX_UNCOMPRESSED_BATCH)
                    .map_err(|e| StorageError::Corrupt(format!("a batch read back: {e}")))?;
                let mut run = Vec::new();
                let flush = |run: &mut Vec<records::Record>, out: &mut Vec<Bytes>| {
                    if !run.is_empty() {
                        out.push(RawBatch::keep(&b.header, run));
                        run.clear();
                    }
                };
                for r in recs {
                    let offset = first + i64::from(r.offset_delta);
                    if offset >= end {
                        break;
                    }
                    if let Some(m) = self.marker(offset).filter(|_| !control) {
                        flush(&mut run, &mut out);
                        out.push(records::marker_batch(
                            offset,
                            b.header.base_timestamp + r.timestamp_delta,
                            (m.producer_id, m.epoch),
                            m.committed,
                            0,
                            b.header.partition_leader_epoch,
                        ));
                    } else if !(committed_only && !control && self.is_aborted(offset)) {
                        run.push(r);
                    } else {
                        flush(&mut run, &mut out);
                    }
                }
                flush(&mut run, &mut out);
                if last >= end {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_protocol::records::BatchBuilder;

    /// A plain batch of records at `first..=last`, as a read rebuilds them.
    fn rows(first: i64, last: i64) -> Bytes {
        let mut b = BatchBuilder::new(first, 1, 0);
        for o in first..=last {
            b.push(o, 1, Some(b"k"), Some(b"v"), &[]);
        }
        b.finish(0)
    }

    /// (first offset, last offset, control) of each batch.
    fn shape_of(batches: &[Bytes]) -> Vec<(i64, i64, bool)> {
        batches
            .iter()
            .flat_map(|b| records::split_batches(b.clone()).unwrap())
            .map(|b| {
                (
                    b.header.base_offset,
                    b.header.last_offset(),
                    b.header.is_control(),
                )
            })
            .collect()
    }

    #[test]
    fn markers_become_control_batches_and_read_committed_drops_aborted_records_and_stops_at_the_lso(
    ) {
        let mut t = PartitionTxns::default();
        // Producer 7: 0..=2 aborted (marker 3). Producer 8: 4..=5 committed (marker 8).
        // Producer 9: 6..=7 still open.
        t.add_batch("t", 0, (7, 0), 0, 2);
        t.add_batch("t", 0, (8, 0), 4, 5);
        t.add_batch("t", 0, (9, 0), 6, 7);
        t.end("t", 0, (7, 0), 3, false).unwrap();
        t.end("t", 0, (8, 0), 8, true).unwrap();
        assert_eq!(t.first_open(), Some(6));
        let view = t.view(0, 9);
        let all = view.shape(vec![rows(0, 8)], 9, false).unwrap();
        assert_eq!(
            shape_of(&all),
            vec![(0, 2, false), (3, 3, true), (4, 7, false), (8, 8, true)]
        );
        let committed = view.shape(vec![rows(0, 8)], 6, true).unwrap();
        assert_eq!(shape_of(&committed), vec![(3, 3, true), (4, 5, false)]);
        // A batch with nothing to change is passed on as it is.
        let untouched = rows(4, 5);
        assert_eq!(
            view.shape(vec![untouched.clone()], 6, true).unwrap(),
            vec![untouched]
        );
    }

    #[test]
    fn a_failed_flush_rolls_back_markers_and_open_transactions() {
        let mut t = PartitionTxns::default();
        let open = t.add_batch("t", 0, (7, 0), 0, 2);
        t.committed(&open);
        t.end("t", 0, (7, 0), 3, false).unwrap();
        t.roll_back(3);
        assert!(t.open.contains_key(&7));
        assert_eq!(t.view(0, 10).markers.len(), 0);
        assert!(!t.view(0, 10).any_aborted(0, 10));
        t.end("t", 0, (7, 1), 3, false).unwrap();
        t.forget_below(4);
        assert!(t.view(0, 10).markers.is_empty() && t.view(0, 10).aborted.is_empty());
    }
}
