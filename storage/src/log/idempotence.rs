//! Kafka's idempotent-producer rules for the batches of one produce.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Duplicate {
    pub(super) base_offset: i64,
    pub(super) slot: Option<Arc<FlushSlot>>,
}

pub(super) struct IdempotencePlan {
    pub(super) duplicate: Option<Duplicate>,
}

/// Kafka's idempotence rules for the batches of one produce, checked before
/// anything is appended so that a refused request changes nothing.
pub(super) fn plan_idempotence(
    st: &PartitionState,
    batches: &[RawBatch],
) -> Result<IdempotencePlan> {
    let mut expected: HashMap<i64, (i16, Option<i32>)> = HashMap::new();
    for (i, b) in batches.iter().enumerate() {
        let h = &b.header;
        if h.producer_id < 0 {
            continue;
        }
        let (epoch, last_seq) = *expected.entry(h.producer_id).or_insert_with(|| {
            match st.producers.get(&h.producer_id) {
                Some(e) => (e.epoch, e.recent.back().map(|b| b.last_seq)),
                None => (h.producer_epoch, None),
            }
        });
        if h.producer_epoch < epoch {
            return Err(StorageError::InvalidProducerEpoch {
                current: epoch,
                got: h.producer_epoch,
            });
        }
        if h.producer_epoch == epoch {
            if i == 0 {
                if let Some(e) = st.producers.get(&h.producer_id) {
                    if e.epoch == h.producer_epoch {
                        if let Some(d) = e.recent.iter().find(|m| {
                            m.first_seq == h.base_sequence && m.last_seq == h.last_sequence()
                        }) {
                            return Ok(IdempotencePlan {
                                duplicate: Some(Duplicate {
                                    base_offset: d.base_offset,
                                    slot: d.slot.clone(),
                                }),
                            });
                        }
                    }
                }
            }
            let want = match last_seq {
                Some(s) if s == i32::MAX => 0,
                Some(s) => s + 1,
                None => 0,
            };
            if last_seq.is_some() && h.base_sequence != want {
                return Err(StorageError::OutOfOrderSequence {
                    expected: want as i64,
                    got: h.base_sequence,
                });
            }
            if last_seq.is_none() && h.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    expected: 0,
                    got: h.base_sequence,
                });
            }
        } else if h.base_sequence != 0 {
            // A new epoch starts its sequences at zero.
            return Err(StorageError::OutOfOrderSequence {
                expected: 0,
                got: h.base_sequence,
            });
        }
        expected.insert(h.producer_id, (h.producer_epoch, Some(h.last_sequence())));
    }
    Ok(IdempotencePlan { duplicate: None })
}

/// A producer a partition knows, as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The last sequence number of its last batch, -1 when none is known
    /// at this epoch (a marker at a new epoch starts it afresh).
    pub last_sequence: i32,
    /// Its last batch's timestamp, -1 when unknown (kept in memory only).
    pub last_timestamp: i64,
    /// The first offset of its transaction open here, -1 when none.
    pub txn_start_offset: i64,
}

impl TopicLog {
    /// The producers a partition keeps state for (DescribeProducers),
    /// by producer id.
    pub fn active_producers(&self, partition: i32) -> Result<Vec<ActiveProducer>> {
        let part = self.require_partition(partition)?;
        let st = lock(&part.state);
        let mut out: Vec<ActiveProducer> = st
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.recent.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp.unwrap_or(-1),
                txn_start_offset: st.txns.open_start(producer_id).unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        Ok(out)
    }
}
