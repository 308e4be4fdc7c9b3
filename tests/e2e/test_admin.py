"""Topic administration and configs through the admin APIs, with the error
codes Kafka clients expect."""

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                   ResourceType)
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KNewTopic

from helpers import admin, consume_all, create_topic


def error_code(fut):
    with pytest.raises(KafkaException) as e:
        fut.result(30)
    return e.value.args[0].code()


def test_create_describe_and_delete_topics(floe):
    a = admin(floe.bootstrap)
    create_topic(floe.bootstrap, "t1", 3, {"retention.ms": "3600000"})
    md = a.list_topics(timeout=10)
    assert len(md.topics["t1"].partitions) == 3
    assert error_code(a.create_topics([NewTopic("t1", 1, 1)])["t1"]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert error_code(a.create_topics([NewTopic("bad name!", 1, 1)])["bad name!"]) == KafkaError.TOPIC_EXCEPTION
    assert error_code(a.create_topics([NewTopic("t2", 1, 1, config={"no.such.config": "1"})])["t2"]) == \
        KafkaError.INVALID_CONFIG
    a.create_partitions([NewPartitions("t1", 5)])["t1"].result(30)
    assert len(a.list_topics(timeout=10).topics["t1"].partitions) == 5
    assert error_code(a.create_partitions([NewPartitions("t1", 2)])["t1"]) == KafkaError.INVALID_PARTITIONS
    a.delete_topics(["t1"])["t1"].result(30)
    assert "t1" not in a.list_topics(timeout=10).topics
    assert error_code(a.delete_topics(["t1"])["t1"]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_and_alter_configs(floe):
    a = admin(floe.bootstrap)
    create_topic(floe.bootstrap, "cfg", 1, {"retention.ms": "1000000"})
    res = ConfigResource(ResourceType.TOPIC, "cfg")
    cfg = a.describe_configs([res])[res].result(30)
    assert cfg["retention.ms"].value == "1000000"
    assert cfg["max.message.bytes"].value == "1048588", "Kafka's default is reported"
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["max.message.bytes"].is_default
    a.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])])[res].result(30)
    cfg = a.describe_configs([res])[res].result(30)
    assert cfg["max.message.bytes"].value == "2000"
    assert cfg["retention.ms"].value == "604800000"
    bad = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    assert error_code(a.incremental_alter_configs([bad])[res]) == KafkaError.INVALID_CONFIG

    # Legacy AlterConfigs replaces the whole set, through an independent client.
    ka = KafkaAdminClient(bootstrap_servers=floe.bootstrap)
    from kafka.admin import ConfigResource as KRes, ConfigResourceType
    ka.alter_configs([KRes(ConfigResourceType.TOPIC, "cfg", configs={"retention.bytes": "12345"})], incremental=False)
    cfg = a.describe_configs([res])[res].result(30)
    assert cfg["retention.bytes"].value == "12345"
    # kafka-python resends the other modified keys itself (AlterConfigs
    # replaces the whole set), so the earlier override survives.
    assert cfg["max.message.bytes"].value == "2000"
    ka.create_topics([KNewTopic("kp-made", 2, 1)])
    assert len(a.list_topics(timeout=10).topics["kp-made"].partitions) == 2
    ka.close()


def test_message_too_large_is_refused(floe):
    create_topic(floe.bootstrap, "small", 1, {"max.message.bytes": "1000"})
    errs = []
    p = Producer({"bootstrap.servers": floe.bootstrap, "message.max.bytes": 100000, "linger.ms": 0,
                  "compression.type": "none"})
    p.produce("small", b"x" * 5000, on_delivery=lambda e, m: errs.append(e))
    p.flush(30)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert consume_all(floe.bootstrap, "small", 1)[0] == []


def test_auto_creation_can_be_turned_off(floe_factory):
    f = floe_factory("--auto-create-topics", "false")
    errs = []
    p = Producer({"bootstrap.servers": f.bootstrap, "message.timeout.ms": 3000})
    p.produce("nope", b"x", on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs[0] is not None
    assert errs[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT)
    md = admin(f.bootstrap).list_topics("nope", timeout=10)
    assert md.topics["nope"].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_auto_creation_on_metadata_by_default(floe):
    p = Producer({"bootstrap.servers": floe.bootstrap})
    p.produce("auto-made", b"hello")
    assert p.flush(30) == 0
    assert consume_all(floe.bootstrap, "auto-made", 1)[0][0].value() == b"hello"


def test_delete_records_moves_the_log_start(floe):
    create_topic(floe.bootstrap, "dr", 1)
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 0})
    for i in range(300):
        p.produce("dr", str(i).encode())
        if i % 100 == 99:
            p.flush(10)
    a = admin(floe.bootstrap)
    res = a.delete_records([TopicPartition("dr", 0, 150)])
    low = list(res.values())[0].result(30)
    assert low.low_watermark == 150
    got = consume_all(floe.bootstrap, "dr", 1, start=-2)
    assert [int(m.value()) for m in got[0]] == list(range(150, 300))


