//! The SQL of Kafka transactions: the coordinator's state of each
//! transactional id, and per partition the open transactions and the
//! markers that ended them (`ddl/130-transactions.sql`). Offset ranges,
//! partitions and pending group offsets are stored as JSON.

use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

use super::{
    CommittedOffset, FlushCommit, OffsetRanges, OpenTransactionRecord, TransactionMarkerRecord,
    TransactionRecord,
};
use crate::error::{Result, StorageError};

type Tx<'a, 'b> = &'a mut sqlx::Transaction<'b, sqlx::Any>;

fn corrupt(what: &str, text: &str) -> StorageError {
    StorageError::Corrupt(format!("stored {what} is not what floe writes: {text:?}"))
}

/// Offset ranges as JSON pairs.
pub(super) fn encode_ranges(ranges: &OffsetRanges) -> String {
    json!(ranges.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>()).to_string()
}

/// Offset ranges from JSON pairs.
pub(super) fn decode_ranges(text: &str) -> Result<OffsetRanges> {
    serde_json::from_str::<Vec<(i64, i64)>>(text).map_err(|_| corrupt("offset ranges", text))
}

/// Writes what a flush changes in the partitions' transactions: markers
/// first (a marker ends the transaction it names), then the transactions
/// still open (an empty list of ranges: none open any more).
pub(super) async fn apply_flush(tx: Tx<'_, '_>, c: &FlushCommit) -> Result<()> {
    for m in &c.markers {
        sqlx::query(
            "INSERT INTO transaction_markers (topic, partition_id, marker_offset, producer_id, producer_epoch, committed, ranges)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&m.topic)
        .bind(m.partition)
        .bind(m.offset)
        .bind(m.producer_id)
        .bind(m.producer_epoch as i32)
        .bind(m.committed as i32)
        .bind(encode_ranges(&m.ranges))
        .execute(&mut **tx)
        .await?;
    }
    for o in &c.open_transactions {
        if o.ranges.is_empty() {
            sqlx::query(
                "DELETE FROM open_transactions WHERE topic = $1 AND partition_id = $2 AND producer_id = $3",
            )
            .bind(&o.topic)
            .bind(o.partition)
            .bind(o.producer_id)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO open_transactions (topic, partition_id, producer_id, producer_epoch, ranges)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (topic, partition_id, producer_id)
                 DO UPDATE SET producer_epoch = $4, ranges = $5",
            )
            .bind(&o.topic)
            .bind(o.partition)
            .bind(o.producer_id)
            .bind(o.producer_epoch as i32)
            .bind(encode_ranges(&o.ranges))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

pub(super) async fn list_open(pool: &AnyPool, topic: &str) -> Result<Vec<OpenTransactionRecord>> {
    let rows = sqlx::query(
        "SELECT partition_id, producer_id, producer_epoch, ranges FROM open_transactions
         WHERE topic = $1 ORDER BY partition_id, producer_id",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenTransactionRecord {
                topic: topic.to_string(),
                partition: r.get("partition_id"),
                producer_id: r.get("producer_id"),
                producer_epoch: r.get::<i32, _>("producer_epoch") as i16,
                ranges: decode_ranges(r.get("ranges"))?,
            })
        })
        .collect()
}

pub(super) async fn list_markers(
    pool: &AnyPool,
    topic: &str,
) -> Result<Vec<TransactionMarkerRecord>> {
    let rows = sqlx::query(
        "SELECT partition_id, marker_offset, producer_id, producer_epoch, committed, ranges
         FROM transaction_markers WHERE topic = $1 ORDER BY partition_id, marker_offset",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TransactionMarkerRecord {
                topic: topic.to_string(),
                partition: r.get("partition_id"),
                offset: r.get("marker_offset"),
                producer_id: r.get("producer_id"),
                producer_epoch: r.get::<i32, _>("producer_epoch") as i16,
                committed: r.get::<i32, _>("committed") != 0,
                ranges: decode_ranges(r.get("ranges"))?,
            })
        })
        .collect()
}

