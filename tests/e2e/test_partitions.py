"""Wide topics (issue 14): a flush over many partitions writes their small
runs into shared row groups. Every acknowledged record stays readable at its
offset across kill -9, the invariant check holds, the table's snapshots say
where each partition ends, and compaction (which cuts a shared row group
into its partitions) changes nothing a reader sees, across kill -9 too."""

import json
import os
import random
import time
import urllib.error
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from helpers import admin

PARTITIONS = 300


def http(method, url, timeout=60):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def snapshot_covers(f, topic, partition, offset):
    url = f"{f.http}/admin/topics/{topic}/snapshots?partition={partition}&offset={offset}"
    try:
        http("GET", url, timeout=10)
        return True
    except urllib.error.HTTPError:
        return False


def read_all(f, topic, expected):
    """{partition: [(offset, value)]} read with kafka-python from the start."""
    c = KafkaConsumer(bootstrap_servers=f.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000,
                      max_partition_fetch_bytes=1 << 20)
    try:
        c.assign([KTopicPartition(topic, p) for p in range(PARTITIONS)])
        c.seek_to_beginning()
        got = {p: [] for p in range(PARTITIONS)}
        deadline = time.time() + 90
        while sum(len(v) for v in got.values()) < expected and time.time() < deadline:
            for tp, msgs in c.poll(1000, max_records=10000).items():
                got[tp.partition].extend((m.offset, m.value) for m in msgs)
        return got
    finally:
        c.close()


def assert_log(f, topic, acked):
    got = read_all(f, topic, sum(len(v) for v in acked.values()))
    for p in range(PARTITIONS):
        assert [v for _, v in got[p]] == acked[p], f"partition {p}"
        assert [o for o, _ in got[p]] == list(range(len(acked[p]))), f"partition {p}"
    check = http("GET", f"{f.http}/admin/topics/{topic}/check", timeout=120)
    assert check["problems"] == [], check["problems"][:5]


def test_a_wide_topic_keeps_every_record_through_shared_row_groups_and_compaction(floe_factory):
    f = floe_factory()
    topic = "wide"
    a = admin(f.bootstrap)
    for fut in a.create_topics([NewTopic(topic, PARTITIONS, 1, config={
            "floe.iceberg.commit.interval.ms": "500"})]).values():
        fut.result(60)
    rng = random.Random(300)
    acked = {p: [] for p in range(PARTITIONS)}
    seq = 0
    for cycle in range(3):
        p = Producer({"bootstrap.servers": f.bootstrap, "acks": "all", "linger.ms": 5,
                      "enable.idempotence": True})
        delivered = []
        for _ in range(3000):
            part = rng.randrange(PARTITIONS)
            value = b"%d-%07d-" % (part, seq) + os.urandom(24)
            seq += 1
            p.produce(topic, value=value, partition=part,
                      on_delivery=lambda err, m: delivered.append((err, m.partition(), m.offset(), m.value())))
            p.poll(0)
        assert p.flush(60) == 0
        for err, part, offset, value in sorted(delivered, key=lambda d: (d[1], d[2])):
            assert err is None, err
            assert offset == len(acked[part]), (part, offset)
            acked[part].append(value)
        # Killed while the table commits and the next flushes may be under
        # way.
        time.sleep(rng.uniform(0, 0.6))
        f.restart(kill=True)

    assert_log(f, topic, acked)
    # Each snapshot says how far every partition is in the table; the
    # shared row groups' footers are what tells it.
    deadline = time.time() + 30
    pending = {p for p in range(PARTITIONS) if acked[p]}
    while pending:
        pending = {p for p in pending if not snapshot_covers(f, topic, p, len(acked[p]) - 1)}
        assert time.time() < deadline, f"partitions the table does not cover: {sorted(pending)[:10]}"
        time.sleep(0.2)

    # Compaction cuts the shared row groups into each partition's rows;
    # killed right after, nothing moves.
    http("POST", f"{f.http}/admin/topics/{topic}/compact", timeout=120)
    assert f.log_contains("compacted")
    f.restart(kill=True)
    assert_log(f, topic, acked)

    from pyiceberg.catalog.rest import RestCatalog

    cat = RestCatalog("floe", uri=f.http + "/iceberg")
    deadline = time.time() + 30
    while True:
        rows = cat.load_table(f"floe.{topic}").scan(selected_fields=("partition", "offset", "value")).to_arrow()
        if rows.num_rows >= seq or time.time() > deadline:
            break
        time.sleep(0.5)
    got = sorted(zip(rows.column("partition").to_pylist(), rows.column("offset").to_pylist(),
                     rows.column("value").to_pylist()))
    want = sorted((p, o, v) for p in range(PARTITIONS) for o, v in enumerate(acked[p]))
    assert got == want
