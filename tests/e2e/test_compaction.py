"""Log compaction (cleanup.policy=compact) as Kafka does it: each key's
latest record kept, tombstones gone after delete.retention.ms, offsets kept
(consumers see gaps), the head of the log left alone, and nothing lost to a
kill -9 in the middle of it; the table and the live Parquet files agree
with the log afterwards."""

import json
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTopicPartition

from helpers import consume_all, create_topic
from test_tables import catalog, get_json, local_path, wait_covered

KEYS = 1000
PARTITIONS = 2
# Rows move into the topic's table files quickly; tombstones go at once.
COMPACTED = {
    "cleanup.policy": "compact",
    "floe.iceberg.commit.interval.ms": "300",
    "delete.retention.ms": "0",
}


def post(url):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def produce(bootstrap, topic, records, producer=None):
    """records: (key, value, partition or None). Returns [(partition,
    offset, key, value)] in delivery order."""
    p = producer or Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                              "enable.idempotence": True})
    placed = []

    def report(err, msg):
        assert err is None, err
        placed.append((msg.partition(), msg.offset(), msg.key(), msg.value()))

    for i, (key, value, partition) in enumerate(records):
        kwargs = {} if partition is None else {"partition": partition}
        p.produce(topic, key=key, value=value, on_delivery=report, **kwargs)
        if i % 10_000 == 9_999:
            p.poll(0)
    assert p.flush(60) == 0
    return placed


def settle(floe, topic, placed):
    """Waits until a table snapshot holds every placed record (so each is
    in the topic's own files, where compaction may reach it)."""
    for p in range(PARTITIONS):
        offsets = [o for (q, o, _, _) in placed if q == p]
        if offsets:
            wait_covered(floe, topic, p, max(offsets), timeout=60)


def updates(rounds, tombstone_round):
    """`rounds` rounds over every key; in `tombstone_round` the first
    tenth of the keys is deleted and not written again."""
    out = []
    for r in range(rounds):
        for k in range(KEYS):
            key = f"key-{k:04}".encode()
            if k < KEYS // 10 and r >= tombstone_round:
                if r == tombstone_round:
                    out.append((key, None, None))
                continue
            out.append((key, f"{k}:{r}:{random.getrandbits(64):016x}".encode(), None))
    return out


def latest(placed):
    """Kafka's compacted view of `placed`: each key's latest record, by
    (partition, offset)."""
    last = {}
    for rec in placed:
        last[rec[2]] = rec
    return {(p, o): (k, v) for (p, o, k, v) in last.values()}


def view(bootstrap, topic):
    got = consume_all(bootstrap, topic, PARTITIONS)
    return {(m.partition(), m.offset()): (m.key(), m.value()) for msgs in got.values() for m in msgs}


def check_ok(floe, topic):
    c = get_json(f"{floe.http}/admin/topics/{topic}/check")
    assert all(not p["problems"] for p in c["partitions"]), c


