"""A broker on the PostgreSQL metadata store (`--metadata postgres://...`):
everything it acknowledged (records, committed offsets, schemas, topic
configs) is in PostgreSQL and the object store, and comes back after kill
-9; a store it cannot use stops it at startup with a message that says
what to fix."""

import json
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer

from conftest import floe_refuses_to_start, free_port, psql
from helpers import consume_all, create_topic


def register(floe, subject, schema):
    req = urllib.request.Request(f"{floe.http}/subjects/{subject}/versions", method="POST",
                                 data=json.dumps({"schemaType": "PROTOBUF", "schema": schema}).encode(),
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


def test_a_broker_on_postgres_keeps_everything_across_kill9(floe_factory, postgres):
    f = floe_factory(f"--metadata={postgres}", "--group-initial-rebalance-delay-ms=0")
    topic, partitions = "orders", 3
    create_topic(f.bootstrap, topic, partitions, config={"retention.ms": "86400000"})

    # librdkafka, idempotent, and kafka-python: two independent clients.
    errors = []
    p = Producer({"bootstrap.servers": f.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(3000):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(), partition=i % partitions,
                  on_delivery=lambda err, _m: err and errors.append(err))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0 and not errors
    kp = KafkaProducer(bootstrap_servers=f.bootstrap, acks="all")
    for i in range(3000, 3300):
        kp.send(topic, key=str(i).encode(), value=f"v{i}".encode(), partition=i % partitions)
    kp.flush(60)
    kp.close()

    # A group commits part of the way.
    c = Consumer({"bootstrap.servers": f.bootstrap, "group.id": "billing", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    read = 0
    while read < 600:
        m = c.poll(5)
        assert m is not None and not m.error()
        read += 1
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)])}
    c.close()
    assert sum(o for o in committed.values() if o >= 0) == 600

    schema_id = register(f, "orders-value", 'syntax = "proto3"; message Order { string id = 1; }')

    # The metadata is PostgreSQL's, not a SQLite file beside the data.
    assert psql(postgres, f"SELECT count(*) FROM partitions WHERE topic = '{topic}'") == "3"
    assert psql(postgres, "SELECT max(high_watermark) FROM partitions") != "0"
    assert not (f.data_dir / "metadata.db").exists()

    f.restart(kill=True)

    got = consume_all(f.bootstrap, topic, partitions, expected=3300)
    values = sorted(int(m.value()[1:]) for msgs in got.values() for m in msgs)
    assert values == list(range(3300))
    for msgs in got.values():
        assert [m.offset() for m in msgs] == list(range(len(msgs)))
    c = Consumer({"bootstrap.servers": f.bootstrap, "group.id": "billing"})
    after = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)])}
    c.close()
    assert after == committed
    req = urllib.request.Request(f"{f.http}/schemas/ids/{schema_id}")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "message Order" in json.loads(r.read())["schema"]
    assert psql(postgres, f"SELECT value FROM topic_configs WHERE topic = '{topic}' AND key = 'retention.ms'") \
        == "86400000"


def start_failure(tmp_path, metadata):
    return floe_refuses_to_start(tmp_path / "data", f"--metadata={metadata}")


def test_a_store_it_cannot_use_stops_the_broker_with_what_to_fix(tmp_path, postgres_server):
    port = free_port()
    said = start_failure(tmp_path, f"postgres://floe@127.0.0.1:{port}/floe")
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in said, said
    missing = postgres_server.rsplit("/", 1)[0] + "/no_such_db"
    said = start_failure(tmp_path, missing)
    assert 'database "no_such_db" does not exist' in said, said
    said = start_failure(tmp_path, "mysql://root@127.0.0.1/floe")
    assert "unsupported metadata store URL" in said, said
