//! The append path: a produce's batches for one partition are checked,
//! given offsets in memory, deduplicated for idempotent producers
//! (`idempotence.rs`) and added to the topic's flush buffer; the produce
//! is answered when that flush commits ([`PendingAppend`]).

use super::*;

impl Log {
    /// Appends one partition's produced batches. Returns once the records
    /// have offsets; await [`PendingAppend::committed`] before acknowledging.
    pub async fn append(
        &self,
        topic_name: &str,
        partition: i32,
        records: Bytes,
    ) -> Result<PendingAppend> {
        self.append_checked(topic_name, partition, records, None)
            .await
    }

    /// [`Log::append`] with a check of every record: if any fails, the
    /// whole request is refused with every failure and nothing is stored.
    pub async fn append_checked(
        &self,
        topic_name: &str,
        partition: i32,
        records: Bytes,
        mut check: Option<&mut RecordCheck<'_>>,
    ) -> Result<PendingAppend> {
        let topic = self
            .topic(topic_name)
            .ok_or_else(|| StorageError::UnknownTopic(topic_name.to_string()))?;
        let part = topic
            .partition(partition)
            .ok_or_else(|| StorageError::UnknownPartition(topic_name.to_string(), partition))?;
        // Read the settings in place: cloning the config map on every
        // produce is work the hot path does not need.
        let (max_message, log_append, compacted) = {
            let c = read_lock(&topic.config);
            (c.max_message_bytes(), c.log_append_time(), c.compacted())
        };
        let mut batches = records::split_batches(records)
            .map_err(|e| StorageError::CorruptMessage(e.to_string()))?;
        if batches.is_empty() {
            return Err(StorageError::CorruptMessage(
                "produce request without record batches".into(),
            ));
        }
        let mut decoded = Vec::with_capacity(batches.len());
        let mut record_index = 0i32;
        let mut rejected = Vec::new();
        for b in batches.iter_mut() {
            if b.bytes.len() > max_message {
                return Err(StorageError::MessageTooLarge {
                    size: b.bytes.len(),
                    max: max_message,
                });
            }
            if b.header.is_control() {
                return Err(StorageError::InvalidRecord {
                    index: record_index,
                    message: "producers may not send control batches".into(),
                });
            }
            if b.header.is_transactional() && b.header.producer_id < 0 {
                return Err(StorageError::InvalidRecord {
                    index: record_index,
                    message: "a transactional batch without a producer id".into(),
                });
            }
            let mut recs = b
                .records(MAX_UNCOMPRESSED_BATCH)
                .map_err(|e| StorageError::CorruptMessage(e.to_string()))?;
            let mut rewritten = false;
            for r in recs.iter_mut() {
                let ts = b.header.base_timestamp.saturating_add(r.timestamp_delta);
                if !(-segment::MAX_TIMESTAMP_MS..=segment::MAX_TIMESTAMP_MS).contains(&ts) {
                    return Err(StorageError::InvalidTimestamp(ts));
                }
                for h in &r.headers {
                    if std::str::from_utf8(&h.key).is_err() {
                        return Err(StorageError::InvalidRecord {
                            index: record_index,
                            message: "header key is not valid UTF-8".into(),
                        });
                    }
                }
                // A compacted topic keeps the latest record per key: a
                // record without one could never be compacted (Kafka
                // refuses it the same way).
                if compacted && r.key.is_none() {
                    rejected.push((
                        record_index,
                        format!("Compacted topic cannot accept message without key in topic partition {topic_name}-{partition}."),
                    ));
                } else if let Some(check) = check.as_mut() {
                    match check(r) {
                        Ok(changed) => rewritten |= changed,
                        Err(why) => rejected.push((record_index, why)),
                    }
                }
                record_index += 1;
            }
            if rewritten {
                *b = RawBatch::rebuild(&b.header, &recs);
            }
            decoded.push(recs);
        }
        if !rejected.is_empty() {
            return Err(StorageError::InvalidRecords(rejected));
        }

        // Backpressure: wait while the broker's buffers (every topic's,
        // from append to commit) hold their budget. This topic flushes now;
        // the others flush at their next tick anyway.
        loop {
            let freed = self.buffers.freed();
            if !self.buffers.full() {
                break;
            }
            topic.wake.notify_one();
            freed.await;
        }

        let append_time = now_ms();
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
        let plan = plan_idempotence(&st, &batches)?;
        if let Some(dup) = plan.duplicate {
            debug!(
                topic = topic_name,
                partition,
                base_offset = dup.base_offset,
                "duplicate batch"
            );
            return Ok(PendingAppend::new(
                dup.slot.as_deref(),
                dup.base_offset,
                if log_append { append_time } else { -1 },
            ));
        }
        let first_offset = st.next_offset;
        let slot = buf.slot.clone();
        for (b, recs) in batches.iter().zip(&decoded) {
            let base = st.next_offset;
            let count = recs.len() as i64;
            if count == 0 {
                continue;
            }
            let mut stamped = BytesMut::from(&b.bytes[..]);
            stamp_batch(&mut stamped, base, st.leader_epoch);
            if log_append {
                records::stamp_log_append_time(&mut stamped, append_time);
            }
            let batch_ts_type = if log_append {
                1
            } else {
                b.header.timestamp_type()
            };
            for (i, r) in recs.iter().enumerate() {
                let ts = if batch_ts_type == 1 {
                    if log_append {
                        append_time
                    } else {
                        b.header.max_timestamp
                    }
                } else {
                    b.header.base_timestamp + r.timestamp_delta
                };
                buf.rows
                    .push(partition, base + i as i64, ts, batch_ts_type, r);
            }
            st.next_offset += count;
            let h = &b.header;
            if h.producer_id >= 0 {
                let entry = st.producers.entry(h.producer_id).or_default();
                if entry.epoch != h.producer_epoch {
                    entry.recent.clear();
                }
                entry.epoch = h.producer_epoch;
                entry.last_timestamp = Some(if log_append {
                    append_time
                } else {
                    h.max_timestamp
                });
                entry.recent.push_back(BatchMeta {
                    first_seq: h.base_sequence,
                    last_seq: h.last_sequence(),
                    base_offset: base,
                    slot: Some(slot.clone()),
                });
                while entry.recent.len() > PRODUCER_RECENT_BATCHES {
                    entry.recent.pop_front();
                }
                let rec = entry.record(topic_name, partition, h.producer_id);
                buf.producers.insert((partition, h.producer_id), rec);
                if h.is_transactional() {
                    let producer = (h.producer_id, h.producer_epoch);
                    let open =
                        st.txns
                            .add_batch(topic_name, partition, producer, base, base + count - 1);
                    buf.open_txns.insert((partition, h.producer_id), open);
                }
            }
            buf.held.add(b.bytes.len());
            buf.tail
                .push((partition, base, base + count - 1, stamped.freeze()));
        }
        drop(st);
        if buf.first_append.is_none() {
            buf.first_append = Some(Instant::now());
            topic.wake.notify_one();
        }
        if buf.bytes() >= self.cfg.flush_bytes {
            topic.wake.notify_one();
        }
        Ok(PendingAppend::new(
            Some(&slot),
            first_offset,
            if log_append { append_time } else { -1 },
        ))
    }
}
