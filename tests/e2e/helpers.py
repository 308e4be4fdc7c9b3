"""Small helpers shared by the end-to-end tests."""

import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, name, partitions=1, config=None):
    a = admin(bootstrap)  # must outlive the future
    fut = a.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    fut[name].result(30)


def consume_all(bootstrap, topic, partitions, expected=None, timeout=60, start=0):
    """Reads every partition from `start` to its high watermark with
    assign() (no consumer group). Returns {partition: [Message]}."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "floe-test-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
        # An offset the broker calls out of range is an error here, never a
        # silent jump to the end.
        "auto.offset.reset": "error",
    })
    try:
        c.assign([TopicPartition(topic, p, start) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        eof = set()
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = c.consume(10000, 1.0)
            for m in msgs:
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        eof.add(m.partition())
                        continue
                    raise AssertionError(f"consume error: {m.error()}")
                out[m.partition()].append(m)
                eof.discard(m.partition())
            total = sum(len(v) for v in out.values())
            if expected is not None and total >= expected and len(eof) == partitions:
                break
            if expected is None and len(eof) == partitions:
                break
        return out
    finally:
        c.close()


def recent_ms(ago_ms=3_600_000):
    """A timestamp `ago_ms` in the past: inside the default retention.ms, so
    retention never removes test data while a test runs."""
    return int(time.time() * 1000) - ago_ms