def test_describe_cluster(floe):
    a = admin(floe.bootstrap)
    d = a.describe_cluster().result(10)
    assert len(d.nodes) == 1
    assert d.cluster_id


def test_retention_ms_deletes_old_segments_and_files(floe_factory):
    import time
    from pathlib import Path
    # The table holds a dropped file until its snapshots expire: keep them
    # a second, and commit the table often.
    f = floe_factory("--maintenance-interval-secs", "1", "--iceberg-snapshot-retention-secs", "1")
    create_topic(f.bootstrap, "ret", 1, {"retention.ms": "60000", "floe.iceberg.commit.interval.ms": "200"})
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 0})
    old = int(time.time() * 1000) - 3_600_000
    for i in range(50):
        p.produce("ret", str(i).encode(), timestamp=old + i)
    p.flush(10)
    # Like a Kafka segment, a file goes only when all its records are old:
    # let the old records reach a file of their own before the new ones come.
    files = lambda: list(Path(f.data_dir, "objects", "topics").glob("ret-*/data/*/*.parquet"))
    deadline = time.time() + 20
    while not files() and time.time() < deadline:
        time.sleep(0.1)
    for i in range(50, 60):
        p.produce("ret", str(i).encode())
    p.flush(10)
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": f.bootstrap, "group.id": "ret-watch"})
    deadline = time.time() + 20
    while c.get_watermark_offsets(TopicPartition("ret", 0), timeout=5)[0] != 50 and time.time() < deadline:
        time.sleep(0.2)
    assert c.get_watermark_offsets(TopicPartition("ret", 0), timeout=5) == (50, 60)
    c.close()
    # The new records reach their own file, and the file of expired
    # records goes with its last snapshot.
    import pyarrow.parquet as pq

    def offsets_in_files():
        try:
            return sorted(o for x in files() for o in pq.read_table(x).column("offset").to_pylist())
        except FileNotFoundError:
            return None
    while offsets_in_files() != list(range(50, 60)) and time.time() < deadline + 20:
        time.sleep(0.2)
    assert offsets_in_files() == list(range(50, 60)), "the file of expired records is gone"
    assert len(files()) == 1
    got = consume_all(f.bootstrap, "ret", 1, start=-2)
    assert [int(m.value()) for m in got[0]] == list(range(50, 60))
    assert got[0][0].offset() == 50