def test_a_compacted_topic_keeps_each_keys_latest_record(floe):
    topic = "changelog"
    create_topic(floe.bootstrap, topic, PARTITIONS, COMPACTED)
    history = produce(floe.bootstrap, topic, updates(100, 95))
    assert len(history) == 96 * KEYS + 4 * (KEYS - KEYS // 10)
    settle(floe, topic, history)
    # The head: one more record per partition, in segments of their own
    # (the last segment of a partition is never compacted, as Kafka's
    # active segment).
    head = produce(floe.bootstrap, topic, [(f"head-{p}".encode(), b"h", p) for p in range(PARTITIONS)])
    settle(floe, topic, head)
    before = view(floe.bootstrap, topic)
    assert len(before) == len(history) + PARTITIONS

    stats = post(f"{floe.http}/admin/topics/{topic}/compact")
    assert stats["files_out"] == 1 and stats["bytes_out"] < stats["bytes_in"], stats

    # Every live key once, with its latest value, at the offset it was
    # written at; the deleted keys gone with their tombstones; the head as is.
    expected = {pos: kv for pos, kv in latest(history).items() if kv[1] is not None}
    expected.update({(p, o): (k, v) for (p, o, k, v) in head})
    assert len(expected) == KEYS - KEYS // 10 + PARTITIONS
    assert view(floe.bootstrap, topic) == expected
    check_ok(floe, topic)

    # The log's bounds are Kafka's: nothing moved but the records between.
    c = KafkaConsumer(bootstrap_servers=floe.bootstrap)
    tps = [KTopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = c.end_offsets(tps)
    assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
    assert ends == {tp: 1 + max(o for (p, o, _, _) in history + head if p == tp.partition) for tp in tps}
    # An independent client reads the same view, from offset 0 and from
    # an offset the compaction left out (it gets the next record).
    c.assign(tps)
    c.seek_to_beginning()
    got = {}
    deadline = time.time() + 60
    while len(got) < len(expected) and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                got[(tp.partition, m.offset)] = (m.key, m.value)
    assert got == expected
    p0 = sorted(o for (p, o) in expected if p == 0)
    gap = p0[0] // 2
    assert (0, gap) not in expected
    c.assign([tps[0]])
    c.seek(tps[0], gap)
    first = next(m for msgs in c.poll(timeout_ms=5000).values() for m in msgs)
    assert first.offset == p0[0]
    c.close()

    # After a kill -9, from the files alone: the same.
    floe.restart(kill=True)
    assert view(floe.bootstrap, topic) == expected
    check_ok(floe, topic)

    # The table follows at its next commit (an overwrite snapshot), and the
    # live files it lists hold exactly the log.
    deadline = time.time() + 30
    while True:
        table = catalog(floe).load_table(f"floe.{topic}")
        rows = table.scan().to_arrow().to_pydict()
        in_table = {(rows["partition"][i], rows["offset"][i]): (rows["key"][i], rows["value"][i])
                    for i in range(len(rows["offset"]))}
        if in_table == expected or time.time() > deadline:
            break
        time.sleep(0.3)
    assert in_table == expected
    assert table.current_snapshot().summary.operation.value == "overwrite" or any(
        s.summary.operation.value == "overwrite" for s in table.snapshots())
    # A reader of the data folder: the files the table lists, and the live
    # files the broker names, hold exactly the log; the folder itself still
    # has the replaced files (older snapshots name them).
    def read_files(paths):
        rows = {}
        for f in paths:
            d = pq.read_table(f).to_pydict()
            for i in range(len(d["offset"])):
                rows[(d["partition"][i], d["offset"][i])] = (d["key"][i], d["value"][i])
        return rows

    listed = get_json(f"{floe.http}/admin/topics/{topic}/files")
    assert listed["in_intake"] == 0, listed
    live = [local_path(f["uri"]) for f in listed["files"]]
    assert read_files(live) == expected
    assert sorted(live) == sorted(local_path(t.file.file_path) for t in table.scan().plan_files())
    folder = list(Path(live[0]).parents[2].glob("data/*/*.parquet"))
    assert len(folder) > len(live)


def test_delete_records_cuts_through_a_compacted_file(floe):
    """DeleteRecords in the middle of a segment compaction thinned out:
    consumers, the log's check and the table all start at the cut."""
    from confluent_kafka import TopicPartition
    from helpers import admin

    topic = "cut"
    create_topic(floe.bootstrap, topic, 1, COMPACTED)
    placed = produce(floe.bootstrap, topic, [(f"k{i % 50}".encode(), f"v{i}".encode(), 0) for i in range(1000)])
    settle(floe, topic, placed)
    head = produce(floe.bootstrap, topic, [(b"head", b"h", 0)])
    settle(floe, topic, head)
    post(f"{floe.http}/admin/topics/{topic}/compact")
    kept = sorted(o for (p, o) in latest(placed))
    assert kept == list(range(950, 1000))
    # Cut at 975: 25 of the compacted records stay, and the head.
    a = admin(floe.bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, 975)])
    assert list(res.values())[0].result(30).low_watermark == 975
    expected = {(0, o): (f"k{o % 50}".encode(), f"v{o}".encode()) for o in range(975, 1000)}
    expected[(0, 1000)] = (b"head", b"h")
    got = consume_all(floe.bootstrap, topic, 1, start=975)[0]
    assert {(0, m.offset()): (m.key(), m.value()) for m in got} == expected
    check_ok(floe, topic)
    floe.restart(kill=True)
    check_ok(floe, topic)
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = catalog(floe).load_table(f"floe.{topic}").scan().to_arrow().to_pydict()
        if min(rows["offset"]) == 975:
            break
        time.sleep(0.3)
    assert sorted(rows["offset"]) == sorted(o for (_, o) in expected)


