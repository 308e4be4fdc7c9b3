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