def test_authorized_operations_are_returned_when_asked(floe):
    """Without ACLs every principal may do everything a resource supports;
    DescribeTopics, DescribeCluster and DescribeConsumerGroups say so when
    asked (librdkafka reads them from Metadata, DescribeCluster and
    DescribeGroups)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation
    a = admin(floe.bootstrap)
    create_topic(floe.bootstrap, "ops", 2)
    t = a.describe_topics(TopicCollection(["ops"]), include_authorized_operations=True)["ops"].result(30)
    assert set(t.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    assert not a.describe_topics(TopicCollection(["ops"]))["ops"].result(30).authorized_operations
    c = a.describe_cluster(include_authorized_operations=True).result(30)
    assert AclOperation.IDEMPOTENT_WRITE in c.authorized_operations
    assert AclOperation.CLUSTER_ACTION in c.authorized_operations
    assert AclOperation.READ not in c.authorized_operations
    g = a.describe_consumer_groups(["no-such-group"], include_authorized_operations=True)["no-such-group"].result(30)
    assert set(g.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}


def test_describe_topic_partitions_pages_with_a_cursor(floe):
    """DescribeTopicPartitions (Kafka 3.7+ admin clients), with
    kafka-python: topics in name order, at most the partition limit per
    response, and a cursor to the next partition."""
    create_topic(floe.bootstrap, "dtp-a", 2)
    create_topic(floe.bootstrap, "dtp-b", 4)
    ka = KafkaAdminClient(bootstrap_servers=floe.bootstrap)
    try:
        first = ka.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-missing"], response_partition_limit=3)
        assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in first["topics"]] == \
            [("dtp-a", [0, 1]), ("dtp-b", [0])]
        assert first["next_cursor"] == {"topic_name": "dtp-b", "partition_index": 1}
        assert all(p["leader_id"] == 0 and p["isr_nodes"] == [0] for t in first["topics"] for p in t["partitions"])
        assert first["topics"][0]["topic_authorized_operations"] > 0
        rest = ka.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-missing"], response_partition_limit=3,
                                            cursor=first["next_cursor"])
        assert [(t["name"], [p["partition_index"] for p in t["partitions"]], t["error_code"])
                for t in rest["topics"]] == [("dtp-b", [1, 2, 3], 0)]
        assert rest["next_cursor"] == {"topic_name": "dtp-missing", "partition_index": 0}
        last = ka.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-missing"], response_partition_limit=3,
                                            cursor=rest["next_cursor"])
        assert [(t["name"], t["partitions"], t["error_code"]) for t in last["topics"]] == \
            [("dtp-missing", [], 3)]  # UNKNOWN_TOPIC_OR_PARTITION
        assert last["next_cursor"] is None
        everything = ka.describe_topic_partitions([])
        names = [t["name"] for t in everything["topics"]]
        assert "dtp-a" in names and "dtp-b" in names and names == sorted(names)
    finally:
        ka.close()


def test_describe_log_dirs_reports_partition_sizes(floe):
    """DescribeLogDirs, with kafka-python: one directory (the object store)
    with the stored bytes of each partition."""
    import os
    import time
    create_topic(floe.bootstrap, "sized", 2)
    p = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(200):
        p.produce("sized", os.urandom(1000), partition=0)
    assert p.flush(30) == 0
    ka = KafkaAdminClient(bootstrap_servers=floe.bootstrap)
    try:
        deadline = time.time() + 20
        while True:
            out = ka.describe_log_dirs(["sized"])
            (broker,) = out
            (d,) = broker["log_dirs"]
            sizes = {p["partition_index"]: p["partition_size"] for t in d["topics"] if t["name"] == "sized"
                     for p in t["partitions"]}
            if sizes.get(0, 0) >= 200 * 1000 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert d["error_code"] == 0 and d["log_dir"].startswith("file://"), d
        assert sizes[0] >= 200 * 1000, sizes  # random bytes: Parquet cannot shrink them
        assert sizes[1] == 0
    finally:
        ka.close()


def test_deprecated_topic_configs_are_accepted_and_ignored(floe):
    """message.format.version: Kafka 3 accepts it from older tools and
    ignores it; a value that is no version is INVALID_CONFIG."""
    a = admin(floe.bootstrap)
    create_topic(floe.bootstrap, "old-tools", 1, {"message.format.version": "2.8", "retention.ms": "3600000"})
    res = ConfigResource(ResourceType.TOPIC, "old-tools")
    a.alter_configs([ConfigResource(ResourceType.TOPIC, "old-tools",
                                    set_config={"message.format.version": "0.10.2-IV0",
                                                "retention.ms": "7200000"})])[
        ConfigResource(ResourceType.TOPIC, "old-tools")].result(30)
    described = a.describe_configs([res])[res].result(30)
    assert described["retention.ms"].value == "7200000"
    bad = a.create_topics([NewTopic("old-bad", 1, 1, config={"message.format.version": "newest"})])["old-bad"]
    assert error_code(bad) == KafkaError.INVALID_CONFIG


def test_broker_configs_set_cluster_wide_topic_defaults(floe_factory):
    """AlterConfigs on a broker resource: log.retention.ms, log.retention.bytes
    and message.max.bytes are dynamic cluster-wide defaults of the topic
    configs (kept across restarts, below a topic's own value); floe's
    other broker configs are its flags, refused as Kafka refuses a static
    config (INVALID_REQUEST, the whole resource unchanged)."""
    from confluent_kafka.admin import ConfigSource
    f = floe_factory()
    a = admin(f.bootstrap)
    create_topic(f.bootstrap, "plain", 1)
    create_topic(f.bootstrap, "own", 1, {"retention.ms": "1000000"})
    broker = ConfigResource(ResourceType.BROKER, "0")

    def incremental(*entries):
        res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=list(entries))
        return a.incremental_alter_configs([res])[res]

    def topic_cfg(name):
        res = ConfigResource(ResourceType.TOPIC, name)
        return a.describe_configs([res])[res].result(30)

    incremental(ConfigEntry("log.retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("message.max.bytes", "2000", incremental_operation=AlterConfigOpType.SET)).result(30)
    b = a.describe_configs([broker])[broker].result(30)
    assert b["log.retention.ms"].value == "3600000"
    assert b["log.retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert not b["log.retention.ms"].is_read_only and b["num.partitions"].is_read_only
    assert topic_cfg("plain")["retention.ms"].value == "3600000"
    assert topic_cfg("plain")["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert topic_cfg("own")["retention.ms"].value == "1000000", "a topic's own value wins"

    # The new default is enforced: a 5 000-byte record is too large now.
    def produce_big():
        errors = []
        p = Producer({"bootstrap.servers": f.bootstrap, "message.max.bytes": 100000})
        p.produce("plain", b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
        p.flush(30)
        return errors[0]
    assert produce_big().code() == KafkaError.MSG_SIZE_TOO_LARGE

    # A static config refuses the whole resource; an unknown one too.
    refused = incremental(ConfigEntry("num.partitions", "7", incremental_operation=AlterConfigOpType.SET),
                          ConfigEntry("log.retention.ms", "1", incremental_operation=AlterConfigOpType.SET))
    with pytest.raises(KafkaException) as e:
        refused.result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST
    assert "dynamically" in e.value.args[0].str()
    assert error_code(incremental(ConfigEntry("no.such.broker.config", "1",
                                              incremental_operation=AlterConfigOpType.SET))) == \
        KafkaError.INVALID_CONFIG
    assert error_code(incremental(ConfigEntry("log.retention.ms", "soon",
                                              incremental_operation=AlterConfigOpType.SET))) == \
        KafkaError.INVALID_CONFIG
    assert topic_cfg("plain")["retention.ms"].value == "3600000", "nothing changed"

    # Kept across a restart.
    f.restart()
    a = admin(f.bootstrap)
    assert topic_cfg("plain")["retention.ms"].value == "3600000"
    assert produce_big().code() == KafkaError.MSG_SIZE_TOO_LARGE

    # Legacy AlterConfigs (kafka-python) replaces the whole dynamic set:
    # message.max.bytes and log.retention.ms return to their defaults.
    from kafka.admin import ConfigResource as KRes, ConfigResourceType
    ka = KafkaAdminClient(bootstrap_servers=f.bootstrap)
    try:
        ka.alter_configs([KRes(ConfigResourceType.BROKER, "0", configs={"log.retention.bytes": "1000000000"})],
                         incremental=False)
    finally:
        ka.close()
    plain = topic_cfg("plain")
    assert plain["retention.bytes"].value == "1000000000"
    assert plain["retention.ms"].value == "604800000"
    assert plain["max.message.bytes"].value == "1048588"
    assert produce_big() is None


def test_a_compacted_topic_refuses_records_without_a_key(floe):
    """Kafka refuses a keyless record on a topic whose cleanup.policy holds
    `compact` (the latest value per key is all such a topic keeps) with
    INVALID_RECORD and the record's index; keyed records go in."""
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    from test_schemas import INVALID_RECORD, produce_raw

    create_topic(floe.bootstrap, "latest", 1, {"cleanup.policy": "compact,delete"})
    err, errors, _ = produce_raw(floe, "latest", [b"a", b"b"])
    assert err == INVALID_RECORD and [i for i, _ in errors] == [0, 1], errors
    assert "without key" in errors[0][1], errors
    delivered = []
    p = Producer({"bootstrap.servers": floe.bootstrap})
    p.produce("latest", key=b"k1", value=b"v1", on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(30) == 0
    # Its own batch: Kafka refuses a batch whole when one record is invalid.
    p.produce("latest", value=b"keyless", on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(30) == 0
    assert delivered[0] is None and delivered[1].code() == KafkaError.INVALID_RECORD, delivered
    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, retries=0)
    kp.send("latest", key=b"k2", value=b"v2").get(timeout=30)
    with pytest.raises(InvalidRecordError):
        kp.send("latest", value=b"keyless").get(timeout=30)
    kp.close()
    # Only the keyed records are in the log.
    got = consume_all(floe.bootstrap, "latest", 1)[0]
    assert sorted(m.key() for m in got) == [b"k1", b"k2"]
    # Without compact, keyless records are fine.
    create_topic(floe.bootstrap, "plain", 1, {"cleanup.policy": "delete"})
    assert produce_raw(floe, "plain", [b"a"])[0] == 0