def test_tombstones_stay_for_delete_retention_and_young_records_for_the_lag(floe):
    topic = "tombstones"
    create_topic(floe.bootstrap, topic, 1, {**COMPACTED, "delete.retention.ms": "3600000"})
    placed = produce(floe.bootstrap, topic, [(b"a", b"1", 0), (b"b", b"1", 0), (b"a", None, 0), (b"b", b"2", 0)])
    settle(floe, topic, placed)
    settle(floe, topic, produce(floe.bootstrap, topic, [(b"c", b"1", 0)]))
    post(f"{floe.http}/admin/topics/{topic}/compact")
    got = consume_all(floe.bootstrap, topic, 1)[0]
    # a's value went; its tombstone stays (a consumer reading from 0 still
    # learns that a was deleted).
    assert [(m.offset(), m.key(), m.value()) for m in got] == [(2, b"a", None), (3, b"b", b"2"), (4, b"c", b"1")]

    # Younger than min.compaction.lag.ms: untouched, even when asked.
    young = "young"
    create_topic(floe.bootstrap, young, 1, {**COMPACTED, "min.compaction.lag.ms": "3600000"})
    placed = produce(floe.bootstrap, young, [(b"a", b"1", 0), (b"a", b"2", 0)])
    settle(floe, young, placed)
    settle(floe, young, produce(floe.bootstrap, young, [(b"b", b"1", 0)]))
    assert post(f"{floe.http}/admin/topics/{young}/compact")["files_in"] == 0
    assert len(consume_all(floe.bootstrap, young, 1)[0]) == 3


def test_a_compacted_topic_is_not_deleted_by_retention(floe_factory):
    """retention.ms applies only with the delete policy: a compacted
    topic keeps its records however old (Kafka Connect's config topic
    relies on it)."""
    floe = floe_factory("--maintenance-interval-secs", "1")
    create_topic(floe.bootstrap, "kept", 1, {"cleanup.policy": "compact", "retention.ms": "1"})
    create_topic(floe.bootstrap, "dropped", 1, {"cleanup.policy": "compact,delete", "retention.ms": "1"})
    for t in ("kept", "dropped"):
        p = Producer({"bootstrap.servers": floe.bootstrap})
        p.produce(t, key=b"k", value=b"v", timestamp=int(time.time() * 1000) - 60_000)
        assert p.flush(30) == 0
    deadline = time.time() + 30
    c = KafkaConsumer(bootstrap_servers=floe.bootstrap)
    while time.time() < deadline:
        start = c.beginning_offsets([KTopicPartition("dropped", 0)])[KTopicPartition("dropped", 0)]
        if start == 1:
            break
        time.sleep(0.2)
    assert start == 1, "compact,delete applies retention.ms"
    assert c.beginning_offsets([KTopicPartition("kept", 0)])[KTopicPartition("kept", 0)] == 0
    c.close()
    assert len(consume_all(floe.bootstrap, "kept", 1)[0]) == 1


