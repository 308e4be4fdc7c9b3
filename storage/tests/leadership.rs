//! Two brokers' logs on one metadata store and one object store: a topic
//! is led by one of them; moved to the other, the former leader's writes
//! are refused from the move on (its late commit included), the new leader
//! starts from what was committed, and the former one lets go of the topic
//! when it follows the placement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use floe_protocol::records::{split_batches, BatchBuilder};
use floe_storage::log::{now_ms, Log, LogConfig};
use floe_storage::meta::sql::SqlStore;
use floe_storage::meta::{BrokerRecord, MetadataStore};
use floe_storage::object::open_object_store;
use floe_storage::table::TableConfig;
use floe_storage::StorageError;

async fn open(dir: &std::path::Path, broker_id: i32) -> (Arc<Log>, Arc<dyn MetadataStore>) {
    let objects = open_object_store(dir.join("objects").to_str().unwrap()).unwrap();
    let meta: Arc<dyn MetadataStore> =
        Arc::new(SqlStore::sqlite(&dir.join("meta.db")).await.unwrap());
    let cfg = LogConfig {
        broker_id,
        tables: TableConfig {
            root_uri: objects.root_uri.clone(),
            ..TableConfig::default()
        },
        maintenance_interval: Duration::from_secs(3600),
        flush_linger: Duration::from_millis(20),
        ..LogConfig::default()
    };
    let log = Log::open(cfg, meta.clone(), objects.store, objects.prefix)
        .await
        .unwrap();
    (log, meta)
}

fn batch(values: &[&str]) -> bytes::Bytes {
    let mut b = BatchBuilder::new(0, now_ms(), 0);
    for (i, v) in values.iter().enumerate() {
        b.push(i as i64, now_ms(), None, Some(v.as_bytes()), &[]);
    }
    b.finish(0)
}

async fn values(log: &Arc<Log>, topic: &str) -> Vec<String> {
    let topic = log.topic(topic).unwrap();
    let r = log.read(&topic, 0, 0, 1 << 20).await.unwrap();
    let mut out = Vec::new();
    for raw in r.batches {
        for b in split_batches(raw).unwrap() {
            for rec in b.records(1 << 30).unwrap() {
                out.push(String::from_utf8(rec.value.unwrap().to_vec()).unwrap());
            }
        }
    }
    out
}

fn live(broker_id: i32) -> BrokerRecord {
    BrokerRecord {
        broker_id,
        incarnation: format!("run-{broker_id}"),
        host: "127.0.0.1".into(),
        port: 9000 + broker_id,
        rack: None,
        listeners: Vec::new(),
        lease_expires_ms: now_ms() + 3_600_000,
    }
}

async fn follow(log: &Arc<Log>, meta: &Arc<dyn MetadataStore>) {
    let read_at = std::time::Instant::now();
    let (leaders, records) = (
        meta.topic_leaders().await.unwrap(),
        meta.list_topics().await.unwrap(),
    );
    log.follow(&leaders, &records, read_at).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_topic_fences_its_former_leader_and_the_new_one_starts_from_the_committed_end() {
    let dir = tempfile::tempdir().unwrap();
    let (a, meta) = open(dir.path(), 1).await;
    a.create_topic("t", 1, BTreeMap::new(), false)
        .await
        .unwrap();
    a.append("t", 0, batch(&["a0", "a1"]))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    let (b, _) = open(dir.path(), 2).await;
    assert!(b.topic("t").is_none(), "broker 2 does not lead t yet");

    // The placement moves the topic to broker 2 (broker 1 is not live);
    // broker 1 has not heard of it yet and takes an append, whose commit
    // comes too late.
    meta.register_broker(&live(2), None, now_ms())
        .await
        .unwrap();
    let moves = meta.balance_leadership(now_ms(), 0).await.unwrap();
    assert!(moves
        .iter()
        .any(|m| m.topic == "t" && m.from == 1 && m.to == 2));
    let late = a.append("t", 0, batch(&["late"])).await.unwrap();
    match late.committed().await {
        Err(e) => assert!(
            matches!(e, StorageError::Fenced(_) | StorageError::FlushFailed(_)),
            "{e}"
        ),
        Ok(()) => panic!("the former leader's late commit was acknowledged"),
    }
    follow(&b, &meta).await;
    assert_eq!(values(&b, "t").await, ["a0", "a1"]);
    b.append("t", 0, batch(&["b0"]))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();

    // The former leader refuses writes, and lets go when it follows.
    let refused = a.append("t", 0, batch(&["later"])).await;
    if let Ok(p) = refused {
        assert!(p.committed().await.is_err(), "a fenced leader acknowledged");
    }
    follow(&a, &meta).await;
    assert!(a.topic("t").is_none());
    assert!(matches!(
        a.append("t", 0, batch(&["x"])).await,
        Err(StorageError::UnknownTopic(_))
    ));
    assert_eq!(values(&b, "t").await, ["a0", "a1", "b0"]);
    let topic = b.topic("t").unwrap();
    assert_eq!(topic.partition(0).unwrap().snapshot().high_watermark, 3);
}
