//! The metadata store on SQL: one implementation for SQLite (the embedded
//! default) and PostgreSQL (several brokers), through sqlx's `Any` driver.
//! The statements are portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`, `UPDATE ... FROM (VALUES ...)`); what differs between the
//! two is opening and the DDL's types ([`super::ddl`]) and the locks a
//! transaction takes ([`SqlStore::lock`]).
//!
//! Booleans are read as integers (`CASE WHEN ... THEN 1 ELSE 0 END`):
//! SQLite has no boolean values, and the `Any` driver refuses a column
//! declared BOOLEAN there.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;
use sqlx::{AnyPool, Connection, Row};

use super::ddl::Dialect;
use super::notify::{self, ChangeCounts, Changed};
use super::statement::Statement;
use super::transactions;
use super::{
    placement, runs, AclRecord, BrokerRecord, CommittedOffset, ConsumerProtocolGroupRecord,
    ConsumerProtocolMemberRecord, CoordinatorTerm, FileRecord, FileReplacement, FlushCommit,
    GroupMemberRecord, GroupRecord, Keeps, LeaderMove, ListenerAddress, MetadataStore,
    OpenTransactionRecord, PartitionRecord, ProducerStateRecord, RegistryRecord, SchemaRecord,
    ScramCredentialRecord, SegmentRecord, SubjectVersionRecord, TableCommitRecord, TablePending,
    TopicLeader, TopicRecord, TransactionMarkerRecord, TransactionRecord,
};
use crate::error::{Result, StorageError};

/// Where broker configs set at run time live in the `cluster` table: a
/// row per config, named with this prefix.
const BROKER_CONFIG: &str = "broker.config.";

/// The metadata store on a SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// Other brokers' changes as notified (PostgreSQL only).
    changes: Option<tokio::sync::watch::Receiver<ChangeCounts>>,
}

/// What a transaction locks for the statements after its first read to
/// see what that read saw: SQLite serializes every writer (one
/// connection), PostgreSQL's READ COMMITTED does not, so there a
/// transaction that reads, decides and writes takes an advisory lock on
/// what it decides about, held until it ends.
enum Lock<'a> {
    /// Topic names (creation checks names against each other).
    TopicNames,
    /// One topic's files, log starts and table.
    Topic(&'a str),
    /// Schema ids and subject versions.
    Registry,
    /// Which broker leads which topic.
    Leadership,
}

impl SqlStore {
    /// A store on an open pool whose DDL is applied.
    pub(super) fn new(pool: AnyPool, dialect: Dialect) -> Self {
        SqlStore {
            pool,
            dialect,
            changes: None,
        }
    }

    /// Listens for other brokers' changes on the database at `url`.
    pub(super) fn listening(mut self, url: &str) -> Self {
        self.changes = Some(notify::listen(url.to_string()));
        self
    }

    /// Tells the other brokers, when `tx` commits, that `what` changed (a
    /// no-op on SQLite, which one broker uses alone).
    async fn notify(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, what: Changed) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        // Called in FROM and not selected: `Any` cannot decode `void`.
        sqlx::query("SELECT 1 AS one FROM pg_notify($1, $2)")
            .bind(notify::CHANNEL)
            .bind(what.payload())
            .fetch_one(&mut **tx)
            .await?;
        Ok(())
    }

    /// Marks a change of the registry (see `registry_change`) and tells the
    /// other brokers.
    async fn registry_changed(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        self.mark_change(tx, REGISTRY_CHANGE, Changed::Registry)
            .await
    }

    /// Marks a change of `what` in the `cluster` row `token` (a new
    /// random value) and tells the other brokers.
    async fn mark_change(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        token: &str,
        what: Changed,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = $2",
        )
        .bind(token)
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&mut **tx)
        .await?;
        self.notify(tx, what).await
    }

    /// The value of the `cluster` row `token`.
    async fn change_token(&self, token: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM cluster WHERE name = $1")
                .bind(token)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The pool (tests close it).
    #[cfg(test)]
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Takes `lock` until `tx` ends (a no-op on SQLite, see [`Lock`]).
    async fn lock(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, lock: Lock<'_>) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        let key = match lock {
            Lock::TopicNames => "floe:topic-names".to_string(),
            Lock::Topic(t) => format!("floe:topic:{t}"),
            Lock::Registry => "floe:registry".to_string(),
            Lock::Leadership => "floe:leadership".to_string(),
        };
        // Called in FROM and not selected: `Any` cannot decode `void`.
        sqlx::query("SELECT 1 AS one FROM pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
        Ok(())
    }

    /// Begins a write of group state in `term`: refused unless the
    /// coordinator placement still names the term's broker at its epoch.
    /// On PostgreSQL the placement row stays share-locked until the write
    /// ends, so a move of the coordinator waits for the write to commit,
    /// and a write that began after the move sees it and is refused.
    async fn begin_in_term(
        &self,
        term: CoordinatorTerm,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR SHARE",
            _ => "",
        };
        let held = sqlx::query(&format!(
            "SELECT leader_id, leader_epoch FROM partitions
             WHERE topic = $1 AND partition_id = 0{lock}"
        ))
        .bind(placement::GROUP_COORDINATOR)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| {
            (
                r.get::<i32, _>("leader_id"),
                r.get::<i32, _>("leader_epoch"),
            )
        });
        if held != Some((term.broker_id, term.epoch)) {
            return Err(StorageError::Fenced(format!(
                "group coordinator {} at epoch {}",
                term.broker_id, term.epoch
            )));
        }
        Ok(tx)
    }
}

/// A `broker_registrations` row.
fn broker_record(r: &sqlx::any::AnyRow) -> BrokerRecord {
    BrokerRecord {
        broker_id: r.get("broker_id"),
        incarnation: r.get("incarnation"),
        host: r.get("host"),
        port: r.get("port"),
        rack: r.get("rack"),
        lease_expires_ms: r.get("lease_expires_ms"),
        listeners: Vec::new(),
    }
}

/// The `cluster` row whose value changes with the registry.
const REGISTRY_CHANGE: &str = "registry.change";

/// `query` with an ACL's seven columns bound to $1..$7.
fn bind_acl<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    a: &'q AclRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(i32::from(a.resource_type))
        .bind(&a.resource_name)
        .bind(i32::from(a.pattern_type))
        .bind(&a.principal)
        .bind(&a.host)
        .bind(i32::from(a.operation))
        .bind(i32::from(a.permission))
}

/// The `cluster` row whose value changes with every change of the ACLs.
const ACLS_CHANGE: &str = "acls.change";

/// The leader of a topic's first partition.
async fn topic_leader(conn: &mut sqlx::AnyConnection, topic: &str) -> Result<Option<i32>> {
    Ok(
        sqlx::query("SELECT leader_id FROM partitions WHERE topic = $1 AND partition_id = 0")
            .bind(topic)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.get("leader_id")),
    )
}

/// A topic's partitions, in order.
async fn partitions(conn: &mut sqlx::AnyConnection, topic: &str) -> Result<Vec<PartitionRecord>> {
    let rows = sqlx::query(
        "SELECT partition_id, leader_id, leader_epoch, high_watermark, log_start_offset
         FROM partitions WHERE topic = $1 ORDER BY partition_id",
    )
    .bind(topic)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| PartitionRecord {
            partition: r.get("partition_id"),
            leader_id: r.get("leader_id"),
            leader_epoch: r.get("leader_epoch"),
            high_watermark: r.get("high_watermark"),
            log_start_offset: r.get("log_start_offset"),
        })
        .collect())
}