def test_a_connect_style_config_topic_round_trips(floe_factory):
    """Kafka Connect keeps connector configs, task configs and target
    states in a compacted topic and rebuilds them by reading it from the
    start: after compaction (on the broker's own cadence) and a restart, a
    fresh reader rebuilds exactly the same state."""
    floe = floe_factory("--maintenance-interval-secs", "1")
    topic = "connect-configs"
    create_topic(floe.bootstrap, topic, 1, {**COMPACTED, "min.cleanable.dirty.ratio": "0.1"})
    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, acks="all", linger_ms=5)
    state = {}
    for round_ in range(30):
        for c in range(20):
            name = f"connector-{c}"
            if round_ == 29 and c % 5 == 0:
                updates_ = [(f"{name}", None), (f"target-state-{name}", None)]
            else:
                cfg = {"connector.class": "FileStreamSource", "tasks.max": str(round_ % 4 + 1), "round": round_}
                updates_ = [(name, json.dumps({"properties": cfg}).encode()),
                            (f"task-{name}-0", json.dumps({"properties": {"task": 0, "round": round_}}).encode()),
                            (f"target-state-{name}", json.dumps({"state": "STARTED" if round_ % 2 else "PAUSED"}).encode())]
            for key, value in updates_:
                kp.send(topic, key=key.encode(), value=value)
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
        kp.flush()
        if round_ % 10 == 9:
            time.sleep(1)  # some rounds reach the table files and compact
    kp.send(topic, key=b"commit-1", value=b'{"tasks":20}').get(30)
    state["commit-1"] = b'{"tasks":20}'
    kp.close()

    def rebuild():
        got = consume_all(floe.bootstrap, topic, 1)[0]
        out = {}
        for m in got:
            if m.value() is None:
                out.pop(m.key().decode(), None)
            else:
                out[m.key().decode()] = m.value()
        return out, len(got)

    # Compaction runs on its own (dirty ratio): wait until it has.
    deadline = time.time() + 60
    while True:
        rebuilt, records = rebuild()
        if records < 30 * 60 * 0.5 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert rebuilt == state
    assert records < 30 * 60 * 0.5, f"{records} records: not compacted"
    floe.restart(kill=True)
    assert rebuild()[0] == state
    check_ok(floe, topic)


def test_compaction_under_kill9_loses_no_latest_value(floe_factory):
    """The broker is killed while a compaction runs, at a different moment
    of it each round (every object-store request stalls 150 ms, so the
    kill falls before, during or after its upload, or after its swap):
    every key's latest value is there after each restart, nothing is
    doubled, and the log's invariants hold."""
    floe = floe_factory("--fault-injection", "--maintenance-interval-secs", "3600")
    topic = "kill9"
    create_topic(floe.bootstrap, topic, PARTITIONS, {**COMPACTED, "min.cleanable.dirty.ratio": "0.01"})
    rng = random.Random(7)
    history = []
    rounds = 8
    for round_ in range(rounds):
        recs = []
        for _ in range(5000):
            k = rng.randrange(200)
            value = None if rng.random() < 0.05 else f"{round_}:{rng.getrandbits(64):x}".encode()
            recs.append((f"k{k}".encode(), value, None))
        placed = produce(floe.bootstrap, topic, recs)
        history += placed
        settle(floe, topic, placed)
        http_json("PUT", f"{floe.http}/admin/faults", {"stall": 1.0, "stall_ms": 150})
        t = threading.Thread(target=lambda: _try_post(f"{floe.http}/admin/topics/{topic}/compact"))
        t.start()
        time.sleep(0.9 * round_ / (rounds - 1))
        floe.restart(kill=True)
        t.join()
        got = view(floe.bootstrap, topic)
        want = {pos: kv for pos, kv in latest(history).items() if kv[1] is not None}
        # Compacted or not, every latest value is where it was written,
        # and everything read is a record as it was written, once.
        for pos, kv in want.items():
            assert got.get(pos) == kv, (round_, pos, kv, got.get(pos))
        written = {(p, o): (k, v) for (p, o, k, v) in history}
        assert all(written[pos] == kv for pos, kv in got.items())
        check_ok(floe, topic)
    # A last compaction, uninterrupted, leaves the latest view (but for the
    # head: the last segment of each partition, and a tombstone that ends
    # a region).
    settle(floe, topic, produce(floe.bootstrap, topic, [(f"end-{p}".encode(), b"e", p) for p in range(PARTITIONS)]))
    post(f"{floe.http}/admin/topics/{topic}/compact")
    got = view(floe.bootstrap, topic)
    assert len(got) <= len(want) + 2 * PARTITIONS, len(got)
    for pos, kv in want.items():
        assert got.get(pos) == kv


def http_json(method, url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _try_post(url):
    try:
        post(url)
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
