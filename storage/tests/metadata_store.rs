//! The metadata store's behaviour, the same on both databases: each test
//! runs on SQLite and on PostgreSQL (a fresh database on the server named
//! by `FLOE_TEST_POSTGRES`, which `scripts/test.sh` starts), and the
//! PostgreSQL store's own concerns: several brokers opening and writing
//! at once, and startup errors that say what to fix.

mod servers;

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_storage::error::{BackendError, StorageError};
use floe_storage::meta::placement::GROUP_COORDINATOR;
use floe_storage::meta::postgres::PostgresOptions;
use floe_storage::meta::sql::SqlStore;
use floe_storage::meta::{
    AclRecord, BrokerRecord, CommittedOffset, ConsumerProtocolGroupRecord, CoordinatorTerm,
    FileReplacement, FlushCommit, GroupRecord, Keeps, ListenerAddress, MetadataStore,
    OpenTransactionRecord, ProducerStateRecord, SegmentRecord, TopicRecord,
    TransactionMarkerRecord, TransactionRecord,
};
use servers::{postgres, postgres_database, sqlite};

fn topic(name: &str) -> TopicRecord {
    TopicRecord {
        name: name.into(),
        topic_id: format!("id-{name}"),
        configs: BTreeMap::new(),
        created_ms: 1,
    }
}

async fn the_table_waits_for_files_written_after_a_chunk_still_in_the_intake(store: Arc<SqlStore>) {
    let s = store.clone();
    s.create_topic(&topic("t"), 1, 0).await.unwrap();
    s.claim_leadership(0).await.unwrap();
    // A file of its own, a chunk, another file of its own: offsets
    // 0-1, 2-3, 4-5 of partition 0.
    let paths = [
        "t/data/day=0/a.parquet",
        "intake/x.chunks#0",
        "t/data/day=0/b.parquet",
    ];
    for (i, path) in paths.iter().enumerate() {
        let base = 2 * i as i64;
        let commit = FlushCommit {
            topic: "t".into(),
            path: path.to_string(),
            size_bytes: 10,
            leader_id: 0,
            high_watermarks: vec![(0, 1, base + 2)],
            segments: vec![SegmentRecord {
                topic: "t".into(),
                partition: 0,
                base_offset: base,
                last_offset: base + 1,
                record_count: 2,
                path: path.to_string(),
                file_size: 10,
                row_group: 0,
                first_row: 0,
                min_timestamp: 1,
                max_timestamp: 1,
                size_bytes: 10,
                append_time_ms: 1,
            }],
            producers: vec![],
            open_transactions: vec![],
            markers: vec![],
            now_ms: 100 + i as i64,
        };
        s.commit_flush(&commit).await.unwrap();
    }
    // The chunk waits for its move, and b waits for the chunk: what
    // the table lists stays the oldest part of the log.
    let pending = s.table_pending("t").await.unwrap();
    let added: Vec<&str> = pending.added.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(added, vec![paths[0]]);
}

/// A flush of `n` records at `base` of partition `p` of `topic`, in
/// `path`, by producer 7 (its last batch `seq`).
fn flush_of(topic: &str, path: &str, p: i32, base: i64, n: i64, seq: i32) -> FlushCommit {
    FlushCommit {
        topic: topic.into(),
        path: path.into(),
        size_bytes: 10,
        leader_id: 0,
        high_watermarks: vec![(p, 1, base + n)],
        segments: vec![SegmentRecord {
            topic: topic.into(),
            partition: p,
            base_offset: base,
            last_offset: base + n - 1,
            record_count: n,
            path: path.into(),
            file_size: 10,
            row_group: 0,
            first_row: 0,
            min_timestamp: 1,
            max_timestamp: 1,
            size_bytes: 10,
            append_time_ms: 1,
        }],
        producers: vec![ProducerStateRecord {
            topic: topic.into(),
            partition: p,
            producer_id: 7,
            producer_epoch: 0,
            recent: vec![(seq, seq + n as i32 - 1, base)],
        }],
        open_transactions: vec![],
        markers: vec![],
        now_ms: 1,
    }
}