/// Every topic's leader (its first partition's), partition count and
/// leader epochs.
async fn topic_leaders(conn: &mut sqlx::AnyConnection) -> Result<Vec<TopicLeader>> {
    let rows = sqlx::query(
        "SELECT topic, partition_id, leader_id, leader_epoch FROM partitions
         ORDER BY topic, partition_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut leaders: Vec<TopicLeader> = Vec::new();
    for r in &rows {
        let topic: String = r.get("topic");
        let epoch: i32 = r.get("leader_epoch");
        match leaders.last_mut() {
            Some(l) if l.topic == topic => {
                l.partitions += 1;
                l.epochs.push(epoch);
            }
            _ => leaders.push(TopicLeader {
                topic,
                leader_id: r.get("leader_id"),
                partitions: 1,
                epochs: vec![epoch],
            }),
        }
    }
    Ok(leaders)
}

async fn log_starts(conn: &mut sqlx::AnyConnection, topic: &str) -> Result<BTreeMap<i32, i64>> {
    Ok(
        sqlx::query("SELECT partition_id, log_start_offset FROM partitions WHERE topic = $1")
            .bind(topic)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| (r.get("partition_id"), r.get("log_start_offset")))
            .collect(),
    )
}

/// A committed file as the run index sees it.
struct IndexedFile {
    path: String,
    size_bytes: i64,
    runs: Vec<runs::Run>,
}

/// Every file of a topic with its runs (dead ones included), oldest first.
async fn files_with_runs(conn: &mut sqlx::AnyConnection, topic: &str) -> Result<Vec<IndexedFile>> {
    sqlx::query(
        "SELECT path, size_bytes, runs FROM files WHERE topic = $1 ORDER BY created_ms, path",
    )
    .bind(topic)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        let path: String = r.get("path");
        let runs = runs::decode(&path, r.get::<&[u8], _>("runs"))?;
        Ok(IndexedFile {
            path,
            size_bytes: r.get("size_bytes"),
            runs,
        })
    })
    .collect()
}

/// One flush's part of a commit (see [`MetadataStore::commit_flush`]).
/// A flush extends each partition's log exactly where it ends: per
/// partition, its first offset there, which must be the committed high
/// watermark.
fn flush_bases(c: &FlushCommit) -> BTreeMap<i32, i64> {
    let mut bases: BTreeMap<i32, i64> = BTreeMap::new();
    for s in &c.segments {
        let b = bases.entry(s.partition).or_insert(s.base_offset);
        *b = (*b).min(s.base_offset);
    }
    bases
}

/// Applies a batch of flushes as a few multi-row statements (every
/// partition's high watermark in one UPDATE, every file in one INSERT,
/// every producer state in one upsert) instead of several statements per
/// flush: each statement is a round trip to SQLite's thread, and a round
/// of a few hundred topics paid hundreds of them inside the transaction
/// every flush committed behind. False, with the transaction to roll back,
/// when any partition's condition fails or the batch does not suit (a
/// partition twice, two leaders): the caller then applies the flushes one
/// by one, which names the refused one.
async fn apply_together(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    commits: &[&FlushCommit],
) -> Result<bool> {
    let leader_id = commits[0].leader_id;
    let mut watermarks = Vec::new();
    let mut seen = HashSet::new();
    for c in commits {
        if c.leader_id != leader_id {
            return Ok(false);
        }
        let bases = flush_bases(c);
        for &(partition, epoch, hw) in &c.high_watermarks {
            if !seen.insert((c.topic.as_str(), partition)) {
                return Ok(false);
            }
            let base = bases.get(&partition).copied().unwrap_or(hw);
            watermarks.push((c.topic.as_str(), partition, epoch, base, hw));
        }
    }
    for chunk in watermarks.chunks(ROWS_PER_STATEMENT) {
        let mut q = Statement::new("UPDATE partitions SET high_watermark = v.column5 FROM (");
        q.values(chunk, |row, &(topic, partition, epoch, base, hw)| {
            row.bind(topic)
                .bind(partition)
                .bind(epoch)
                .bind(base)
                .bind(hw);
        });
        q.push(
            ") AS v WHERE partitions.topic = v.column1 AND partitions.partition_id = v.column2
             AND partitions.leader_epoch = v.column3 AND partitions.high_watermark = v.column4
             AND partitions.leader_id = ",
        )
        .bind(leader_id);
        if q.query().execute(&mut **tx).await?.rows_affected() != chunk.len() as u64 {
            return Ok(false);
        }
    }
    let files: Vec<(&FlushCommit, Vec<u8>)> = commits
        .iter()
        .map(|c| (*c, runs::encode(&c.segments)))
        .collect();
    for chunk in files.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            Statement::new("INSERT INTO files (path, topic, size_bytes, created_ms, runs) ");
        q.values(chunk, |row, (c, runs)| {
            row.bind(c.path.as_str())
                .bind(c.topic.as_str())
                .bind(c.size_bytes)
                .bind(c.now_ms)
                .bind(runs.as_slice());
        });
        q.query().execute(&mut **tx).await?;
    }
    // One row per producer and partition (an upsert may not touch a row
    // twice); the latest flush's state wins, as applied in order it would.
    let mut producers: BTreeMap<(&str, i32, i64), (&ProducerStateRecord, i64)> = BTreeMap::new();
    for c in commits {
        for p in &c.producers {
            producers.insert((&p.topic, p.partition, p.producer_id), (p, c.now_ms));
        }
    }
    let producers: Vec<_> = producers.into_values().collect();
    for chunk in producers.chunks(ROWS_PER_STATEMENT) {
        let mut q = Statement::new(
            "INSERT INTO producer_state (topic, partition_id, producer_id, producer_epoch, recent_batches, updated_ms) ",
        );
        q.values(chunk, |row, &(p, now_ms)| {
            row.bind(p.topic.as_str())
                .bind(p.partition)
                .bind(p.producer_id)
                .bind(p.producer_epoch as i32)
                .bind(encode_recent(&p.recent))
                .bind(now_ms);
        });
        q.push(
            " ON CONFLICT (topic, partition_id, producer_id) DO UPDATE SET
             producer_epoch = excluded.producer_epoch, recent_batches = excluded.recent_batches,
             updated_ms = excluded.updated_ms",
        );
        q.query().execute(&mut **tx).await?;
    }
    for c in commits {
        transactions::apply_flush(tx, c).await?;
    }
    Ok(true)
}

async fn apply_flush(tx: &mut sqlx::Transaction<'_, sqlx::Any>, c: &FlushCommit) -> Result<()> {
    let bases = flush_bases(c);
    // Every partition's condition in one statement per chunk: a flush of a
    // thousand partitions is a handful of statements, not a thousand.
    for chunk in c.high_watermarks.chunks(ROWS_PER_STATEMENT) {
        let mut q = Statement::new("UPDATE partitions SET high_watermark = v.column4 FROM (");
        q.values(chunk, |row, &(partition, epoch, hw)| {
            row.bind(partition)
                .bind(epoch)
                .bind(bases.get(&partition).copied().unwrap_or(hw))
                .bind(hw);
        });
        q.push(") AS v WHERE partitions.topic = ")
            .bind(c.topic.as_str())
            .push(" AND partitions.partition_id = v.column1 AND partitions.leader_id = ")
            .bind(c.leader_id)
            .push(
                " AND partitions.leader_epoch = v.column2 AND partitions.high_watermark = v.column3",
            );
        // In a savepoint, so that a refusal is explained against the
        // partitions as they were before it.
        let mut savepoint = (**tx).begin().await?;
        let done = q.query().execute(&mut *savepoint).await?;
        if done.rows_affected() != chunk.len() as u64 {
            savepoint.rollback().await?;
            return Err(refused_flush(tx, c, chunk, &bases).await);
        }
        savepoint.commit().await?;
    }
    insert_file(tx, &c.topic, &c.path, c.size_bytes, c.now_ms, &c.segments).await?;
    for p in &c.producers {
        sqlx::query(
            "INSERT INTO producer_state (topic, partition_id, producer_id, producer_epoch, recent_batches, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (topic, partition_id, producer_id)
             DO UPDATE SET producer_epoch = $4, recent_batches = $5, updated_ms = $6",
        )
        .bind(&p.topic)
        .bind(p.partition)
        .bind(p.producer_id)
        .bind(p.producer_epoch as i32)
        .bind(encode_recent(&p.recent))
        .bind(c.now_ms)
        .execute(&mut **tx)
        .await?;
    }
    transactions::apply_flush(tx, c).await
}

