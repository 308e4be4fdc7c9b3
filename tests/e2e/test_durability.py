"""Nothing acknowledged is lost: across restarts, across kill -9 in the
middle of an idempotent load, and uncommitted files are swept."""

import os
import threading
import time

from confluent_kafka import Producer

from helpers import consume_all, create_topic


def produce_ids(bootstrap, topic, ids, partitions, **conf):
    acked, errors = [], []

    def cb(err, msg):
        (errors if err else acked).append(err or int(msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    for i in ids:
        while True:
            try:
                p.produce(topic, value=str(i).encode(), key=str(i).encode(), partition=i % partitions, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)
    return acked, errors


def test_restart_keeps_every_acknowledged_record(floe):
    topic = "restart"
    create_topic(floe.bootstrap, topic, 4)
    acked, errors = produce_ids(floe.bootstrap, topic, range(20_000), 4)
    assert not errors and len(acked) == 20_000
    floe.restart()
    acked2, errors2 = produce_ids(floe.bootstrap, topic, range(20_000, 25_000), 4)
    assert not errors2
    got = consume_all(floe.bootstrap, topic, 4, expected=25_000)
    values = sorted(int(m.value()) for msgs in got.values() for m in msgs)
    assert values == list(range(25_000))
    for msgs in got.values():
        assert [m.offset() for m in msgs] == list(range(len(msgs)))


def test_kill9_mid_load_with_idempotent_producer_loses_and_duplicates_nothing(floe):
    topic, partitions, n = "kill9", 4, 60_000
    create_topic(floe.bootstrap, topic, partitions)
    acked, errors = [], []

    def cb(err, msg):
        (errors if err else acked).append(err or int(msg.value()))

    p = Producer({
        "bootstrap.servers": floe.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 120_000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    })
    stop = threading.Event()

    def load():
        for i in range(n):
            while not stop.is_set():
                try:
                    p.produce(topic, value=str(i).encode(), partition=i % partitions, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
            if i % 200 == 0:
                time.sleep(0.005)

    t = threading.Thread(target=load)
    t.start()
    deadline = time.time() + 30
    while len(acked) < 5_000 and time.time() < deadline:
        p.poll(0.05)
    assert len(acked) >= 5_000, "load did not get going"
    acked_before_kill = len(acked)
    floe.kill9()
    time.sleep(1.0)
    floe.restart()
    t.join(120)
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} records never delivered"
    assert not errors, errors[:5]
    assert len(acked) == n and acked_before_kill < n

    got = consume_all(floe.bootstrap, topic, partitions, expected=n)
    values = [int(m.value()) for msgs in got.values() for m in msgs]
    assert len(values) == len(set(values)), "no record was written twice"
    assert sorted(values) == list(range(n)), "every acknowledged record is there"
    for part, msgs in got.items():
        vals = [int(m.value()) for m in msgs]
        assert vals == sorted(vals), f"partition {part} keeps producer order"


def test_uncommitted_files_are_swept(floe_factory, tmp_path):
    data = tmp_path / "sweep"
    f = floe_factory(data_dir=data)
    create_topic(f.bootstrap, "kept", 1)
    acked, _ = produce_ids(f.bootstrap, "kept", range(100), 1)
    assert len(acked) == 100
    f.stop()
    stray_dir = data / "objects" / "topics" / "kept-x" / "data" / "day=1"
    stray_dir.mkdir(parents=True)
    stray = stray_dir / "orphan.parquet"
    stray.write_bytes(b"PAR1 never committed")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    f.extra_args = ["--orphan-grace-secs", "60"]
    f.start()
    deadline = time.time() + 20
    while stray.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not stray.exists(), "the orphan was swept"
    got = consume_all(f.bootstrap, "kept", 1, expected=100)
    assert len(got[0]) == 100, "committed data is untouched"


def test_consumers_and_producers_ride_through_a_restart(floe):
    """Clients stay up while the broker restarts: the consumer sees the
    leader epoch change (FENCED_LEADER_EPOCH, metadata refresh) and carries on
    from where it was, with nothing lost or repeated."""
    from confluent_kafka import Consumer, TopicPartition
    topic = "ride"
    create_topic(floe.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                  "message.timeout.ms": 60_000})
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "ride", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "reconnect.backoff.max.ms": 500})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    seen = []

    def drain(until, timeout):
        deadline = time.time() + timeout
        while len(seen) < until and time.time() < deadline:
            for m in c.consume(1000, 0.2):
                if not m.error():
                    seen.append(int(m.value()))

    for i in range(2000):
        p.produce(topic, str(i).encode(), partition=i % 2)
    p.flush(30)
    drain(2000, 30)
    floe.restart(kill=True)
    for i in range(2000, 4000):
        p.produce(topic, str(i).encode(), partition=i % 2)
    assert p.flush(60) == 0
    drain(4000, 60)
    c.close()
    assert sorted(seen) == list(range(4000))
