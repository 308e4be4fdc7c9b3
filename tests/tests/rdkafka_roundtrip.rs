//! librdkafka through the `rdkafka` crate: produce with every codec and an
//! idempotent producer, restart the broker, read everything back byte for
//! byte.

use std::time::Duration;

use floe_tests::Floe;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};

const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_across_a_restart() {
    let mut floe = Floe::start(&[]).expect("floe starts");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &floe.bootstrap)
        .create()
        .expect("admin");
    let r = admin
        .create_topics(
            &[NewTopic::new("rs", PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create");
    assert!(r[0].is_ok(), "{r:?}");

    let mut expected = Vec::new();
    for (c, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &floe.bootstrap)
            .set("compression.type", *codec)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let mut futures = Vec::new();
        for i in 0..2000 {
            let n = c * 2000 + i;
            let key = format!("key-{n}");
            let value = vec![(n % 251) as u8; n % 700];
            let headers = OwnedHeaders::new().insert(Header {
                key: "n",
                value: Some(&n.to_string()),
            });
            let part = (n % PARTITIONS as usize) as i32;
            expected.push((part, key.clone().into_bytes(), value.clone(), n.to_string()));
            let rec = FutureRecord::to("rs")
                .key(&key)
                .payload(&value)
                .headers(headers)
                .partition(part);
            futures.push(producer.send_result(rec).expect("queued"));
        }
        for f in futures {
            f.await.expect("delivered").expect("acknowledged");
        }
    }

    floe.restart(false).expect("restart");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &floe.bootstrap)
        .set("group.id", "rs-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("rs", p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < expected.len() && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.expect("message");
            let h = m.headers().expect("headers").get(0);
            got.push((
                m.partition(),
                m.key().expect("key").to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                String::from_utf8(h.value.expect("header value").to_vec()).expect("utf8"),
            ));
        }
    }
    assert_eq!(got.len(), expected.len());
    got.sort_by_key(|g| g.3.parse::<usize>().expect("n"));
    assert_eq!(got, expected);
}