async fn a_batch_of_flushes_commits_in_a_few_statements_or_not_at_all(store: Arc<SqlStore>) {
    let s = store.clone();
    for name in ["a", "b"] {
        s.create_topic(&topic(name), 2, 0).await.unwrap();
    }
    s.claim_leadership(0).await.unwrap();
    // Four flushes, three topics' partitions, one producer everywhere:
    // the multi-row path.
    let batch = [
        flush_of("a", "i1#0", 0, 0, 5, 0),
        flush_of("a", "i1#1", 1, 0, 3, 0),
        flush_of("b", "i1#2", 0, 0, 2, 0),
        flush_of("b", "i1#3", 1, 0, 4, 0),
    ];
    s.commit_flushes(&batch.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let hws = |t: &'static str| {
        let s = &s;
        async move {
            s.list_partitions(t)
                .await
                .unwrap()
                .iter()
                .map(|p| p.high_watermark)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!((hws("a").await, hws("b").await), (vec![5, 3], vec![2, 4]));
    let segs = s.list_segments("b").await.unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!((segs[1].path.as_str(), segs[1].last_offset), ("i1#3", 3));
    let producers = s.list_producer_states("a").await.unwrap();
    assert_eq!(producers.len(), 2);
    // The next batch: one flush starts where its log does not end. The
    // batch is refused whole, with that flush's error, and nothing of
    // it stays.
    let next = [
        flush_of("a", "i2#0", 0, 5, 1, 5),
        flush_of("b", "i2#1", 0, 9, 1, 2),
    ];
    assert!(matches!(
        s.commit_flushes(&next.iter().collect::<Vec<_>>()).await,
        Err(StorageError::LogInconsistent { offset: 9, .. })
    ));
    assert_eq!((hws("a").await, hws("b").await), (vec![5, 3], vec![2, 4]));
    assert!(!s.committed_files().await.unwrap().contains("i2#0"));
    // A later state of a producer replaces the earlier one.
    s.commit_flushes(&[&next[0], &flush_of("b", "i3#1", 0, 2, 1, 2)])
        .await
        .unwrap();
    let p0 = s.list_producer_states("a").await.unwrap();
    let p0 = p0.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!(p0.recent, vec![(5, 5, 5)]);
}

async fn intake_objects_with_chunks_are_found_in_one_query(store: Arc<SqlStore>) {
    let s = store.clone();
    s.create_topic(&topic("a"), 2, 0).await.unwrap();
    s.claim_leadership(0).await.unwrap();
    let batch = [
        flush_of("a", "intake/x.chunks#0", 0, 0, 1, 0),
        flush_of("a", "intake/y.chunks#40", 1, 0, 1, 0),
    ];
    s.commit_flushes(&batch.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let found = s
        .objects_with_chunks(&[
            "intake/x.chunks",
            "intake/x.chunk",
            "intake/z.chunks",
            "intake/y.chunks",
        ])
        .await
        .unwrap();
    let mut found: Vec<_> = found.into_iter().collect();
    found.sort();
    assert_eq!(found, ["intake/x.chunks", "intake/y.chunks"]);
}

async fn commit_is_fenced_by_leader_epoch(store: Arc<SqlStore>) {
    let s = store.clone();
    s.create_topic(&topic("t"), 2, 0).await.unwrap();
    assert!(matches!(
        s.create_topic(&topic("t"), 2, 0).await,
        Err(StorageError::TopicExists(_))
    ));
    s.claim_leadership(0).await.unwrap();
    let parts = s.list_partitions("t").await.unwrap();
    assert_eq!(parts[0].leader_epoch, 1);
    let mut c = FlushCommit {
        topic: "t".into(),
        path: "f1".into(),
        size_bytes: 10,
        leader_id: 0,
        high_watermarks: vec![(0, 0, 5)],
        segments: vec![],
        producers: vec![],
        open_transactions: vec![],
        markers: vec![],
        now_ms: 1,
    };
    assert!(matches!(
        s.commit_flush(&c).await,
        Err(StorageError::Fenced(_))
    ));
    assert!(
        s.committed_files().await.unwrap().is_empty(),
        "a fenced commit leaves no trace"
    );
    c.high_watermarks = vec![(0, 1, 5)];
    c.producers = vec![ProducerStateRecord {
        topic: "t".into(),
        partition: 0,
        producer_id: 9,
        producer_epoch: 2,
        recent: vec![(0, 4, 0)],
    }];
    c.segments = vec![SegmentRecord {
        topic: "t".into(),
        partition: 0,
        base_offset: 0,
        last_offset: 4,
        record_count: 5,
        path: "f1".into(),
        file_size: 10,
        row_group: 0,
        first_row: 0,
        min_timestamp: 1,
        max_timestamp: 2,
        size_bytes: 10,
        append_time_ms: 1,
    }];
    s.commit_flush(&c).await.unwrap();
    assert_eq!(s.list_partitions("t").await.unwrap()[0].high_watermark, 5);
    // A flush that would leave a hole (or write over offsets) is refused.
    let mut hole = c.clone();
    hole.path = "f2".into();
    hole.segments[0].path = "f2".into();
    hole.segments[0].base_offset = 7;
    hole.segments[0].last_offset = 9;
    hole.high_watermarks = vec![(0, 1, 10)];
    assert!(matches!(
        s.commit_flush(&hole).await,
        Err(StorageError::LogInconsistent { offset: 7, .. })
    ));
    assert_eq!(s.list_partitions("t").await.unwrap()[0].high_watermark, 5);
    // Committing offsets already committed is refused the same way.
    let mut again = c.clone();
    again.path = "f3".into();
    assert!(matches!(
        s.commit_flush(&again).await,
        Err(StorageError::LogInconsistent { offset: 0, ref detail, .. }) if detail.ends_with("at 5")
    ));
    // Partitions are checked together: one good and one with a hole
    // is refused as a whole, naming the one with the hole.
    let mut mixed = hole.clone();
    mixed.segments[0].partition = 1;
    let mut good = c.segments[0].clone();
    good.path = "f2".into();
    good.base_offset = 5;
    good.last_offset = 6;
    mixed.segments.insert(0, good);
    mixed.high_watermarks = vec![(0, 1, 7), (1, 1, 10)];
    assert!(matches!(
        s.commit_flush(&mixed).await,
        Err(StorageError::LogInconsistent {
            partition: 1,
            offset: 7,
            ..
        })
    ));
    let parts = s.list_partitions("t").await.unwrap();
    assert_eq!((parts[0].high_watermark, parts[1].high_watermark), (5, 0));
    assert_eq!(
        s.list_producer_states("t").await.unwrap()[0].recent,
        vec![(0, 4, 0)]
    );
    assert_eq!(
        s.advance_log_starts("t", &[(0, 3)]).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(s.list_segments("t").await.unwrap().len(), 1);
    assert_eq!(
        s.advance_log_starts("t", &[(0, 5)]).await.unwrap(),
        vec!["f1".to_string()]
    );
    assert!(s.list_segments("t").await.unwrap().is_empty());
    assert_eq!(s.list_partitions("t").await.unwrap()[0].log_start_offset, 5);
    let a = s.new_producer_id(0).await.unwrap();
    let b = s.new_producer_id(0).await.unwrap();
    assert_eq!(b, a + 1);
    assert_eq!(s.delete_topic("t").await.unwrap(), Vec::<String>::new());
    assert!(s.list_topics().await.unwrap().is_empty());
}

/// The coordinator placement as the store holds it.
async fn coordinator_term(s: &SqlStore) -> CoordinatorTerm {
    let l = s.topic_leaders().await.unwrap();
    let l = l.iter().find(|l| l.topic == GROUP_COORDINATOR).unwrap();
    CoordinatorTerm {
        broker_id: l.leader_id,
        epoch: l.epochs[0],
    }
}

fn offset(topic: &str, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: topic.into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_time_ms: 1,
    }
}

async fn group_writes_are_refused_once_the_coordinator_moved_on(s: Arc<SqlStore>) {
    let broker = |id: i32, expires: i64| BrokerRecord {
        broker_id: id,
        incarnation: format!("i{id}"),
        host: "h".into(),
        port: 9000 + id,
        rack: None,
        listeners: Vec::new(),
        lease_expires_ms: expires,
    };
    s.register_broker(&broker(1, 1_000), None, 0).await.unwrap();
    s.balance_leadership(0, 1).await.unwrap();
    let first = coordinator_term(&s).await;
    assert_eq!(first.broker_id, 1);
    s.commit_offsets(first, "g", &[offset("t", 10)])
        .await
        .unwrap();
    // Broker 1's lease lapses; broker 2 takes the seat at a new epoch.
    s.register_broker(&broker(2, 10_000), None, 500)
        .await
        .unwrap();
    s.balance_leadership(2_000, 1).await.unwrap();
    let second = coordinator_term(&s).await;
    assert_eq!(second.broker_id, 2);
    assert!(second.epoch > first.epoch);
    s.commit_offsets(second, "g", &[offset("t", 20)])
        .await
        .unwrap();
    // Every write of the first term is refused and changes nothing.
    let fenced = |r: floe_storage::Result<()>| matches!(r, Err(StorageError::Fenced(_)));
    assert!(fenced(
        s.commit_offsets(first, "g", &[offset("t", 15)]).await
    ));
    assert!(fenced(
        s.delete_offsets(first, "g", &[("t".into(), 0)]).await
    ));
    assert!(fenced(s.delete_group(first, "g").await));
    let classic = GroupRecord {
        group_id: "g".into(),
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        generation_id: 7,
        leader_id: None,
        state: "Empty".into(),
        members: vec![],
    };
    assert!(fenced(s.save_group(first, &classic, 3_000).await));
    let kip848 = ConsumerProtocolGroupRecord {
        group_id: "h".into(),
        group_epoch: 3,
        ..Default::default()
    };
    assert!(fenced(
        s.save_consumer_protocol_group(first, &kip848, 3_000).await
    ));
    // So is a term with the right epoch but another broker.
    let impostor = CoordinatorTerm {
        broker_id: 1,
        epoch: second.epoch,
    };
    assert!(fenced(
        s.commit_offsets(impostor, "g", &[offset("t", 15)]).await
    ));
    assert_eq!(
        s.fetch_offsets("g").await.unwrap(),
        vec![offset("t", 20)],
        "the second term's commit stands"
    );
    assert!(s.load_groups().await.unwrap().is_empty());
    assert!(s.load_consumer_protocol_groups().await.unwrap().is_empty());
    // The holder's writes go through.
    s.save_group(second, &classic, 3_000).await.unwrap();
    s.save_consumer_protocol_group(second, &kip848, 3_000)
        .await
        .unwrap();
    assert_eq!(s.load_groups().await.unwrap().len(), 1);
    s.delete_group(second, "g").await.unwrap();
    assert!(s.fetch_offsets("g").await.unwrap().is_empty());
}

fn acl(name: &str, operation: i8, permission: i8) -> AclRecord {
    AclRecord {
        resource_type: 2,
        resource_name: name.into(),
        pattern_type: 3,
        principal: "User:alice".into(),
        host: "*".into(),
        operation,
        permission,
    }
}

async fn acls_are_added_and_removed_exactly_and_each_change_moves_the_token(s: Arc<SqlStore>) {
    assert_eq!(s.acls().await.unwrap(), (vec![], None));
    let read = acl("orders", 3, 3);
    let deny = acl("orders", 4, 2);
    s.alter_acls(&[read.clone(), deny.clone()], &[])
        .await
        .unwrap();
    let sorted = |mut acls: Vec<AclRecord>| {
        acls.sort();
        acls
    };
    let (acls, first) = s.acls().await.unwrap();
    assert_eq!(sorted(acls), sorted(vec![deny.clone(), read.clone()]));
    assert!(first.is_some());
    assert_eq!(s.acls_change().await.unwrap(), first);
    // Adding one again keeps one row; removing one that is absent is no error.
    s.alter_acls(std::slice::from_ref(&read), &[acl("other", 3, 3)])
        .await
        .unwrap();
    let (acls, second) = s.acls().await.unwrap();
    assert_eq!(acls.len(), 2);
    assert_ne!(second, first);
    // A removal matches every column: the same entry for another host stays.
    let elsewhere = AclRecord {
        host: "10.0.0.1".into(),
        ..read.clone()
    };
    s.alter_acls(std::slice::from_ref(&elsewhere), &[read])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.acls().await.unwrap().0),
        sorted(vec![deny, elsewhere])
    );
}

async fn transactions_open_and_end_with_the_flushes_that_hold_them(s: Arc<SqlStore>) {
    s.create_topic(&topic("t"), 1, 0).await.unwrap();
    s.claim_leadership(0).await.unwrap();
    let open = |ranges: Vec<(i64, i64)>| OpenTransactionRecord {
        topic: "t".into(),
        partition: 0,
        producer_id: 7,
        producer_epoch: 0,
        ranges,
    };
    // A flush with a transaction's first records opens it.
    let mut first = flush_of("t", "f0", 0, 0, 5, 0);
    first.open_transactions = vec![open(vec![(0, 4)])];
    s.commit_flush(&first).await.unwrap();
    assert_eq!(
        s.list_open_transactions("t").await.unwrap(),
        vec![open(vec![(0, 4)])]
    );
    // The next holds its abort marker at offset 5: no longer open, and the
    // marker names the records it aborted.
    let marker = TransactionMarkerRecord {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        producer_id: 7,
        producer_epoch: 1,
        committed: false,
        ranges: vec![(0, 4)],
    };
    let mut second = flush_of("t", "f1", 0, 5, 1, 5);
    second.open_transactions = vec![open(vec![])];
    second.markers = vec![marker.clone()];
    s.commit_flush(&second).await.unwrap();
    assert!(s.list_open_transactions("t").await.unwrap().is_empty());
    assert_eq!(s.list_transaction_markers("t").await.unwrap(), vec![marker]);
    // A refused flush writes none of it.
    let mut refused = flush_of("t", "f2", 0, 0, 1, 6);
    refused.open_transactions = vec![open(vec![(0, 0)])];
    assert!(s.commit_flush(&refused).await.is_err());
    assert!(s.list_open_transactions("t").await.unwrap().is_empty());
    // Markers below the log start go; a deleted topic leaves nothing.
    s.advance_log_starts("t", &[(0, 6)]).await.unwrap();
    assert!(s.list_transaction_markers("t").await.unwrap().is_empty());
    s.delete_topic("t").await.unwrap();
    assert!(s.list_open_transactions("t").await.unwrap().is_empty());

    // The coordinator's state, saved in its term only.
    s.register_broker(
        &BrokerRecord {
            broker_id: 0,
            incarnation: "i0".into(),
            host: "h".into(),
            port: 9000,
            rack: None,
            listeners: Vec::new(),
            lease_expires_ms: i64::MAX / 2,
        },
        None,
        0,
    )
    .await
    .unwrap();
    s.balance_leadership(0, 1).await.unwrap();
    let term = coordinator_term(&s).await;
    let t = TransactionRecord {
        transactional_id: "app".into(),
        producer_id: 7,
        producer_epoch: 3,
        state: "Ongoing".into(),
        timeout_ms: 60_000,
        partitions: vec![("t".into(), 0)],
        group_offsets: vec![("g".into(), offset("t", 42))],
        started_ms: 5,
        updated_ms: 6,
        previous_producer: None,
    };
    s.save_transaction(term, &t).await.unwrap();
    assert_eq!(s.load_transactions().await.unwrap(), vec![t.clone()]);
    let bumped = TransactionRecord {
        producer_epoch: 4,
        previous_producer: Some((7, 3)),
        ..t.clone()
    };
    s.save_transaction(term, &bumped).await.unwrap();
    assert_eq!(s.load_transactions().await.unwrap(), vec![bumped]);
    let stale = CoordinatorTerm {
        epoch: term.epoch - 1,
        ..term
    };
    assert!(matches!(
        s.save_transaction(stale, &t).await,
        Err(StorageError::Fenced(_))
    ));
}

/// Each behaviour test, once on each database.
macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::sqlite().await).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $test() {
                if let Some(store) = super::postgres().await {
                    super::$test(store).await;
                }
            })*
        }
    };
}