/// Rows a multi-row statement carries at most (SQLite binds at most 32 766
/// values in one statement).
const ROWS_PER_STATEMENT: usize = 500;

/// Why the high-watermark update of a flush matched fewer partitions than
/// it names: fenced by the leader or epoch, or the log ends elsewhere than
/// the flush starts. Called with the partitions as they were before the
/// update; the caller rolls the transaction back.
async fn refused_flush(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &FlushCommit,
    chunk: &[(i32, i32, i64)],
    bases: &BTreeMap<i32, i64>,
) -> StorageError {
    for &(partition, epoch, hw) in chunk {
        let fenced = || StorageError::Fenced(format!("{}-{partition} at epoch {epoch}", c.topic));
        let row = match sqlx::query(
            "SELECT leader_id, leader_epoch, high_watermark FROM partitions
             WHERE topic = $1 AND partition_id = $2",
        )
        .bind(&c.topic)
        .bind(partition)
        .fetch_optional(&mut **tx)
        .await
        {
            Ok(Some(row)) => row,
            Ok(None) => return fenced(),
            Err(e) => return e.into(),
        };
        if row.get::<i32, _>("leader_id") != c.leader_id
            || row.get::<i32, _>("leader_epoch") != epoch
        {
            return fenced();
        }
        let committed: i64 = row.get("high_watermark");
        let base = bases.get(&partition).copied().unwrap_or(hw);
        if committed != base {
            return StorageError::LogInconsistent {
                topic: c.topic.clone(),
                partition,
                offset: base,
                detail: format!("a flush starts there but the log ends at {committed}"),
            };
        }
    }
    StorageError::LogInconsistent {
        topic: c.topic.clone(),
        partition: chunk.first().map_or(-1, |h| h.0),
        offset: -1,
        detail: "a flush names a partition twice".into(),
    }
}

