"""ListOffsets: earliest, latest, by timestamp and max timestamp, through
two independent clients."""

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaConsumer, TopicPartition as KTP

from helpers import admin, create_topic, recent_ms

BASE = recent_ms(86_400_000)


def test_list_offsets_by_time(floe):
    topic = "times"
    create_topic(floe.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 0})
    # Partition 0: timestamps rise by 1 s per record; flushed in several
    # files so lookups cross segments.
    for i in range(300):
        p.produce(topic, str(i).encode(), partition=0, timestamp=BASE + i * 1000)
        if i % 50 == 49:
            p.flush(10)
    # Partition 1: one out-of-order maximum in the middle.
    for i, ts in enumerate([BASE, BASE + 5, BASE + 999_999, BASE + 7, BASE + 8]):
        p.produce(topic, str(i).encode(), partition=1, timestamp=ts)
    p.flush(10)

    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lo"})
    lookups = [((0, BASE + 120_500), 121), ((0, BASE), 0), ((0, BASE + 10_000_000), -1), ((1, BASE + 6), 2)]
    for (part, ts), want in lookups:
        [r] = c.offsets_for_times([TopicPartition(topic, part, ts)], 10)
        assert r.offset == want, (part, ts)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), 10) == (0, 300)
    c.close()

    a = admin(floe.bootstrap)
    r = a.list_offsets({TopicPartition(topic, 1): OffsetSpec.max_timestamp(),
                        TopicPartition(topic, 0): OffsetSpec.earliest()})
    by_part = {tp.partition: f.result(10) for tp, f in r.items()}
    assert by_part[1].offset == 2 and by_part[1].timestamp == BASE + 999_999
    assert by_part[0].offset == 0

    kc = KafkaConsumer(bootstrap_servers=floe.bootstrap, group_id=None)
    got = kc.offsets_for_times({KTP(topic, 0): BASE + 42_000})
    assert got[KTP(topic, 0)].offset == 42 and got[KTP(topic, 0)].timestamp == BASE + 42_000
    assert kc.end_offsets([KTP(topic, 0)])[KTP(topic, 0)] == 300
    assert kc.beginning_offsets([KTP(topic, 0)])[KTP(topic, 0)] == 0
    kc.close()


def test_log_append_time_topics_stamp_the_broker_time(floe):
    import time
    create_topic(floe.bootstrap, "lat", 1, {"message.timestamp.type": "LogAppendTime"})
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 0})
    before = int(time.time() * 1000)
    p.produce("lat", b"x", timestamp=BASE)
    p.flush(10)
    after = int(time.time() * 1000)
    from helpers import consume_all
    [m] = consume_all(floe.bootstrap, "lat", 1)[0]
    kind, ts = m.timestamp()
    assert kind == 2, "TIMESTAMP_LOG_APPEND_TIME"
    assert before - 5 <= ts <= after + 5, "the broker's time, not the producer's"
    # Also from Parquet, after a restart.
    floe.restart()
    [m] = consume_all(floe.bootstrap, "lat", 1)[0]
    assert m.timestamp() == (kind, ts)