on_both_databases!(
    a_rewrite_may_leave_out_only_rows_below_the_log_start,
    a_key_compaction_keeps_the_offsets_of_what_it_replaces,
    a_broker_id_is_held_by_one_incarnation_while_its_lease_is_live,
    the_table_waits_for_files_written_after_a_chunk_still_in_the_intake,
    a_batch_of_flushes_commits_in_a_few_statements_or_not_at_all,
    intake_objects_with_chunks_are_found_in_one_query,
    commit_is_fenced_by_leader_epoch,
    group_writes_are_refused_once_the_coordinator_moved_on,
    acls_are_added_and_removed_exactly_and_each_change_moves_the_token,
    transactions_open_and_end_with_the_flushes_that_hold_them,
);

/// Options that give up quickly, for the startup-error tests.
fn impatient() -> PostgresOptions {
    PostgresOptions {
        acquire_timeout: std::time::Duration::from_secs(3),
        ..PostgresOptions::default()
    }
}

/// The message of a startup failure that is meant to say what to fix.
fn unusable(result: Result<SqlStore, StorageError>) -> String {
    match result {
        Err(StorageError::Backend(BackendError::MetadataUnusable(m))) => m,
        Err(other) => panic!("expected a startup error that says what to do, got {other:?}"),
        Ok(_) => panic!("expected the open to fail"),
    }
}

