"""The shared intake (issue 14): on an S3 store a broker writes about one
object per flush linger whatever the number of topics, every record stays
readable, and each topic's rows reach its own Parquet files and its table
within the commit interval, also across kill -9."""

import json
import os
import random
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from helpers import admin


def scrape(f):
    with urllib.request.urlopen(f.http + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def puts(m, cls):
    return m.get(f'floe_object_store_requests_total{{kind="put",class="{cls}"}}', 0)


def create_topics(bootstrap, names, config):
    a = admin(bootstrap)
    futures = a.create_topics([NewTopic(n, 1, 1, config=config) for n in names])
    for fut in futures.values():
        fut.result(60)


def read_everything(bootstrap, names, expected):
    """{topic: [values in offset order]} of partition 0 of every topic."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "intake-reader", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(n, 0, 0) for n in names])
        got = {n: [] for n in names}
        total = 0
        deadline = time.time() + 120
        while total < expected and time.time() < deadline:
            for m in c.consume(10000, 1.0):
                assert not m.error(), m.error()
                got[m.topic()].append((m.offset(), m.value()))
                total += 1
        return got
    finally:
        c.close()


def snapshot_covers(f, topic, offset):
    url = f"{f.http}/admin/topics/{topic}/snapshots?partition=0&offset={offset}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            json.loads(r.read())
        return True
    except urllib.error.HTTPError:
        return False


def test_object_writes_follow_the_linger_not_the_topic_count(s3, floe_factory):
    """300 topics written at once for 8 s: about one intake object per
    200 ms linger, no topic writes an object of its own, every record reads
    back once."""
    endpoint, root = s3
    f = floe_factory("--object-store", "s3://lake/floe")
    names = [f"t{i:03d}" for i in range(300)]
    # Tables commit later than the test runs: this counts the Kafka write
    # path alone.
    create_topics(f.bootstrap, names, {"floe.iceberg.commit.interval.ms": "3600000"})
    # Each new topic's first commit creates its table (and would move the
    # rows produced before it): the count starts once every table exists.
    settled, last, deadline = 0, -1, time.time() + 120
    while settled < 3:
        tables = puts(scrape(f), "table")
        settled = settled + 1 if tables == last and tables >= len(names) else 0
        last = tables
        assert time.time() < deadline, f"{tables:.0f} table writes for {len(names)} new topics"
        time.sleep(0.3)
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 5, "acks": "all"})
    latencies = []

    def acked(err, msg, sent=None):
        assert err is None, err
        latencies.append(time.time() - sent)

    sent = {n: [] for n in names}
    before = scrape(f)
    start = time.time()
    i = 0
    while time.time() - start < 8:
        # About 1 500 records a second, spread over every topic.
        for _ in range(150):
            n = names[i % len(names)]
            value = b"%s-%08d-" % (n.encode(), i) + os.urandom(64)
            sent[n].append(value)
            p.produce(n, value=value, partition=0, on_delivery=lambda e, m, s=time.time(): acked(e, m, s))
            i += 1
        p.poll(0)
        time.sleep(0.1)
    assert p.flush(60) == 0
    elapsed = time.time() - start
    after = scrape(f)
    intake = puts(after, "intake") - puts(before, "intake")
    data = puts(after, "data") - puts(before, "data")
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"{i} records to {len(names)} topics in {elapsed:.1f} s: {intake:.0f} intake PUTs, {data:.0f} data PUTs,"
          f" p50 ack {latencies[len(latencies) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    # One object per 200 ms linger, with room for a round split across a
    # tick on a loaded machine; 300 topics flushing alone would be ~1 500/s.
    assert intake <= elapsed / 0.2 * 1.5 + 5, intake
    assert data == 0, "no topic is busy enough for a file of its own"
    assert p99 < 3.0, p99

    got = read_everything(f.bootstrap, names, i)
    for n in names:
        assert [v for _, v in got[n]] == sent[n], n
        assert [o for o, _ in got[n]] == list(range(len(sent[n]))), n


@pytest.mark.parametrize("direct_bytes", [None, 300])
def test_tables_take_the_rows_and_the_intake_empties_across_kill9(floe_factory, direct_bytes):
    """Twenty topics, written by kafka-python while the broker is killed
    now and then: every acknowledged record is read back once in order,
    each table holds every row within its commit interval, and the intake
    objects are deleted once their rows moved. With a small
    `--intake-direct-bytes`, flushes alternate between chunks and files of
    the topic's own, which the moves take along and delete."""
    f = floe_factory(*([f"--intake-direct-bytes={direct_bytes}"] if direct_bytes else []))
    names = [f"k{i:02d}" for i in range(20)]
    create_topics(f.bootstrap, names, {"floe.iceberg.commit.interval.ms": "500"})
    rng = random.Random(14)
    acked = {n: [] for n in names}
    seq = 0
    for cycle in range(4):
        p = KafkaProducer(bootstrap_servers=f.bootstrap, acks="all", linger_ms=5, retries=0)
        futures = []
        for _ in range(400):
            n = names[rng.randrange(len(names))]
            value = b"%s-%06d" % (n.encode(), seq) + os.urandom(32)
            seq += 1
            futures.append((n, value, p.send(n, value=value, partition=0)))
        p.flush(60)
        for n, value, fut in futures:
            fut.get(30)
            acked[n].append(value)
        p.close(5)
        # Killed at a moment the moves of this cycle may be under way, or
        # not begun: the rows sit in the intake either way.
        time.sleep(rng.uniform(0, 0.8))
        f.restart(kill=True)

    # Kafka reads: everything acknowledged, once, in order (kafka-python,
    # an independent client).
    c = KafkaConsumer(bootstrap_servers=f.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    tps = [KTopicPartition(n, 0) for n in names]
    c.assign(tps)
    c.seek_to_beginning()
    got = {n: [] for n in names}
    deadline = time.time() + 60
    while sum(len(v) for v in got.values()) < seq and time.time() < deadline:
        for tp, msgs in c.poll(1000).items():
            got[tp.topic].extend((m.offset, m.value) for m in msgs)
    c.close()
    for n in names:
        assert [v for _, v in got[n]] == acked[n], n
        assert [o for o, _ in got[n]] == list(range(len(acked[n]))), n

    # Tables: every row, within the commit interval (plus the time a
    # restarted broker takes to visit every table).
    deadline = time.time() + 30
    pending = {n for n in names if acked[n]}
    while pending:
        pending = {n for n in pending if not snapshot_covers(f, n, len(acked[n]) - 1)}
        assert time.time() < deadline, f"tables without every row: {sorted(pending)}"
        time.sleep(0.2)
    from pyiceberg.catalog.rest import RestCatalog

    cat = RestCatalog("floe", uri=f.http + "/iceberg")
    for n in names[:5]:
        rows = cat.load_table(f"floe.{n}").scan().to_arrow()
        assert sorted(rows.column("offset").to_pylist()) == list(range(len(acked[n]))), n
        assert sorted(rows.column("value").to_pylist()) == sorted(acked[n]), n

    # The intake empties once every chunk moved.
    intake = Path(f.data_dir, "objects", "intake")
    deadline = time.time() + 30
    while intake.exists() and any(intake.iterdir()):
        assert time.time() < deadline, sorted(q.name for q in intake.iterdir())
        time.sleep(0.2)
    assert list(Path(f.data_dir, "objects").rglob("*.parquet")), "the rows are in the topics' own files"


def test_moves_read_the_intake_objects_from_memory(floe_factory):
    """A topic's move reads its rows of every intake object since its last
    move; the broker keeps the objects it wrote until their rows moved, so
    twenty topics moving every second read none of them back from the store
    (before: one ranged GET per topic per object)."""
    f = floe_factory()
    names = [f"mem{i:02d}" for i in range(20)]
    create_topics(f.bootstrap, names, {"floe.iceberg.commit.interval.ms": "1000"})
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 5})
    before = scrape(f)
    start = time.time()
    i = 0
    while time.time() - start < 4:
        for n in names:
            p.produce(n, value=os.urandom(100), partition=0)
            i += 1
        p.poll(0)
        time.sleep(0.02)
    assert p.flush(30) == 0
    # Every table takes in what was produced.
    deadline = time.time() + 30
    while not all(snapshot_covers(f, n, i // len(names) - 1) for n in names):
        assert time.time() < deadline, "the tables did not take the rows in"
        time.sleep(0.5)
    after = scrape(f)
    intake_puts = puts(after, "intake") - puts(before, "intake")
    gets = sum(after.get(f'floe_object_store_requests_total{{kind="{k}",class="intake"}}', 0) -
               before.get(f'floe_object_store_requests_total{{kind="{k}",class="intake"}}', 0)
               for k in ("get", "ranged_get"))
    assert intake_puts > 20, intake_puts
    assert gets <= 2, f"{gets:.0f} intake reads for {intake_puts:.0f} intake objects"