/// Checks that a rewrite's new segments hold what it may keep of the old
/// runs (partition → (base, last, rows)) under the log starts: from the
/// log start on (rows below it may go), every row (`Keeps::Every`), or
/// for key compaction fewer rows over exactly the same offsets, ending
/// with the old last row (`Keeps::LatestPerKey`). Where a cut falls inside
/// a run that already has gaps, how many rows it keeps above the cut is
/// not known here, only at most how many; wherever old runs have gaps, the
/// new segments must cover the same offsets as for key compaction.
fn check_kept(
    topic: &str,
    old: &BTreeMap<i32, Vec<(i64, i64, i64)>>,
    new: &[SegmentRecord],
    starts: &BTreeMap<i32, i64>,
    keeps: Keeps,
) -> Result<()> {
    let mut new_by_partition: BTreeMap<i32, Vec<&SegmentRecord>> = BTreeMap::new();
    for s in new {
        new_by_partition.entry(s.partition).or_default().push(s);
    }
    for segs in new_by_partition.values_mut() {
        segs.sort_by_key(|s| s.base_offset);
    }
    let inconsistent =
        |partition: i32, offset: i64, detail: String| StorageError::LogInconsistent {
            topic: topic.to_string(),
            partition,
            offset,
            detail,
        };
    if let Some(p) = new_by_partition.keys().find(|p| !old.contains_key(p)) {
        return Err(inconsistent(
            *p,
            -1,
            "a rewrite brings rows of a partition the files it replaces do not hold".into(),
        ));
    }
    for (&partition, runs) in old {
        let old_first = runs.iter().map(|r| r.0).min().unwrap_or(0);
        let old_last = runs.iter().map(|r| r.1).max().unwrap_or(-1);
        let start = starts.get(&partition).copied().unwrap_or(0);
        let segs = new_by_partition
            .get(&partition)
            .map_or(&[][..], Vec::as_slice);
        let from = segs.first().map_or(i64::MAX, |s| s.base_offset);
        if from > old_first.max(start) {
            return Err(inconsistent(
                partition,
                from,
                format!(
                    "a rewrite starts the partition at {from} but only rows below the log start \
                     {start} may be left out (its files start at {old_first})"
                ),
            ));
        }
        // At most how many rows the old runs hold from `from` on, and
        // whether exactly that many.
        let (mut most, mut exact) = (0, true);
        let gapped = runs
            .iter()
            .any(|&(base, last, count)| count != last - base + 1);
        for &(base, last, count) in runs {
            if base >= from {
                most += count;
            } else if last >= from {
                if count == last - base + 1 {
                    most += last - from + 1;
                } else {
                    most += count.min(last - from + 1);
                    exact = false;
                }
            }
        }
        let rows: i64 = segs.iter().map(|s| s.record_count).sum();
        let fits = match keeps {
            Keeps::Every if exact => rows == most,
            Keeps::Every => rows <= most,
            Keeps::LatestPerKey => (1..=most).contains(&rows),
        };
        if !fits {
            return Err(inconsistent(
                partition,
                from,
                format!(
                    "a rewrite holds {rows} rows where the files it replaces held {most} it should keep ({keeps:?})"
                ),
            ));
        }
        // Where rows may be missing from offsets, the segments must still
        // cover every offset from the first to the last.
        if keeps == Keeps::LatestPerKey || gapped {
            let mut next = from;
            for s in segs {
                if s.base_offset != next || s.record_count > s.last_offset - s.base_offset + 1 {
                    return Err(inconsistent(
                        partition,
                        s.base_offset,
                        format!(
                            "a rewrite's segment [{}, {}] of {} rows does not continue at {next}",
                            s.base_offset, s.last_offset, s.record_count
                        ),
                    ));
                }
                next = s.last_offset + 1;
            }
            if next != old_last + 1 {
                return Err(inconsistent(
                    partition,
                    next,
                    format!(
                        "a rewrite ends the partition at {} where its files ended at {old_last}",
                        next - 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A committed file and its runs.
async fn insert_file(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    topic: &str,
    path: &str,
    size_bytes: i64,
    now_ms: i64,
    segments: &[SegmentRecord],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO files (path, topic, size_bytes, created_ms, runs) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(path)
    .bind(topic)
    .bind(size_bytes)
    .bind(now_ms)
    .bind(runs::encode(segments))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_partitions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    topic: &str,
    partitions: std::ops::Range<i32>,
    leader_id: i32,
) -> Result<()> {
    for p in partitions {
        sqlx::query(
            "INSERT INTO partitions (topic, partition_id, leader_id, leader_epoch, high_watermark, log_start_offset)
             VALUES ($1, $2, $3, 0, 0, 0)",
        )
        .bind(topic)
        .bind(p)
        .bind(leader_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_configs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    topic: &str,
    configs: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in configs {
        sqlx::query("INSERT INTO topic_configs (topic, key, value) VALUES ($1, $2, $3)")
            .bind(topic)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn encode_recent(recent: &[(i32, i32, i64)]) -> String {
    recent
        .iter()
        .map(|(f, l, o)| format!("{f}:{l}:{o}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_recent(s: &str) -> Result<Vec<(i32, i32, i64)>> {
    let bad = || StorageError::Corrupt(format!("producer state {s:?}"));
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.split(':');
            let f = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let l = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let o = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            Ok((f, l, o))
        })
        .collect()
}

#[async_trait]
impl MetadataStore for SqlStore {
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<ChangeCounts>> {
        self.changes.clone()
    }

    async fn cluster_id(&self) -> Result<String> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query("INSERT INTO cluster (name, value) VALUES ('cluster_id', $1) ON CONFLICT (name) DO NOTHING")
            .bind(&fresh[..22])
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM cluster WHERE name = 'cluster_id'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get("value"))
    }

    async fn broker_configs(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT name, value FROM cluster WHERE name LIKE 'broker.config.%'")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get("name");
                let name = name[BROKER_CONFIG.len()..].to_string();
                (name, r.get("value"))
            })
            .collect())
    }

    async fn set_broker_configs(&self, configs: &BTreeMap<String, String>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM cluster WHERE name LIKE 'broker.config.%'")
            .execute(&mut *tx)
            .await?;
        for (name, value) in configs {
            sqlx::query("INSERT INTO cluster (name, value) VALUES ($1, $2)")
                .bind(format!("{BROKER_CONFIG}{name}"))
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn register_broker(
        &self,
        b: &BrokerRecord,
        replacing: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<BrokerRecord>> {
        // The listeners first, under the new incarnation: nobody reads
        // them until the registration below names it.
        for l in &b.listeners {
            sqlx::query(
                "INSERT INTO broker_listeners (broker_id, incarnation, name, host, port)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (broker_id, incarnation, name)
                 DO UPDATE SET host = excluded.host, port = excluded.port",
            )
            .bind(b.broker_id)
            .bind(&b.incarnation)
            .bind(&l.name)
            .bind(&l.host)
            .bind(l.port)
            .execute(&self.pool)
            .await?;
        }
        // One statement: the row is taken only from a lapsed lease, the
        // incarnation named as dead, or this incarnation itself.
        let done = sqlx::query(
            "INSERT INTO broker_registrations (broker_id, incarnation, host, port, rack, lease_expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (broker_id) DO UPDATE SET incarnation = excluded.incarnation,
                 host = excluded.host, port = excluded.port, rack = excluded.rack,
                 lease_expires_ms = excluded.lease_expires_ms
             WHERE broker_registrations.lease_expires_ms < $7
                OR broker_registrations.incarnation = excluded.incarnation
                OR broker_registrations.incarnation = $8",
        )
        .bind(b.broker_id)
        .bind(&b.incarnation)
        .bind(&b.host)
        .bind(b.port)
        .bind(&b.rack)
        .bind(b.lease_expires_ms)
        .bind(now_ms)
        .bind(replacing.unwrap_or(""))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            // Earlier runs' listeners go with their registrations.
            sqlx::query("DELETE FROM broker_listeners WHERE broker_id = $1 AND incarnation <> $2")
                .bind(b.broker_id)
                .bind(&b.incarnation)
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        let holder = sqlx::query(
            "SELECT broker_id, incarnation, host, port, rack, lease_expires_ms
             FROM broker_registrations WHERE broker_id = $1",
        )
        .bind(b.broker_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.as_ref().map(broker_record))
    }

    async fn renew_broker_lease(
        &self,
        broker_id: i32,
        incarnation: &str,
        lease_expires_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE broker_registrations SET lease_expires_ms = $1
             WHERE broker_id = $2 AND incarnation = $3",
        )
        .bind(lease_expires_ms)
        .bind(broker_id)
        .bind(incarnation)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unregister_broker(&self, broker_id: i32, incarnation: &str) -> Result<()> {
        for table in ["broker_registrations", "broker_listeners"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE broker_id = $1 AND incarnation = $2"
            ))
            .bind(broker_id)
            .bind(incarnation)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn live_brokers(&self, now_ms: i64) -> Result<Vec<BrokerRecord>> {
        let rows = sqlx::query(
            "SELECT broker_id, incarnation, host, port, rack, lease_expires_ms
             FROM broker_registrations WHERE lease_expires_ms >= $1 ORDER BY broker_id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut brokers: Vec<BrokerRecord> = rows.iter().map(broker_record).collect();
        let listeners = sqlx::query(
            "SELECT l.broker_id, l.name, l.host, l.port
             FROM broker_listeners l JOIN broker_registrations r
               ON r.broker_id = l.broker_id AND r.incarnation = l.incarnation
             WHERE r.lease_expires_ms >= $1 ORDER BY l.broker_id, l.name",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        for l in &listeners {
            let id: i32 = l.get("broker_id");
            if let Some(b) = brokers.iter_mut().find(|b| b.broker_id == id) {
                b.listeners.push(ListenerAddress {
                    name: l.get("name"),
                    host: l.get("host"),
                    port: l.get("port"),
                });
            }
        }
        Ok(brokers)
    }

    async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        let rows = sqlx::query("SELECT name, topic_id, created_ms FROM topics ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let cfgs = sqlx::query("SELECT topic, key, value FROM topic_configs")
            .fetch_all(&self.pool)
            .await?;
        let mut by_topic: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for c in cfgs {
            by_topic
                .entry(c.get("topic"))
                .or_default()
                .insert(c.get("key"), c.get("value"));
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let name: String = r.get("name");
                TopicRecord {
                    configs: by_topic.remove(&name).unwrap_or_default(),
                    name,
                    topic_id: r.get("topic_id"),
                    created_ms: r.get("created_ms"),
                }
            })
            .collect())
    }

    async fn list_partitions(&self, topic: &str) -> Result<Vec<PartitionRecord>> {
        partitions(&mut *self.pool.acquire().await?, topic).await
    }

    async fn create_topic(
        &self,
        topic: &TopicRecord,
        partitions: i32,
        leader_id: i32,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::TopicNames).await?;
        let inserted = sqlx::query(
            "INSERT INTO topics (name, topic_id, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&topic.name)
        .bind(&topic.topic_id)
        .bind(topic.created_ms)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::TopicExists(topic.name.clone()));
        }
        // After the insert, which holds the write lock: a topic created
        // meanwhile under the colliding name is seen.
        let colliding: Option<String> = sqlx::query_scalar(
            "SELECT name FROM topics WHERE replace(name, '.', '_') = $1 AND name <> $2 LIMIT 1",
        )
        .bind(crate::topic_config::collision_key(&topic.name))
        .bind(&topic.name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = colliding {
            return Err(StorageError::TopicCollides(topic.name.clone(), other));
        }
        insert_configs(&mut tx, &topic.name, &topic.configs).await?;
        insert_partitions(&mut tx, &topic.name, 0..partitions, leader_id).await?;
        self.notify(&mut tx, Changed::Topics).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(topic)).await?;
        let paths: Vec<String> = sqlx::query(
            "SELECT path FROM files WHERE topic = $1 UNION SELECT path FROM table_files WHERE topic = $1",
        )
            .bind(topic)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get("path"))
            .collect();
        let gone = sqlx::query("DELETE FROM topics WHERE name = $1")
            .bind(topic)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        for table in [
            "topic_configs",
            "files",
            "partitions",
            "producer_state",
            "iceberg_tables",
            "table_files",
            "topic_columns",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE topic = $1"))
                .bind(topic)
                .execute(&mut *tx)
                .await?;
        }
        transactions::delete_topic(&mut tx, topic).await?;
        self.notify(&mut tx, Changed::Topics).await?;
        tx.commit().await?;
        Ok(paths)
    }

    async fn add_partitions(&self, topic: &str, new_count: i32, leader_id: i32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(topic)).await?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM partitions WHERE topic = $1")
            .bind(topic)
            .fetch_one(&mut *tx)
            .await?;
        let current: i64 = row.get("n");
        if current == 0 {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        if new_count as i64 <= current {
            return Err(StorageError::InvalidPartitions(format!(
                "topic {topic} has {current} partitions; the new count {new_count} must be larger"
            )));
        }
        insert_partitions(&mut tx, topic, current as i32..new_count, leader_id).await?;
        self.notify(&mut tx, Changed::Topics).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_topic_configs(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM topic_configs WHERE topic = $1")
            .bind(topic)
            .execute(&mut *tx)
            .await?;
        insert_configs(&mut tx, topic, configs).await?;
        self.notify(&mut tx, Changed::Topics).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_leadership(&self, broker_id: i32) -> Result<()> {
        sqlx::query("UPDATE partitions SET leader_id = $1, leader_epoch = leader_epoch + 1")
            .bind(broker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn topic_leaders(&self) -> Result<Vec<TopicLeader>> {
        topic_leaders(&mut *self.pool.acquire().await?).await
    }

    async fn balance_leadership(
        &self,
        now_ms: i64,
        max_fair_moves: usize,
    ) -> Result<Vec<LeaderMove>> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Leadership).await?;
        sqlx::query(
            "INSERT INTO partitions (topic, partition_id, leader_id, leader_epoch, high_watermark, log_start_offset)
             VALUES ($1, 0, -1, 0, 0, 0) ON CONFLICT (topic, partition_id) DO NOTHING",
        )
        .bind(placement::GROUP_COORDINATOR)
        .execute(&mut *tx)
        .await?;
        let live: Vec<i32> = sqlx::query(
            "SELECT broker_id FROM broker_registrations WHERE lease_expires_ms >= $1 ORDER BY broker_id",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("broker_id"))
        .collect();
        let topics = topic_leaders(&mut tx).await?;
        let moves = placement::plan_moves(&live, &topics, max_fair_moves);
        for m in &moves {
            // After the leadership lock, as every taker of both: a rewrite
            // of the topic by its former leader commits before the move or
            // not at all.
            self.lock(&mut tx, Lock::Topic(&m.topic)).await?;
            sqlx::query(
                "UPDATE partitions SET leader_id = $1, leader_epoch = leader_epoch + 1 WHERE topic = $2",
            )
            .bind(m.to)
            .bind(&m.topic)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moves)
    }

    async fn claim_topic(
        &self,
        topic: &str,
        broker_id: i32,
    ) -> Result<Option<Vec<PartitionRecord>>> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(topic)).await?;
        let claimed = sqlx::query(
            "UPDATE partitions SET leader_epoch = leader_epoch + 1 WHERE topic = $1 AND leader_id = $2",
        )
        .bind(topic)
        .bind(broker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let partitions = match claimed {
            0 => None,
            _ => Some(partitions(&mut tx, topic).await?),
        };
        tx.commit().await?;
        Ok(partitions)
    }

    async fn list_segments(&self, topic: &str) -> Result<Vec<SegmentRecord>> {
        let mut tx = self.pool.begin().await?;
        let starts = log_starts(&mut tx, topic).await?;
        let mut live: Vec<SegmentRecord> = Vec::new();
        for f in files_with_runs(&mut tx, topic).await? {
            live.extend(
                f.runs
                    .iter()
                    .filter(|r| r.is_live(&starts))
                    .map(|r| r.segment(topic, &f.path, f.size_bytes)),
            );
        }
        tx.commit().await?;
        live.sort_by_key(|r| (r.partition, r.base_offset));
        Ok(live)
    }

    async fn list_producer_states(&self, topic: &str) -> Result<Vec<ProducerStateRecord>> {
        let rows = sqlx::query(
            "SELECT partition_id, producer_id, producer_epoch, recent_batches FROM producer_state WHERE topic = $1",
        )
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let epoch: i32 = r.get("producer_epoch");
                Ok(ProducerStateRecord {
                    topic: topic.to_string(),
                    partition: r.get("partition_id"),
                    producer_id: r.get("producer_id"),
                    producer_epoch: epoch as i16,
                    recent: decode_recent(r.get("recent_batches"))?,
                })
            })
            .collect()
    }

    async fn list_open_transactions(&self, topic: &str) -> Result<Vec<OpenTransactionRecord>> {
        transactions::list_open(&self.pool, topic).await
    }

    async fn list_transaction_markers(&self, topic: &str) -> Result<Vec<TransactionMarkerRecord>> {
        transactions::list_markers(&self.pool, topic).await
    }

    async fn load_transactions(&self) -> Result<Vec<TransactionRecord>> {
        transactions::load(&self.pool).await
    }

    async fn save_transaction(&self, term: CoordinatorTerm, t: &TransactionRecord) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        transactions::save(&mut tx, t).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit_flushes(&self, commits: &[&FlushCommit]) -> Result<()> {
        if commits.len() > 1 {
            let mut tx = self.pool.begin().await?;
            if apply_together(&mut tx, commits).await? {
                tx.commit().await?;
                return Ok(());
            }
            // Refused or unsuited: rolled back, and applied one by one
            // below, which names the flush refused.
            tx.rollback().await?;
        }
        let mut tx = self.pool.begin().await?;
        for c in commits {
            apply_flush(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn file_committed(&self, path: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM files WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    async fn new_producer_id(&self, now_ms: i64) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO counters (name, value) VALUES ('producer_id', 1000)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.get("value");
        sqlx::query(
            "INSERT INTO producers (producer_id, producer_epoch, updated_ms) VALUES ($1, 0, $2)",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn producer_epoch(&self, producer_id: i64) -> Result<Option<i16>> {
        let row = sqlx::query("SELECT producer_epoch FROM producers WHERE producer_id = $1")
            .bind(producer_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<i32, _>("producer_epoch") as i16))
    }

    async fn set_producer_epoch(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE producers SET producer_epoch = $1, updated_ms = $2 WHERE producer_id = $3",
        )
        .bind(epoch as i32)
        .bind(now_ms)
        .bind(producer_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn advance_log_starts(&self, topic: &str, starts: &[(i32, i64)]) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(topic)).await?;
        for &(partition, offset) in starts {
            sqlx::query(
                "UPDATE partitions SET log_start_offset = $1
                 WHERE topic = $2 AND partition_id = $3 AND log_start_offset < $1",
            )
            .bind(offset)
            .bind(topic)
            .bind(partition)
            .execute(&mut *tx)
            .await?;
        }
        transactions::forget_below(&mut tx, topic, starts).await?;
        let starts = log_starts(&mut tx, topic).await?;
        let mut released = Vec::new();
        for f in files_with_runs(&mut tx, topic).await? {
            if f.runs.iter().any(|r| r.is_live(&starts)) {
                continue;
            }
            let path = f.path;
            let held = sqlx::query("SELECT 1 AS one FROM table_files WHERE path = $1")
                .bind(&path)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            sqlx::query("DELETE FROM files WHERE path = $1")
                .bind(&path)
                .execute(&mut *tx)
                .await?;
            if !held {
                released.push(path);
            }
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn files_below_log_start(&self, topic: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let starts = log_starts(&mut tx, topic).await?;
        let files = files_with_runs(&mut tx, topic).await?;
        tx.commit().await?;
        Ok(files
            .into_iter()
            .filter(|f| {
                f.runs
                    .iter()
                    .any(|r| r.base_offset < starts.get(&r.partition).copied().unwrap_or(0))
            })
            .map(|f| f.path)
            .collect())
    }

    async fn committed_files(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT path FROM files UNION SELECT path FROM table_files")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get("path")).collect())
    }

    async fn objects_with_chunks(&self, objects: &[&str]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in objects.chunks(ROWS_PER_STATEMENT) {
            // Per object, paths from `<object>#` up to `<object>$` ('$'
            // follows '#'): a range the primary key answers.
            let mut q = Statement::new("SELECT v.column1 AS object FROM (");
            q.values(chunk, |row, object| {
                row.bind(*object);
            });
            q.push(
                ") AS v WHERE EXISTS (SELECT 1 FROM files
                 WHERE path >= v.column1 || '#' AND path < v.column1 || '$')",
            );
            for row in q.query().fetch_all(&self.pool).await? {
                found.insert(row.get("object"));
            }
        }
        Ok(found)
    }

    async fn topic_columns(&self, topic: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT body FROM topic_columns WHERE topic = $1")
            .bind(topic)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("body")))
    }

    async fn save_topic_columns(&self, topic: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO topic_columns (topic, body) VALUES ($1, $2)
             ON CONFLICT (topic) DO UPDATE SET body = excluded.body",
        )
        .bind(topic)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn column_layout(&self, layout: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT body FROM column_layouts WHERE layout = $1")
            .bind(layout)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("body")))
    }

    async fn save_column_layout(&self, layout: &str, body: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO column_layouts (layout, body) VALUES ($1, $2)
             ON CONFLICT (layout) DO NOTHING",
        )
        .bind(layout)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn table_pointer(&self, topic: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT metadata_location FROM iceberg_tables WHERE topic = $1")
            .bind(topic)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("metadata_location")))
    }

    async fn table_pending(&self, topic: &str) -> Result<TablePending> {
        // One transaction: a compaction committing between the two reads
        // must not be seen half (its old files removed, its new one not
        // added).
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(topic)).await?;
        let added = sqlx::query(
            "SELECT path, size_bytes, created_ms FROM files WHERE topic = $1
             AND path NOT LIKE '%#%'
             AND NOT EXISTS (SELECT 1 FROM table_files t WHERE t.path = files.path)
             ORDER BY created_ms, path",
        )
        .bind(topic)
        .fetch_all(&mut *tx)
        .await?;
        // The oldest chunk still in the intake: files written after it wait.
        let first_chunk: Option<(i64, String)> = sqlx::query(
            "SELECT created_ms, path FROM files WHERE topic = $1 AND path LIKE '%#%'
             ORDER BY created_ms, path LIMIT 1",
        )
        .bind(topic)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| (r.get("created_ms"), r.get("path")));
        let added = added
            .iter()
            .filter(|r| {
                first_chunk.as_ref().is_none_or(|(ms, path)| {
                    (r.get::<i64, _>("created_ms"), r.get::<String, _>("path"))
                        < (*ms, path.clone())
                })
            })
            .map(|r| (r.get("path"), r.get("size_bytes")))
            .collect();
        let removed = sqlx::query(
            "SELECT path FROM table_files WHERE topic = $1 AND removed_ms IS NULL
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.path = table_files.path)
             ORDER BY path",
        )
        .bind(topic)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("path"))
        .collect();
        tx.commit().await?;
        Ok(TablePending { added, removed })
    }

    async fn commit_table(&self, c: &TableCommitRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(&c.topic)).await?;
        let swapped = match &c.expected {
            Some(expected) => sqlx::query(
                "UPDATE iceberg_tables SET metadata_location = $1, updated_ms = $2
                 WHERE topic = $3 AND metadata_location = $4",
            )
            .bind(&c.metadata_location)
            .bind(c.now_ms)
            .bind(&c.topic)
            .bind(expected)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            None => sqlx::query(
                "INSERT INTO iceberg_tables (topic, metadata_location, updated_ms)
                 VALUES ($1, $2, $3) ON CONFLICT (topic) DO NOTHING",
            )
            .bind(&c.topic)
            .bind(&c.metadata_location)
            .bind(c.now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if swapped != 1 {
            return Ok(false);
        }
        // A few statements per commit whatever its files: each is a round
        // trip to SQLite's thread, made while every flush waits.
        let added: BTreeSet<&str> = c.added.iter().map(String::as_str).collect();
        for chunk in added
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .chunks(ROWS_PER_STATEMENT)
        {
            let mut q = Statement::new("SELECT count(*) AS n FROM files WHERE path IN ");
            q.list(chunk.iter().copied());
            let in_log: i64 = q.query().fetch_one(&mut *tx).await?.get("n");
            if in_log != chunk.len() as i64 {
                return Ok(false);
            }
            let mut q = Statement::new("INSERT INTO table_files (path, topic, removed_ms) ");
            q.values(chunk, |row, path| {
                row.bind(*path).bind(c.topic.as_str()).bind(None::<i64>);
            });
            q.push(" ON CONFLICT (path) DO NOTHING");
            q.query().execute(&mut *tx).await?;
        }
        for chunk in c.removed.chunks(ROWS_PER_STATEMENT) {
            let mut q = Statement::new("UPDATE table_files SET removed_ms = ");
            q.bind(c.now_ms)
                .push(" WHERE path IN ")
                .list(chunk.iter().map(String::as_str));
            q.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn files_in_order(&self, topic: &str) -> Result<Vec<FileRecord>> {
        let rows = sqlx::query(
            "SELECT path, size_bytes, created_ms,
                    CASE WHEN EXISTS (SELECT 1 FROM table_files t WHERE t.path = files.path
                            AND t.removed_ms IS NULL) THEN 1 ELSE 0 END AS in_table
             FROM files WHERE topic = $1 ORDER BY created_ms, path",
        )
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| FileRecord {
                path: r.get("path"),
                size_bytes: r.get("size_bytes"),
                created_ms: r.get("created_ms"),
                in_table: r.get::<i32, _>("in_table") != 0,
            })
            .collect())
    }

    async fn replace_files(&self, r: &FileReplacement) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Topic(&r.topic)).await?;
        let starts = log_starts(&mut tx, &r.topic).await?;
        let old: HashSet<&str> = r.old_paths.iter().map(String::as_str).collect();
        // Per partition, the rows the old files hold there, and the runs
        // of the files that stay (which never overlap each other).
        let mut present = 0usize;
        let mut old_runs: BTreeMap<i32, Vec<(i64, i64, i64)>> = BTreeMap::new();
        let mut staying: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
        for f in files_with_runs(&mut tx, &r.topic).await? {
            let replaced = old.contains(f.path.as_str());
            for run in f.runs.iter().filter(|run| run.is_live(&starts)) {
                if replaced {
                    present += 1;
                    old_runs.entry(run.partition).or_default().push((
                        run.base_offset,
                        run.last_offset,
                        run.record_count,
                    ));
                } else {
                    staying
                        .entry(run.partition)
                        .or_default()
                        .push((run.base_offset, run.last_offset));
                }
            }
        }
        if present != r.old_segments {
            return Ok(false);
        }
        // Only the topic's leader rewrites it: a former leader that has
        // not yet heard of a move would leave the new one's index of the
        // files stale.
        let leader = topic_leader(&mut tx, &r.topic).await?;
        if leader != Some(r.leader_id) {
            return Ok(false);
        }
        for runs in staying.values_mut() {
            runs.sort_unstable();
        }
        // The new runs hold exactly the old rows and overlap no run that
        // stays: a rewrite never hides or doubles a record.
        for s in &r.segments {
            let runs = staying.get(&s.partition).map_or(&[][..], Vec::as_slice);
            let after = runs.partition_point(|&(base, _)| base <= s.last_offset);
            let before = after.checked_sub(1).map(|i| runs[i]);
            if let Some((base, last)) = before.filter(|&(_, last)| last >= s.base_offset) {
                return Err(StorageError::LogInconsistent {
                    topic: r.topic.clone(),
                    partition: s.partition,
                    offset: s.base_offset,
                    detail: format!(
                        "a rewrite's segment [{}, {}] overlaps the segment [{base}, {last}] it does not replace",
                        s.base_offset, s.last_offset
                    ),
                });
            }
        }
        check_kept(&r.topic, &old_runs, &r.segments, &starts, r.keeps)?;
        for chunk in r.old_paths.chunks(ROWS_PER_STATEMENT) {
            let mut q = Statement::new("DELETE FROM files WHERE path IN ");
            q.list(chunk.iter().map(String::as_str));
            q.query().execute(&mut *tx).await?;
        }
        insert_file(
            &mut tx,
            &r.topic,
            &r.path,
            r.size_bytes,
            r.created_ms,
            &r.segments,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_table_files(&self, topic: &str, cutoff_ms: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "DELETE FROM table_files WHERE topic = $1 AND removed_ms IS NOT NULL
             AND removed_ms <= $2 RETURNING path",
        )
        .bind(topic)
        .bind(cutoff_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get("path")).collect())
    }

    async fn save_group(&self, term: CoordinatorTerm, g: &GroupRecord, now_ms: i64) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        sqlx::query(
            "INSERT INTO consumer_groups (group_id, protocol_type, protocol_name, generation_id, leader_id, state, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (group_id) DO UPDATE SET protocol_type = $2, protocol_name = $3, generation_id = $4,
                 leader_id = $5, state = $6, updated_ms = $7",
        )
        .bind(&g.group_id)
        .bind(&g.protocol_type)
        .bind(&g.protocol_name)
        .bind(g.generation_id)
        .bind(&g.leader_id)
        .bind(&g.state)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(&g.group_id)
            .execute(&mut *tx)
            .await?;
        for (i, m) in g.members.iter().enumerate() {
            sqlx::query(
                "INSERT INTO group_members (group_id, member_id, group_instance_id, client_id, client_host,
                     session_timeout_ms, rebalance_timeout_ms, subscription, assignment, join_order)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&g.group_id)
            .bind(&m.member_id)
            .bind(&m.group_instance_id)
            .bind(&m.client_id)
            .bind(&m.client_host)
            .bind(m.session_timeout_ms)
            .bind(m.rebalance_timeout_ms)
            .bind(&m.subscription)
            .bind(&m.assignment)
            .bind(i as i32)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_groups(&self) -> Result<Vec<GroupRecord>> {
        let groups = sqlx::query("SELECT * FROM consumer_groups ORDER BY group_id")
            .fetch_all(&self.pool)
            .await?;
        let members = sqlx::query("SELECT * FROM group_members ORDER BY group_id, join_order")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<GroupRecord> = groups
            .iter()
            .map(|r| GroupRecord {
                group_id: r.get("group_id"),
                protocol_type: r.get("protocol_type"),
                protocol_name: r.get("protocol_name"),
                generation_id: r.get("generation_id"),
                leader_id: r.get("leader_id"),
                state: r.get("state"),
                members: Vec::new(),
            })
            .collect();
        for m in members {
            let gid: String = m.get("group_id");
            if let Some(g) = out.iter_mut().find(|g| g.group_id == gid) {
                g.members.push(GroupMemberRecord {
                    member_id: m.get("member_id"),
                    group_instance_id: m.get("group_instance_id"),
                    client_id: m.get("client_id"),
                    client_host: m.get("client_host"),
                    session_timeout_ms: m.get("session_timeout_ms"),
                    rebalance_timeout_ms: m.get("rebalance_timeout_ms"),
                    subscription: m
                        .get::<Option<Vec<u8>>, _>("subscription")
                        .unwrap_or_default(),
                    assignment: m
                        .get::<Option<Vec<u8>>, _>("assignment")
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn save_consumer_protocol_group(
        &self,
        term: CoordinatorTerm,
        g: &ConsumerProtocolGroupRecord,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        sqlx::query(
            "INSERT INTO consumer_protocol_groups (group_id, group_epoch, assignment_epoch, assignor, updated_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (group_id) DO UPDATE SET group_epoch = $2, assignment_epoch = $3, assignor = $4,
                 updated_ms = $5",
        )
        .bind(&g.group_id)
        .bind(g.group_epoch)
        .bind(g.assignment_epoch)
        .bind(&g.assignor)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        for table in ["consumer_protocol_members", "consumer_protocol_partitions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE group_id = $1"))
                .bind(&g.group_id)
                .execute(&mut *tx)
                .await?;
        }
        for m in &g.members {
            let subscribed = serde_json::to_string(&m.subscribed)
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO consumer_protocol_members (group_id, member_id, group_instance_id, rack_id,
                     member_epoch, client_id, client_host, subscribed, subscribed_regex, assignor)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&g.group_id)
            .bind(&m.member_id)
            .bind(&m.group_instance_id)
            .bind(&m.rack_id)
            .bind(m.member_epoch)
            .bind(&m.client_id)
            .bind(&m.client_host)
            .bind(subscribed)
            .bind(&m.subscribed_regex)
            .bind(&m.assignor)
            .execute(&mut *tx)
            .await?;
            for (kind, parts) in [
                ("assigned", &m.assigned),
                ("owned", &m.owned),
                ("target", &m.target),
            ] {
                for (topic_id, partition) in parts {
                    sqlx::query(
                        "INSERT INTO consumer_protocol_partitions (group_id, member_id, kind, topic_id, partition_id)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&g.group_id)
                    .bind(&m.member_id)
                    .bind(kind)
                    .bind(topic_id.to_string())
                    .bind(partition)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_consumer_protocol_groups(&self) -> Result<Vec<ConsumerProtocolGroupRecord>> {
        let groups = sqlx::query("SELECT * FROM consumer_protocol_groups ORDER BY group_id")
            .fetch_all(&self.pool)
            .await?;
        let members =
            sqlx::query("SELECT * FROM consumer_protocol_members ORDER BY group_id, member_id")
                .fetch_all(&self.pool)
                .await?;
        let partitions = sqlx::query(
            "SELECT * FROM consumer_protocol_partitions ORDER BY group_id, member_id, topic_id, partition_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<String, ConsumerProtocolGroupRecord> = groups
            .iter()
            .map(|r| {
                let id: String = r.get("group_id");
                let g = ConsumerProtocolGroupRecord {
                    group_id: id.clone(),
                    group_epoch: r.get("group_epoch"),
                    assignment_epoch: r.get("assignment_epoch"),
                    assignor: r.get("assignor"),
                    members: Vec::new(),
                };
                (id, g)
            })
            .collect();
        for r in members {
            let subscribed: String = r.get("subscribed");
            let subscribed = serde_json::from_str(&subscribed)
                .map_err(|e| StorageError::Corrupt(format!("member subscription: {e}")))?;
            if let Some(g) = out.get_mut(&r.get::<String, _>("group_id")) {
                g.members.push(ConsumerProtocolMemberRecord {
                    member_id: r.get("member_id"),
                    group_instance_id: r.get("group_instance_id"),
                    rack_id: r.get("rack_id"),
                    member_epoch: r.get("member_epoch"),
                    client_id: r.get("client_id"),
                    client_host: r.get("client_host"),
                    subscribed,
                    subscribed_regex: r.get("subscribed_regex"),
                    assignor: r.get("assignor"),
                    ..Default::default()
                });
            }
        }
        for r in partitions {
            let group: String = r.get("group_id");
            let member: String = r.get("member_id");
            let Some(m) = out
                .get_mut(&group)
                .and_then(|g| g.members.iter_mut().find(|m| m.member_id == member))
            else {
                continue;
            };
            let topic_id: String = r.get("topic_id");
            let topic_id = uuid::Uuid::parse_str(&topic_id)
                .map_err(|e| StorageError::Corrupt(format!("topic id {topic_id}: {e}")))?;
            let entry = (topic_id, r.get::<i32, _>("partition_id"));
            match r.get::<String, _>("kind").as_str() {
                "assigned" => m.assigned.push(entry),
                "owned" => m.owned.push(entry),
                _ => m.target.push(entry),
            }
        }
        Ok(out.into_values().collect())
    }

    async fn load_registry(&self) -> Result<RegistryRecord> {
        let schemas = sqlx::query("SELECT id, schema_type, schema, refs FROM schemas ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| SchemaRecord {
                id: r.get("id"),
                schema_type: r.get("schema_type"),
                schema: r.get("schema"),
                refs: r.get("refs"),
            })
            .collect();
        let versions = sqlx::query(
            "SELECT subject, version, schema_id, CASE WHEN deleted THEN 1 ELSE 0 END AS deleted
             FROM subject_versions ORDER BY subject, version",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| SubjectVersionRecord {
            subject: r.get("subject"),
            version: r.get("version"),
            schema_id: r.get("schema_id"),
            deleted: r.get::<i32, _>("deleted") != 0,
        })
        .collect();
        let configs = sqlx::query("SELECT subject, compatibility FROM registry_configs")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| (r.get("subject"), r.get("compatibility")))
            .collect();
        let grants = sqlx::query(
            "SELECT principal, purpose FROM purpose_grants ORDER BY principal, purpose",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get("principal"), r.get("purpose")))
        .collect();
        Ok(RegistryRecord {
            schemas,
            versions,
            configs,
            grants,
        })
    }

    async fn register_schema(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        refs: &str,
        now_ms: i64,
    ) -> Result<(i32, i32)> {
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, Lock::Registry).await?;
        let existing: Option<i32> = sqlx::query_scalar(
            "SELECT id FROM schemas WHERE schema_type = $1 AND schema = $2 AND refs = $3",
        )
        .bind(schema_type)
        .bind(schema)
        .bind(refs)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(id) => id,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO schemas (id, schema_type, schema, refs, created_ms)
                     VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM schemas), $1, $2, $3, $4) RETURNING id",
                )
                .bind(schema_type)
                .bind(schema)
                .bind(refs)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let live: Option<i32> = sqlx::query_scalar(
            "SELECT version FROM subject_versions WHERE subject = $1 AND schema_id = $2 AND NOT deleted",
        )
        .bind(subject)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        self.registry_changed(&mut tx).await?;
        let version = match live {
            Some(v) => v,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO subject_versions (subject, version, schema_id, deleted)
                     VALUES ($1, (SELECT COALESCE(MAX(version), 0) + 1 FROM subject_versions WHERE subject = $1), $2, FALSE)
                     RETURNING version",
                )
                .bind(subject)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok((id, version))
    }

    async fn delete_subject_versions(
        &self,
        subject: &str,
        version: Option<i32>,
        permanent: bool,
    ) -> Result<()> {
        let sql = match permanent {
            true => "DELETE FROM subject_versions WHERE subject = $1 AND ($2 IS NULL OR version = $2)",
            false => "UPDATE subject_versions SET deleted = TRUE WHERE subject = $1 AND ($2 IS NULL OR version = $2)",
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql)
            .bind(subject)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        self.registry_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_compatibility(&self, subject: &str, level: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        match level {
            Some(l) => sqlx::query(
                "INSERT INTO registry_configs (subject, compatibility) VALUES ($1, $2)
                 ON CONFLICT (subject) DO UPDATE SET compatibility = $2",
            )
            .bind(subject)
            .bind(l),
            None => sqlx::query("DELETE FROM registry_configs WHERE subject = $1").bind(subject),
        }
        .execute(&mut *tx)
        .await?;
        self.registry_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_grants(&self, principal: &str, purposes: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM purpose_grants WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await?;
        for p in purposes {
            sqlx::query("INSERT INTO purpose_grants (principal, purpose) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(principal)
                .bind(p)
                .execute(&mut *tx)
                .await?;
        }
        self.registry_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn registry_change(&self) -> Result<Option<String>> {
        self.change_token(REGISTRY_CHANGE).await
    }

    async fn delete_group(&self, term: CoordinatorTerm, group_id: &str) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        for table in [
            "consumer_groups",
            "group_members",
            "group_offsets",
            "consumer_protocol_groups",
            "consumer_protocol_members",
            "consumer_protocol_partitions",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE group_id = $1"))
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn commit_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        for o in offsets {
            sqlx::query(
                "INSERT INTO group_offsets (group_id, topic, partition_id, committed_offset, leader_epoch, metadata, commit_time_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (group_id, topic, partition_id)
                 DO UPDATE SET committed_offset = $4, leader_epoch = $5, metadata = $6, commit_time_ms = $7",
            )
            .bind(group_id)
            .bind(&o.topic)
            .bind(o.partition)
            .bind(o.offset)
            .bind(o.leader_epoch)
            .bind(&o.metadata)
            .bind(o.commit_time_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        let rows = sqlx::query(
            "SELECT * FROM group_offsets WHERE group_id = $1 ORDER BY topic, partition_id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| CommittedOffset {
                topic: r.get("topic"),
                partition: r.get("partition_id"),
                offset: r.get("committed_offset"),
                leader_epoch: r.get("leader_epoch"),
                metadata: r.get("metadata"),
                commit_time_ms: r.get("commit_time_ms"),
            })
            .collect())
    }

    async fn delete_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let mut tx = self.begin_in_term(term).await?;
        for (topic, partition) in partitions {
            sqlx::query("DELETE FROM group_offsets WHERE group_id = $1 AND topic = $2 AND partition_id = $3")
                .bind(group_id)
                .bind(topic)
                .bind(partition)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get("group_id")).collect())
    }

    async fn scram_credentials(&self, user: Option<&str>) -> Result<Vec<ScramCredentialRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM scram_credentials WHERE $1 IS NULL OR user_name = $1
             ORDER BY user_name, mechanism",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ScramCredentialRecord {
                user: r.get("user_name"),
                mechanism: r.get("mechanism"),
                salt: r.get("salt"),
                iterations: r.get("iterations"),
                stored_key: r.get("stored_key"),
                server_key: r.get("server_key"),
            })
            .collect())
    }

    async fn alter_scram_credentials(
        &self,
        upserts: &[ScramCredentialRecord],
        deletions: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (user, mechanism) in deletions {
            sqlx::query("DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2")
                .bind(user)
                .bind(mechanism)
                .execute(&mut *tx)
                .await?;
        }
        for c in upserts {
            sqlx::query(
                "INSERT INTO scram_credentials (user_name, mechanism, salt, iterations, stored_key, server_key)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (user_name, mechanism) DO UPDATE SET salt = $3, iterations = $4,
                     stored_key = $5, server_key = $6",
            )
            .bind(&c.user)
            .bind(&c.mechanism)
            .bind(&c.salt)
            .bind(c.iterations)
            .bind(&c.stored_key)
            .bind(&c.server_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn cluster_value_or_insert(&self, name: &str, fresh: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO cluster (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM cluster WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn acls(&self) -> Result<(Vec<AclRecord>, Option<String>)> {
        let mut tx = self.pool.begin().await?;
        let token: Option<String> = sqlx::query_scalar("SELECT value FROM cluster WHERE name = $1")
            .bind(ACLS_CHANGE)
            .fetch_optional(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT * FROM acls ORDER BY resource_type, resource_name, pattern_type, principal,
                 host, operation, permission",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let code = |r: &sqlx::any::AnyRow, c: &str| r.get::<i32, _>(c) as i8;
        let acls = rows
            .iter()
            .map(|r| AclRecord {
                resource_type: code(r, "resource_type"),
                resource_name: r.get("resource_name"),
                pattern_type: code(r, "pattern_type"),
                principal: r.get("principal"),
                host: r.get("host"),
                operation: code(r, "operation"),
                permission: code(r, "permission"),
            })
            .collect();
        Ok((acls, token))
    }

    async fn acls_change(&self) -> Result<Option<String>> {
        self.change_token(ACLS_CHANGE).await
    }

    async fn alter_acls(&self, added: &[AclRecord], removed: &[AclRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for a in removed {
            bind_acl(
                sqlx::query(
                    "DELETE FROM acls WHERE resource_type = $1 AND resource_name = $2
                     AND pattern_type = $3 AND principal = $4 AND host = $5 AND operation = $6
                     AND permission = $7",
                ),
                a,
            )
            .execute(&mut *tx)
            .await?;
        }
        for a in added {
            bind_acl(
                sqlx::query(
                    "INSERT INTO acls (resource_type, resource_name, pattern_type, principal,
                         host, operation, permission) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT DO NOTHING",
                ),
                a,
            )
            .execute(&mut *tx)
            .await?;
        }
        self.mark_change(&mut tx, ACLS_CHANGE, Changed::Acls)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