#[tokio::test]
async fn brokers_starting_at_once_create_the_tables_once() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let options = PostgresOptions::default();
    let opens = (0..8).map(|_| SqlStore::postgres(&db.url, &options));
    let stores: Vec<SqlStore> = futures::future::join_all(opens)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every broker opens");
    // They share one cluster id and see each other's writes.
    let ids: std::collections::BTreeSet<String> =
        futures::future::join_all(stores.iter().map(|s| s.cluster_id()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(ids.len(), 1);
    stores[0].create_topic(&topic("t"), 3, 0).await.unwrap();
    assert_eq!(stores[7].list_partitions("t").await.unwrap().len(), 3);
}

#[tokio::test]
async fn concurrent_registrations_and_topic_creations_agree() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = SqlStore::postgres(&db.url, &PostgresOptions::default())
        .await
        .unwrap();
    let b = SqlStore::postgres(&db.url, &PostgresOptions::default())
        .await
        .unwrap();
    // The same schema from two brokers at once: one id, one version.
    let same = futures::future::join_all((0..10).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        s.register_schema("s-value", "PROTOBUF", "message M {}", "[]", 1)
    }))
    .await;
    let same: std::collections::BTreeSet<(i32, i32)> =
        same.into_iter().map(Result::unwrap).collect();
    assert_eq!(same.len(), 1, "{same:?}");
    // Different schemas at once: distinct ids, consecutive versions.
    let different = futures::future::join_all((0..10).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let text = format!("message M{i} {{}}");
        async move {
            s.register_schema("d-value", "PROTOBUF", &text, "[]", 1)
                .await
        }
    }))
    .await;
    let mut versions: Vec<i32> = different.iter().map(|r| r.as_ref().unwrap().1).collect();
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    // Colliding topic names created at once: exactly one wins.
    let created = futures::future::join(
        a.create_topic(&topic("x.y"), 1, 0),
        b.create_topic(&topic("x_y"), 1, 0),
    )
    .await;
    let won = [created.0.is_ok(), created.1.is_ok()];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{created:?}");
    let lost = if won[0] { created.1 } else { created.0 };
    assert!(
        matches!(lost, Err(StorageError::TopicCollides(..))),
        "{lost:?}"
    );
}

