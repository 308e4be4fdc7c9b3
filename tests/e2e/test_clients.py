"""Produce and consume with three independent client stacks (librdkafka via
confluent-kafka, kafka-python, kcat) and read the Parquet files with pyarrow."""

import random
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

from helpers import recent_ms, consume_all, create_topic

BASE_TS = recent_ms()

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def make_records(n, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        key = None if i % 97 == 0 else f"key-{i % 1000}".encode()
        value = None if i % 89 == 0 else rnd.randbytes(rnd.randint(0, 600))
        headers = [("id", str(i).encode()), ("blob", rnd.randbytes(rnd.randint(0, 20)))]
        if i % 7 == 0:
            headers.append(("nullable", None))
        out.append((key, value, headers, BASE_TS + i))
    return out


def parquet_rows(data_dir: Path, topic: str, want: int, timeout: float = 30) -> int:
    """Rows in the topic's own Parquet files once `want` have arrived there.

    Records first land in shared intake objects and move into the topic's
    files at its table commit interval, so the count is polled."""
    deadline = time.time() + timeout
    while True:
        files = list((data_dir / "objects" / "topics").glob(f"{topic}-*/data/*/*.parquet"))
        rows = 0
        for f in files:
            t = pq.read_table(f)
            assert t.column_names[:7] == ["partition", "offset", "timestamp", "timestamp_type", "key", "headers", "value"]
            rows += t.num_rows
        if rows >= want or time.time() > deadline:
            return rows
        time.sleep(0.2)


def test_100k_records_four_codecs_byte_exact(floe):
    topic, partitions, n = "roundtrip", 8, 100_000
    create_topic(floe.bootstrap, topic, partitions)
    records = make_records(n, 1)
    errors = []
    for c, codec in enumerate(CODECS):
        p = Producer({
            "bootstrap.servers": floe.bootstrap,
            "compression.type": codec,
            "linger.ms": 5,
            "acks": "all",
            "enable.idempotence": c % 2 == 0,
        })
        for i in range(c, n, len(CODECS)):
            key, value, headers, ts = records[i]
            while True:
                try:
                    p.produce(topic, value=value, key=key, headers=headers, timestamp=ts, partition=i % partitions,
                              on_delivery=lambda err, msg: err and errors.append(err))
                    break
                except BufferError:
                    p.poll(0.1)
        assert p.flush(60) == 0
    assert not errors, errors[:3]

    got = consume_all(floe.bootstrap, topic, partitions, expected=n)
    seen = {}
    for part, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(len(msgs))), "offsets are dense from 0"
        last_by_codec = defaultdict(lambda: -1)
        for m in msgs:
            hdrs = m.headers() or []
            i = int(dict(hdrs)["id"])
            assert i % partitions == part
            assert i > last_by_codec[i % len(CODECS)], "per-producer order is kept"
            last_by_codec[i % len(CODECS)] = i
            seen[i] = (m.key(), m.value(), hdrs, m.timestamp()[1])
    assert len(seen) == n
    for i, (key, value, headers, ts) in enumerate(records):
        assert seen[i] == (key, value, headers, ts), f"record {i} differs"

    assert parquet_rows(floe.data_dir, topic, n) == n

    # An independent client reads the same records.
    kc = KafkaConsumer(bootstrap_servers=floe.bootstrap, group_id=None, enable_auto_commit=False,
                       consumer_timeout_ms=5000, fetch_max_wait_ms=100)
    tps = [KTP(topic, p) for p in range(partitions)]
    kc.assign(tps)
    kc.seek_to_beginning(*tps)
    count = 0
    for m in kc:
        i = int(dict(m.headers)["id"])
        key, value, headers, ts = records[i]
        assert (m.key, m.value, [(k, v) for k, v in m.headers], m.timestamp) == (key, value, headers, ts)
        count += 1
        if count == n:
            break
    kc.close()
    assert count == n


def test_kafka_python_produce_and_consume_every_codec(floe):
    topic, n = "kp", 2000
    for codec in CODECS:
        p = KafkaProducer(bootstrap_servers=floe.bootstrap, compression_type=codec, acks="all", linger_ms=5)
        for i in range(n):
            p.send(topic, key=f"{codec}-{i}".encode(), value=f"v{i}".encode() * 3,
                   headers=[("codec", codec.encode())], timestamp_ms=BASE_TS + i)
        p.flush(30)
        p.close()
    kc = KafkaConsumer(topic, bootstrap_servers=floe.bootstrap, group_id=None, auto_offset_reset="earliest",
                       consumer_timeout_ms=5000, fetch_max_wait_ms=100)
    msgs = list(kc)
    kc.close()
    assert len(msgs) == n * len(CODECS)
    assert [m.offset for m in msgs] == list(range(len(msgs)))
    for j, m in enumerate(msgs):
        codec, i = CODECS[j // n], j % n
        assert (m.key, m.value, m.headers, m.timestamp) == (
            f"{codec}-{i}".encode(), f"v{i}".encode() * 3, [("codec", codec.encode())], BASE_TS + i)


def test_kcat_produce_and_consume(floe, tmp_path):
    topic = "kcat"
    lines = [f"k{i}:value with spaces {i}" for i in range(500)]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    for codec in CODECS:
        subprocess.run(["kcat", "-P", "-b", floe.bootstrap, "-t", topic, "-K:", "-H", f"codec={codec}",
                        "-z", codec, "-l", str(src)], check=True, timeout=60)
    out = subprocess.run(["kcat", "-C", "-b", floe.bootstrap, "-t", topic, "-e", "-q",
                          "-f", "%k|%s|%h|%o\\n"], check=True, timeout=60, capture_output=True, text=True).stdout
    got = out.strip().split("\n")
    assert len(got) == 500 * len(CODECS)
    for j, line in enumerate(got):
        codec, i = CODECS[j // 500], j % 500
        assert line == f"k{i}|value with spaces {i}|codec={codec}|{j}"
    assert parquet_rows(floe.data_dir, topic, 2000) == 2000


def test_long_poll_wakes_on_produce(floe):
    topic = "longpoll"
    create_topic(floe.bootstrap, topic, 1)
    kc = KafkaConsumer(bootstrap_servers=floe.bootstrap, group_id=None, fetch_max_wait_ms=5000,
                       consumer_timeout_ms=8000)
    kc.assign([KTP(topic, 0)])
    kc.seek(KTP(topic, 0), 0)
    kc.poll(timeout_ms=200)

    def later():
        time.sleep(0.5)
        p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 0})
        p.produce(topic, b"wake")
        p.flush(10)

    import threading
    threading.Thread(target=later).start()
    start = time.time()
    msg = next(kc)
    assert msg.value == b"wake"
    assert time.time() - start < 4, "the fetch was answered by the commit, not by max_wait"
    kc.close()
