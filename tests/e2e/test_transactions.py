"""Kafka transactions (KIP-98): transactional producers of two client
implementations commit and abort; read_committed consumers see exactly the
committed records and read_uncommitted ones everything; an open
transaction holds read_committed consumers back until it ends, and one
left open past its timeout is aborted; a zombie producer is fenced;
offsets sent in a transaction reach the group only when it commits; and a
consume-transform-produce loop killed with SIGKILL (itself and the broker)
at random moments writes every input record exactly once."""

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTopicPartition

from helpers import consume_all, create_topic

HERE = Path(__file__).parent


def txn_producer(bootstrap, txid, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid,
                  "transaction.timeout.ms": 60000, "linger.ms": 5, **extra})
    p.init_transactions(30)
    return p


def transaction(p, topic, values, partitions, commit=True):
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % partitions)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)


def read_values(bootstrap, topic, partitions, isolation, timeout=30, settle=2.0):
    """Every value a consumer of `isolation` reads from offset 0 until it
    has read nothing new for `settle` seconds."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{random.random()}",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last = [], time.time()
    deadline = time.time() + timeout
    while time.time() < deadline and time.time() - last < settle:
        for m in c.consume(1000, 0.2):
            if m.error():
                raise AssertionError(m.error())
            out.append(m.value())
            last = time.time()
    c.close()
    return out


def kafka_python_values(bootstrap, topic, partitions, settle_ms=2000):
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                      enable_auto_commit=False, consumer_timeout_ms=settle_ms)
    c.assign([KTopicPartition(topic, p) for p in range(partitions)])
    c.seek_to_beginning()
    out = [m.value for m in c]
    c.close()
    return out


def test_read_committed_sees_exactly_the_committed_records_and_read_uncommitted_all(floe):
    create_topic(floe.bootstrap, "tx", 2)
    p = txn_producer(floe.bootstrap, "tx-writer")
    first = [f"c1-{i}".encode() for i in range(100)]
    aborted = [f"a-{i}".encode() for i in range(50)]
    last = [f"c2-{i}".encode() for i in range(30)]
    transaction(p, "tx", first, 2)
    transaction(p, "tx", aborted, 2, commit=False)
    transaction(p, "tx", last, 2)
    committed = sorted(first + last)
    everything = sorted(first + aborted + last)

    def check():
        assert sorted(read_values(floe.bootstrap, "tx", 2, "read_committed")) == committed
        assert sorted(read_values(floe.bootstrap, "tx", 2, "read_uncommitted")) == everything
        assert sorted(kafka_python_values(floe.bootstrap, "tx", 2)) == committed

    check()
    # Markers take offsets: each transaction ends with one per partition,
    # so a partition's 90 records end at 91 and its log at 93.
    msgs = consume_all(floe.bootstrap, "tx", 2, expected=130)
    last_offsets = {part: max(m.offset() for m in ms) for part, ms in msgs.items()}
    assert last_offsets == {0: 91, 1: 91}, last_offsets
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "hw",
                  "isolation.level": "read_uncommitted"})
    assert c.get_watermark_offsets(TopicPartition("tx", 0), timeout=10) == (0, 93)
    c.close()
    # After a restart the batches come back from the Parquet files, not
    # the producer's own bytes: the same answer.
    floe.restart(kill=True)
    check()


def test_kafka_python_transactional_producer(floe):
    create_topic(floe.bootstrap, "kp", 1)
    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, transactional_id="kp-1")
    kp.init_transactions()
    kp.begin_transaction()
    for i in range(20):
        kp.send("kp", f"keep-{i}".encode())
    kp.commit_transaction()
    kp.begin_transaction()
    for i in range(20):
        kp.send("kp", f"drop-{i}".encode())
    kp.flush()
    kp.abort_transaction()
    kp.close()
    want = sorted(f"keep-{i}".encode() for i in range(20))
    assert sorted(kafka_python_values(floe.bootstrap, "kp", 1)) == want
    assert sorted(read_values(floe.bootstrap, "kp", 1, "read_committed")) == want
    assert len(read_values(floe.bootstrap, "kp", 1, "read_uncommitted")) == 40


def test_admin_tools_see_transactions_and_producers_kafka_python(floe):
    """What `kafka-transactions.sh list / describe / describe-producers`
    show, through kafka-python's admin client (an implementation
    independent of librdkafka): the open transaction, its partitions and
    producer, and each partition's producers with the open transaction's
    first offset (how a hanging transaction is found)."""
    from kafka.admin import KafkaAdminClient
    create_topic(floe.bootstrap, "seen", 2)
    plain = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True})
    for i in range(3):
        plain.produce("seen", value=f"plain-{i}".encode(), partition=1)
    plain.flush(30)
    before = int(time.time() * 1000)
    p = txn_producer(floe.bootstrap, "watched")
    p.begin_transaction()
    for i in range(5):
        p.produce("seen", value=f"open-{i}".encode(), partition=0)
    p.flush(30)
    admin = KafkaAdminClient(bootstrap_servers=floe.bootstrap)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts]
        mine = [t for t in listed if t.transactional_id == "watched"]
        assert len(mine) == 1 and mine[0].state == "Ongoing", listed
        described = admin.describe_transactions(["watched"])["watched"]
        assert described.state == "Ongoing"
        assert described.producer_id == mine[0].producer_id
        assert described.transaction_timeout_ms == 60000
        assert described.transaction_start_time_ms >= before - 1000
        assert described.topic_partitions == {KTopicPartition("seen", 0)}
        tps = [KTopicPartition("seen", 0), KTopicPartition("seen", 1)]
        producers = admin.describe_producers(tps)
        (txn,) = producers[tps[0]].active_producers
        assert txn.producer_id == described.producer_id
        assert txn.producer_epoch == described.producer_epoch
        assert txn.last_sequence == 4
        assert txn.current_transaction_start_offset == 0
        assert before - 1000 <= txn.last_timestamp <= int(time.time() * 1000) + 1000
        (idem,) = producers[tps[1]].active_producers
        assert idem.producer_id != txn.producer_id
        assert idem.last_sequence == 2 and idem.current_transaction_start_offset == -1
        # The commit closes it: no open transaction left on the partition.
        p.commit_transaction(30)
        (txn,) = admin.describe_producers([tps[0]])[tps[0]].active_producers
        assert txn.current_transaction_start_offset == -1
        assert admin.describe_transactions(["watched"])["watched"].state == "CompleteCommit"
        # A partition the topic does not have is an error, not an empty list.
        with pytest.raises(Exception) as e:
            admin.describe_producers([KTopicPartition("seen", 7)])
        assert "UnknownTopicOrPartition" in type(e.value).__name__, e.value
    finally:
        admin.close()


def test_an_open_transaction_holds_read_committed_back_and_times_out_into_an_abort(floe):
    create_topic(floe.bootstrap, "open", 1)
    p = txn_producer(floe.bootstrap, "slow", **{"transaction.timeout.ms": 4000})
    p.begin_transaction()
    for i in range(10):
        p.produce("open", value=f"open-{i}".encode(), partition=0)
    p.flush(30)
    # A plain producer writes after the open transaction's records.
    plain = Producer({"bootstrap.servers": floe.bootstrap})
    plain.produce("open", value=b"after", partition=0)
    plain.flush(30)
    # read_committed stops at the open transaction's first offset.
    # (librdkafka's read_committed consumers take the last stable offset
    # for the end of the log.)
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lso",
                  "isolation.level": "read_committed"})
    assert c.get_watermark_offsets(TopicPartition("open", 0), timeout=10) == (0, 0)
    u = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lso",
                  "isolation.level": "read_uncommitted"})
    assert u.get_watermark_offsets(TopicPartition("open", 0), timeout=10) == (0, 11)
    u.close()
    assert read_values(floe.bootstrap, "open", 1, "read_committed", settle=1.0) == []
    assert len(read_values(floe.bootstrap, "open", 1, "read_uncommitted", settle=1.0)) == 11
    # Past its timeout the coordinator aborts it: the later record becomes
    # visible, the transaction's never do.
    deadline = time.time() + 20
    seen = []
    while time.time() < deadline and seen != [b"after"]:
        seen = read_values(floe.bootstrap, "open", 1, "read_committed", settle=0.5)
    assert seen == [b"after"]
    # The producer was fenced by the abort's new epoch.
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    c.close()


def test_a_zombie_producer_is_fenced_and_its_transaction_aborted(floe):
    create_topic(floe.bootstrap, "zombie", 1)
    old = txn_producer(floe.bootstrap, "app-1")
    old.begin_transaction()
    old.produce("zombie", value=b"zombie", partition=0)
    old.flush(30)
    new = txn_producer(floe.bootstrap, "app-1")
    transaction(new, "zombie", [b"fresh"], 1)
    with pytest.raises(KafkaException) as e:
        old.produce("zombie", value=b"late", partition=0)
        old.commit_transaction(10)
    assert e.value.args[0].fatal(), e.value.args[0]
    assert read_values(floe.bootstrap, "zombie", 1, "read_committed") == [b"fresh"]


def test_offsets_sent_in_a_transaction_reach_the_group_only_when_it_commits(floe):
    create_topic(floe.bootstrap, "src", 1)
    create_topic(floe.bootstrap, "dst", 1)
    plain = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(10):
        plain.produce("src", value=str(i).encode(), partition=0)
    plain.flush(30)
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "ctp",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("src", 0, 0)])
    got = []
    while len(got) < 10:
        got += [m for m in c.consume(10, 1.0) if not m.error()]
    p = txn_producer(floe.bootstrap, "ctp-1")
    for commit, offset in ((False, 4), (True, 10)):
        p.begin_transaction()
        p.produce("dst", value=b"x", partition=0)
        p.send_offsets_to_transaction([TopicPartition("src", 0, offset)],
                                      c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        stored = c.committed([TopicPartition("src", 0)], 10)[0].offset
        assert stored == (10 if commit else -1001), (commit, stored)
    c.close()


def test_consume_transform_produce_is_exactly_once_across_kill9_of_app_and_broker(
        floe_factory, tmp_path):
    """The application and the broker each killed with SIGKILL, 20 times in
    all (FLOE_EOS_KILLS), each at a random moment after the application
    committed its first transaction of that run (transactions of 20
    records): every input record is in the output exactly once."""
    floe = floe_factory("--group-initial-rebalance-delay-ms", "0")
    records = 6000
    kills = int(os.environ.get("FLOE_EOS_KILLS", "20"))
    create_topic(floe.bootstrap, "in", 2)
    create_topic(floe.bootstrap, "out", 2)
    plain = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True})
    for i in range(records):
        plain.produce("in", key=str(i).encode(), value=f"v{i}".encode(), partition=i % 2)
    plain.flush(30)
    rng = random.Random(int(os.environ.get("FLOE_EOS_SEED", "7")))
    progress = tmp_path / "progress"
    app_args = [sys.executable, str(HERE / "eos_app.py"), floe.bootstrap, "in", "out",
                "eos-group", "eos-app", str(records), "20", str(progress)]
    killed = 0
    for k in range(kills):
        progress.write_text("0")
        app = subprocess.Popen(app_args)
        deadline = time.time() + 60
        while progress.read_text() in ("", "0") and app.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        if app.poll() is not None:
            assert app.returncode == 0, app.returncode
            break
        if k % 2 == 0:
            app.kill()
        else:
            floe.restart(kill=True)
            app.kill()
        app.wait()
        killed += 1
    app = subprocess.Popen(app_args)
    assert app.wait(timeout=300) == 0
    # The kills landed while there was work left, not after it was done.
    assert killed == kills, killed
    values = read_values(floe.bootstrap, "out", 2, "read_committed", timeout=60)
    want = sorted(f"V{i}".encode() for i in range(records))
    assert len(values) == records, (len(values), len(set(values)))
    assert sorted(values) == want
    # The aborted attempts are in the log, for read_uncommitted readers.
    assert len(read_values(floe.bootstrap, "out", 2, "read_uncommitted", timeout=60)) > records


def table_values(floe, topic):
    """The values the topic's Iceberg table shows now, as PyIceberg reads
    it through floe's catalog, with the current snapshot's summary."""
    from pyiceberg.catalog.rest import RestCatalog

    table = RestCatalog("floe", uri=floe.http + "/iceberg").load_table(f"floe.{topic}")
    snapshot = table.current_snapshot()
    if snapshot is None:
        return [], {}
    values = table.scan().to_arrow().column("value").to_pylist()
    return values, dict(snapshot.summary.additional_properties)


def wait_table(floe, topic, expected, timeout=30):
    deadline = time.time() + timeout
    while True:
        values, summary = table_values(floe, topic)
        if sorted(values) == expected or time.time() > deadline:
            assert sorted(values) == expected, \
                f"table shows {len(values)} rows, {len(set(values) - set(expected))} unexpected, " \
                f"{len(set(expected) - set(values))} missing"
            return summary
        time.sleep(0.3)


def test_the_table_shows_only_committed_records_across_kill9_and_compaction(floe_factory):
    """PyIceberg never sees a record of an aborted or open transaction, nor
    a marker; committed records appear within the commit interval, and a
    transaction still open when the broker is killed stays out of the table
    until it commits. Compaction rewrites the files (markers and aborted
    records kept for the log) and the table still shows the same rows."""
    floe = floe_factory("--maintenance-interval-secs", "1", "--compaction-target-bytes", "400000")
    topic = "txtable"
    create_topic(floe.bootstrap, topic, 2, config={"floe.iceberg.commit.interval.ms": "300"})
    p = txn_producer(floe.bootstrap, "table-writer")
    committed = [f"c-{i}".encode() for i in range(100)]
    aborted = [f"a-{i}".encode() for i in range(60)]
    plain = [f"n-{i}".encode() for i in range(20)]
    still_open = [f"o-{i}".encode() for i in range(40)]
    # Several transactions of each kind, in several flushes.
    for chunk in range(4):
        transaction(p, topic, committed[chunk * 25:(chunk + 1) * 25], 2)
        transaction(p, topic, aborted[chunk * 15:(chunk + 1) * 15], 2, commit=False)
    plain_producer = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 5})
    for i, v in enumerate(plain):
        plain_producer.produce(topic, value=v, partition=i % 2)
    assert plain_producer.flush(30) == 0
    expected = sorted(committed + plain)
    summary = wait_table(floe, topic, expected)
    assert int(summary["total-position-deletes"]) > 0, summary

    # A transaction left open: its records (and the plain ones after
    # them) stay out of the table.
    q = txn_producer(floe.bootstrap, "table-open")
    q.begin_transaction()
    for i, v in enumerate(still_open):
        q.produce(topic, value=v, partition=i % 2)
    q.flush(30)
    late = [f"late-{i}".encode() for i in range(10)]
    for i, v in enumerate(late):
        plain_producer.produce(topic, value=v, partition=i % 2)
    assert plain_producer.flush(30) == 0
    time.sleep(3)
    assert sorted(table_values(floe, topic)[0]) == expected
    assert sorted(read_values(floe.bootstrap, topic, 2, "read_committed")) == expected

    # kill -9 while it is open: the state comes back from the store.
    floe.restart(kill=True)
    time.sleep(3)
    assert sorted(table_values(floe, topic)[0]) == expected
    q.commit_transaction(60)
    expected = sorted(committed + plain + still_open + late)
    wait_table(floe, topic, expected)
    assert sorted(read_values(floe.bootstrap, topic, 2, "read_committed")) == expected

    # Compaction merges the table's files; the rows it shows stay.
    deadline = time.time() + 60
    while True:
        with urllib.request.urlopen(f"{floe.http}/admin/topics/{topic}/snapshots", timeout=10) as r:
            ops = [s["operation"] for s in json.loads(r.read())["snapshots"]]
        if "replace" in ops or time.time() > deadline:
            break
        time.sleep(0.5)
    assert "replace" in ops, ops
    wait_table(floe, topic, expected)
    floe.restart(kill=True)
    wait_table(floe, topic, expected)
    # read_uncommitted still reads the aborted records from the log.
    assert sorted(read_values(floe.bootstrap, topic, 2, "read_uncommitted")) == \
        sorted(expected + aborted)