#[tokio::test]
async fn a_database_extended_by_a_newer_floe_is_refused() {
    let Some(db) = postgres_database().await else {
        return;
    };
    SqlStore::postgres(&db.url, &PostgresOptions::default())
        .await
        .unwrap();
    db.execute("INSERT INTO ddl_applied (name, applied_ms) VALUES ('990-future.sql', 1)")
        .await;
    let message = unusable(SqlStore::postgres(&db.url, &PostgresOptions::default()).await);
    assert!(
        message.contains("990-future.sql") && message.contains("newer"),
        "{message}"
    );
}

#[tokio::test]
async fn startup_errors_say_what_to_fix() {
    let Some(db) = postgres_database().await else {
        return;
    };
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let message = unusable(
        SqlStore::postgres(
            &format!("postgres://floe@127.0.0.1:{port}/floe"),
            &impatient(),
        )
        .await,
    );
    assert!(message.contains("cannot reach PostgreSQL"), "{message}");
    // A database that does not exist.
    let mut missing = url::Url::parse(&db.url).unwrap();
    missing.set_path("no_such_database");
    let message = unusable(SqlStore::postgres(missing.as_str(), &impatient()).await);
    assert!(
        message.contains("\"no_such_database\" does not exist"),
        "{message}"
    );
    // A user that may connect but not create tables (PostgreSQL 15 gives
    // no one but the owner CREATE on schema public).
    let reader = format!("reader_{}", &db.name[5..13]);
    db.execute(&format!("CREATE ROLE {reader} LOGIN")).await;
    let message = unusable(SqlStore::postgres(&db.url_as(&reader), &impatient()).await);
    assert!(
        message.contains("may not create or change floe's tables") && message.contains(&reader),
        "{message}"
    );
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let store = SqlStore::postgres(
        &db.url,
        &PostgresOptions {
            statement_timeout: std::time::Duration::from_millis(200),
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    store.create_topic(&topic("t"), 1, 0).await.unwrap();
    // Another session holds the topic's partitions: the store's update
    // waits on the row lock until its statement timeout ends it.
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; UPDATE partitions SET leader_epoch = leader_epoch WHERE topic = 't';")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let result = store.claim_leadership(0).await;
    assert!(result.is_err(), "the update should have been cancelled");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn registration(incarnation: &str, port: i32, expires: i64) -> BrokerRecord {
    BrokerRecord {
        broker_id: 1,
        incarnation: incarnation.into(),
        host: "h".into(),
        port,
        rack: Some("r1".into()),
        lease_expires_ms: expires,
        listeners: ["PLAINTEXT", "SASL_SSL"]
            .iter()
            .zip([port, port + 100])
            .map(|(name, port)| ListenerAddress {
                name: name.to_string(),
                host: format!("{incarnation}.example"),
                port,
            })
            .collect(),
    }
}

async fn a_broker_id_is_held_by_one_incarnation_while_its_lease_is_live(s: Arc<SqlStore>) {
    let a = registration("a", 9092, 1_000);
    assert_eq!(s.register_broker(&a, None, 0).await.unwrap(), None);
    // Another incarnation is refused while the lease is live, and told
    // who holds the id.
    let b = registration("b", 9093, 2_000);
    assert_eq!(
        s.register_broker(&b, None, 500)
            .await
            .unwrap()
            .map(|h| h.incarnation),
        Some(a.incarnation.clone())
    );
    assert_eq!(s.live_brokers(600).await.unwrap(), vec![a.clone()]);
    // The holder renews; its own re-registration is accepted.
    assert!(s.renew_broker_lease(1, "a", 1_500).await.unwrap());
    assert_eq!(
        s.register_broker(&b, None, 1_200)
            .await
            .unwrap()
            .map(|h| h.lease_expires_ms),
        Some(1_500)
    );
    // Named as dead, it is replaced at once; it can no longer renew.
    assert_eq!(s.register_broker(&b, Some("a"), 1_200).await.unwrap(), None);
    assert!(!s.renew_broker_lease(1, "a", 3_000).await.unwrap());
    // With its listeners, not those of the run it replaced.
    assert_eq!(s.live_brokers(1_999).await.unwrap(), vec![b.clone()]);
    assert_eq!(b.listeners[1].port, 9193);
    assert_eq!(
        b.address("SASL_SSL"),
        Some(("b.example", 9193)),
        "the address of a named listener"
    );
    assert_eq!(b.address("INTERNAL"), None);
    assert_eq!(
        s.live_brokers(2_001).await.unwrap(),
        vec![],
        "a lapsed lease is not live"
    );
    // Once lapsed, anyone may take the id.
    let c = registration("c", 9094, 5_000);
    assert_eq!(s.register_broker(&c, None, 2_001).await.unwrap(), None);
    // A clean stop frees it; an old incarnation's stop changes nothing.
    s.unregister_broker(1, "b").await.unwrap();
    assert_eq!(s.live_brokers(3_000).await.unwrap(), vec![c]);
    s.unregister_broker(1, "c").await.unwrap();
    assert_eq!(s.live_brokers(3_000).await.unwrap(), vec![]);
}

/// A rewrite of `old` into `path` holding `segments` (partition, base, n).
fn rewrite(old: &str, path: &str, segments: &[(i32, i64, i64)]) -> FileReplacement {
    FileReplacement {
        topic: "t".into(),
        leader_id: 0,
        old_paths: vec![old.into()],
        old_segments: 2,
        path: path.into(),
        size_bytes: 10,
        segments: segments
            .iter()
            .map(|&(p, base, n)| flush_of("t", path, p, base, n, 0).segments.remove(0))
            .collect(),
        created_ms: 1,
        keeps: Keeps::Every,
    }
}

async fn a_rewrite_may_leave_out_only_rows_below_the_log_start(s: Arc<SqlStore>) {
    s.create_topic(&topic("t"), 2, 0).await.unwrap();
    s.claim_leadership(0).await.unwrap();
    // One file, 100 rows of each partition.
    let mut f = flush_of("t", "f", 0, 0, 100, 0);
    f.high_watermarks.push((1, 1, 100));
    let p1 = flush_of("t", "f", 1, 0, 100, 0).segments.remove(0);
    f.segments.push(p1);
    f.producers.clear();
    s.commit_flush(&f).await.unwrap();
    assert!(s.files_below_log_start("t").await.unwrap().is_empty());
    // A rewrite that loses rows Kafka still serves is refused.
    assert!(matches!(
        s.replace_files(&rewrite("f", "g", &[(0, 10, 90), (1, 0, 100)]))
            .await,
        Err(StorageError::LogInconsistent {
            partition: 0,
            offset: 10,
            ..
        })
    ));
    // DeleteRecords cuts partition 0 at 50: the file holds rows below it.
    s.advance_log_starts("t", &[(0, 50)]).await.unwrap();
    assert_eq!(s.files_below_log_start("t").await.unwrap(), vec!["f"]);
    // Leaving out more than those rows is still refused...
    assert!(matches!(
        s.replace_files(&rewrite("f", "g", &[(0, 60, 40), (1, 0, 100)]))
            .await,
        Err(StorageError::LogInconsistent {
            partition: 0,
            offset: 60,
            ..
        })
    ));
    assert!(matches!(
        s.replace_files(&rewrite("f", "g", &[(0, 50, 50), (1, 1, 99)]))
            .await,
        Err(StorageError::LogInconsistent {
            partition: 1,
            offset: 1,
            ..
        })
    ));
    // ...and a count that does not match its offsets too.
    assert!(matches!(
        s.replace_files(&rewrite("f", "g", &[(0, 50, 49), (1, 0, 100)]))
            .await,
        Err(StorageError::LogInconsistent { .. })
    ));
    // The trim itself is taken, and nothing is below the log start any more.
    assert!(s
        .replace_files(&rewrite("f", "g", &[(0, 50, 50), (1, 0, 100)]))
        .await
        .unwrap());
    assert!(s.files_below_log_start("t").await.unwrap().is_empty());
    let segs = s.list_segments("t").await.unwrap();
    let got: Vec<(i32, i64, i64)> = segs
        .iter()
        .map(|r| (r.partition, r.base_offset, r.last_offset))
        .collect();
    assert_eq!(got, vec![(0, 50, 99), (1, 0, 99)]);
}

/// A key compaction of `old` into `path` holding `segments` (partition,
/// base, last, rows).
fn keys_rewrite(old: &str, path: &str, segments: &[(i32, i64, i64, i64)]) -> FileReplacement {
    let mut r = rewrite(old, path, &[]);
    r.old_segments = 1;
    r.keeps = Keeps::LatestPerKey;
    r.segments = segments
        .iter()
        .map(|&(p, base, last, rows)| {
            let mut s = flush_of("t", path, p, base, last - base + 1, 0)
                .segments
                .remove(0);
            s.record_count = rows;
            s
        })
        .collect();
    r
}

async fn a_key_compaction_keeps_the_offsets_of_what_it_replaces(s: Arc<SqlStore>) {
    s.create_topic(&topic("t"), 1, 0).await.unwrap();
    s.claim_leadership(0).await.unwrap();
    let mut f = flush_of("t", "f", 0, 0, 100, 0);
    f.producers.clear();
    s.commit_flush(&f).await.unwrap();
    let refused =
        |r: Result<bool, StorageError>| matches!(r, Err(StorageError::LogInconsistent { .. }));
    // Fewer rows over the same offsets is what only a key compaction may do.
    let mut as_merge = keys_rewrite("f", "g", &[(0, 0, 99, 10)]);
    as_merge.keeps = Keeps::Every;
    assert!(refused(s.replace_files(&as_merge).await));
    // It must cover every offset it replaces, from the first to the last,
    // in segments that follow each other, with at least one row and no
    // more rows than offsets.
    for bad in [
        &[(0, 1, 99, 10)][..],
        &[(0, 0, 98, 10)],
        &[(0, 0, 49, 5), (0, 51, 99, 5)],
        &[(0, 0, 99, 0)],
        &[(0, 0, 9, 11), (0, 10, 99, 5)],
    ] {
        assert!(
            refused(s.replace_files(&keys_rewrite("f", "g", bad)).await),
            "{bad:?}"
        );
    }
    assert!(s
        .replace_files(&keys_rewrite("f", "g", &[(0, 0, 49, 5), (0, 50, 99, 5)]))
        .await
        .unwrap());
    let got: Vec<(i64, i64, i64)> = s
        .list_segments("t")
        .await
        .unwrap()
        .iter()
        .map(|r| (r.base_offset, r.last_offset, r.record_count))
        .collect();
    assert_eq!(got, vec![(0, 49, 5), (50, 99, 5)]);
    // A trim of a thinned-out file (DeleteRecords at 60) may keep at most
    // the rows its offsets leave, however many the gaps took, and covers
    // the same offsets from the cut on.
    s.advance_log_starts("t", &[(0, 60)]).await.unwrap();
    let mut trim = keys_rewrite("g", "h", &[(0, 60, 63, 4)]);
    trim.keeps = Keeps::Every;
    assert!(refused(s.replace_files(&trim).await));
    let mut trim = keys_rewrite("g", "h", &[(0, 60, 99, 6)]);
    trim.keeps = Keeps::Every;
    assert!(refused(s.replace_files(&trim).await));
    let mut trim = keys_rewrite("g", "h", &[(0, 60, 99, 4)]);
    trim.keeps = Keeps::Every;
    assert!(s.replace_files(&trim).await.unwrap());
}

/// A SQLite database made before `transactions` had its previous-producer
/// columns gets them at open, its rows reading as having none.
#[tokio::test]
async fn a_database_from_before_the_previous_producer_columns_gains_them() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE transactions (
                transactional_id TEXT PRIMARY KEY, producer_id BIGINT NOT NULL,
                producer_epoch INTEGER NOT NULL, state TEXT NOT NULL,
                timeout_ms BIGINT NOT NULL, partitions TEXT NOT NULL,
                group_offsets TEXT NOT NULL, started_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL);
             INSERT INTO transactions VALUES ('old', 3, 1, 'Empty', 1000, '[]', '[]', 0, 9);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let s = SqlStore::sqlite(&path).await.unwrap();
    let all = s.load_transactions().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].producer_id, all[0].previous_producer), (3, None));
}