/// Drops a deleted topic's transaction rows.
pub(super) async fn delete_topic(tx: Tx<'_, '_>, topic: &str) -> Result<()> {
    for table in ["open_transactions", "transaction_markers"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE topic = $1"))
            .bind(topic)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Drops the markers wholly below the partitions' log starts.
pub(super) async fn forget_below(tx: Tx<'_, '_>, topic: &str, starts: &[(i32, i64)]) -> Result<()> {
    for &(partition, start) in starts {
        sqlx::query(
            "DELETE FROM transaction_markers WHERE topic = $1 AND partition_id = $2 AND marker_offset < $3",
        )
        .bind(topic)
        .bind(partition)
        .bind(start)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn encode_offsets(offsets: &[(String, CommittedOffset)]) -> String {
    Value::Array(
        offsets
            .iter()
            .map(|(group, o)| {
                json!({
                    "group": group, "topic": o.topic, "partition": o.partition,
                    "offset": o.offset, "leader_epoch": o.leader_epoch,
                    "metadata": o.metadata, "time": o.commit_time_ms,
                })
            })
            .collect(),
    )
    .to_string()
}

fn decode_offsets(text: &str) -> Result<Vec<(String, CommittedOffset)>> {
    let bad = || corrupt("transaction offsets", text);
    let items: Vec<Value> = serde_json::from_str(text).map_err(|_| bad())?;
    items
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(bad);
            let i = |k: &str| v[k].as_i64().ok_or_else(bad);
            Ok((
                s("group")?,
                CommittedOffset {
                    topic: s("topic")?,
                    partition: i("partition")? as i32,
                    offset: i("offset")?,
                    leader_epoch: i("leader_epoch")? as i32,
                    metadata: v["metadata"].as_str().map(str::to_string),
                    commit_time_ms: i("time")?,
                },
            ))
        })
        .collect()
}

pub(super) async fn load(pool: &AnyPool) -> Result<Vec<TransactionRecord>> {
    let rows = sqlx::query("SELECT * FROM transactions ORDER BY transactional_id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let partitions: String = r.get("partitions");
            Ok(TransactionRecord {
                transactional_id: r.get("transactional_id"),
                producer_id: r.get("producer_id"),
                producer_epoch: r.get::<i32, _>("producer_epoch") as i16,
                state: r.get("state"),
                timeout_ms: r.get("timeout_ms"),
                partitions: serde_json::from_str(&partitions)
                    .map_err(|_| corrupt("transaction partitions", &partitions))?,
                group_offsets: decode_offsets(r.get("group_offsets"))?,
                started_ms: r.get("started_ms"),
                updated_ms: r.get("updated_ms"),
                previous_producer: match r.get::<i64, _>("previous_producer_id") {
                    -1 => None,
                    id => Some((id, r.get::<i32, _>("previous_producer_epoch") as i16)),
                },
            })
        })
        .collect()
}

pub(super) async fn save(tx: Tx<'_, '_>, t: &TransactionRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO transactions (transactional_id, producer_id, producer_epoch, state, timeout_ms,
             partitions, group_offsets, started_ms, updated_ms, previous_producer_id,
             previous_producer_epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (transactional_id) DO UPDATE SET producer_id = $2, producer_epoch = $3,
             state = $4, timeout_ms = $5, partitions = $6, group_offsets = $7, started_ms = $8,
             updated_ms = $9, previous_producer_id = $10, previous_producer_epoch = $11",
    )
    .bind(&t.transactional_id)
    .bind(t.producer_id)
    .bind(t.producer_epoch as i32)
    .bind(&t.state)
    .bind(t.timeout_ms)
    .bind(json!(t.partitions).to_string())
    .bind(encode_offsets(&t.group_offsets))
    .bind(t.started_ms)
    .bind(t.updated_ms)
    .bind(t.previous_producer.map_or(-1, |p| p.0))
    .bind(t.previous_producer.map_or(-1, |p| p.1 as i32))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_offsets_round_trip() {
        let ranges = vec![(0, 4), (9, 9)];
        assert_eq!(decode_ranges(&encode_ranges(&ranges)).unwrap(), ranges);
        let offsets = vec![(
            "g".to_string(),
            CommittedOffset {
                topic: "t".into(),
                partition: 3,
                offset: 42,
                leader_epoch: -1,
                metadata: None,
                commit_time_ms: 7,
            },
        )];
        assert_eq!(decode_offsets(&encode_offsets(&offsets)).unwrap(), offsets);
        assert!(decode_ranges("[1]").is_err());
    }
}
