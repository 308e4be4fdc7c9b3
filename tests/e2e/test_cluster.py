"""Several brokers on one PostgreSQL and one object store: topics are led by
the live brokers, spread evenly, and move to the others when a broker dies;
clients follow the leaders through Metadata and NOT_LEADER_OR_FOLLOWER, and
nothing acknowledged is lost or doubled."""

import socket
import struct
import threading
import time
import uuid
from collections import Counter

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, TopicPartition as KafkaPartition

from cluster import LEASE_MS, leaders, settled_leaders, start_cluster, wait_for
from conftest import garage_catalog_props, psql
from helpers import consume_all, create_topic

def test_topics_spread_over_live_brokers_and_move_within_the_bound_when_one_dies(floe_factory, tmp_path, postgres):
    brokers = start_cluster(floe_factory, tmp_path, postgres)
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    topics = [f"t{i}" for i in range(6)]
    for t in topics:
        create_topic(brokers[1].bootstrap, t, 2)

    # Created on broker 1, the topics spread: two per broker.
    def spread():
        ls = leaders(bootstrap, topics)
        return ls if len(ls) == 6 and sorted(Counter(ls.values()).values()) == [2, 2, 2] else None

    placed = wait_for("topics to spread", spread)
    # Every broker's Metadata lists every broker and agrees on the leaders
    # (each reads the placement back every round: views agree within one).
    for b in brokers.values():
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]

    def agreed():
        views = [leaders(b.bootstrap, topics) for b in brokers.values()]
        return views[0] if all(v == views[0] and v == spread() for v in views) else None

    placed = wait_for("every broker to agree on the leaders", agreed, timeout=10)

    acked = {t: [] for t in topics}
    failed = []
    stop = threading.Event()
    first_ack_after = {}

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 60000})
        n = 0

        def report(err, msg):
            if err:
                failed.append(err)
            else:
                acked[msg.topic()].append((msg.partition(), msg.offset(), msg.value()))
                first_ack_after.setdefault(msg.topic(), time.time())

        while not stop.is_set():
            for t in topics:
                p.produce(t, value=f"{t}-{n}".encode(), partition=n % 2, on_delivery=report)
            n += 1
            p.poll(0.01)
        p.flush(90)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(2)
        victim = placed["t0"]
        moved = [t for t, b in placed.items() if b == victim]
        killed_at = time.time()
        brokers[victim].kill9()
        for t in moved:
            first_ack_after.pop(t, None)
        # Clients resume producing to the moved topics on another broker
        # within the lease plus a placement round and their retries.
        survivors = ",".join(b.bootstrap for i, b in brokers.items() if i != victim)
        after = wait_for("the dead broker's topics to move",
                         lambda: (ls := leaders(survivors, topics)) and victim not in ls.values() and ls)
        wait_for("acks for the moved topics", lambda: all(
            first_ack_after.get(t, 0) > killed_at for t in moved), timeout=30)
        resumed = max(first_ack_after[t] for t in moved) - killed_at
        print(f"resumed {resumed:.2f} s after the kill; acked {sum(map(len, acked.values()))}")
        assert resumed < LEASE_MS / 1000 + 8, resumed
        assert sorted(Counter(after.values()).values()) == [3, 3]
        time.sleep(1)
    finally:
        stop.set()
        producer.join(120)
    assert failed == []

    # Every acknowledged record is there exactly once, in order, offsets
    # never reused; read through the survivors with librdkafka and with
    # kafka-python.
    for t in topics:
        got = consume_all(survivors, t, 2, expected=len(acked[t]))
        for part in (0, 1):
            ours = sorted((o, v) for p, o, v in acked[t] if p == part)
            read = [(m.offset(), m.value()) for m in got[part]]
            assert read == ours, (t, part, len(read), len(ours))
    kc = KafkaConsumer(bootstrap_servers=survivors.split(","), enable_auto_commit=False,
                       consumer_timeout_ms=5000)
    try:
        parts = [KafkaPartition(t, p) for t in topics for p in (0, 1)]
        kc.assign(parts)
        kc.seek_to_beginning()
        seen = Counter()
        for m in kc:
            seen[(m.topic, m.partition, m.offset)] += 1
        assert sum(seen.values()) == sum(len(v) for v in acked.values())
        assert max(seen.values()) == 1
    finally:
        kc.close()


def test_a_topic_moved_away_fences_its_former_leader(floe_factory, tmp_path, postgres):
    brokers = start_cluster(floe_factory, tmp_path, postgres, ids=(1, 2))
    create_topic(brokers[1].bootstrap, "t", 1)
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    leader = wait_for("a leader", lambda: leaders(bootstrap, ["t"]).get("t"))
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 1})
    p.produce("t", b"before")
    assert p.flush(30) == 0
    # Move the topic by hand, as the placement does: a new leader and a new
    # epoch in one statement. The former leader learns of it at its next
    # commit (refused) or placement round, whichever first.
    other = 3 - leader
    psql(postgres, f"UPDATE partitions SET leader_id = {other}, leader_epoch = leader_epoch + 1 WHERE topic = 't'")
    # (The placement may move it back to even the load: the group
    # coordinator counts too. Either way the former term is over.)
    assert brokers[leader].log_contains('no longer leading topic topic="t"', within=15)
    p.produce("t", b"after")
    assert p.flush(30) == 0
    got = consume_all(bootstrap, "t", 1, expected=2)
    assert [m.value() for m in got[0]] == [b"before", b"after"]
    assert [m.offset() for m in got[0]] == [0, 1]


def test_a_consumer_group_carries_on_when_its_coordinator_dies(floe_factory, tmp_path, postgres):
    brokers = start_cluster(floe_factory, tmp_path, postgres)
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    create_topic(brokers[1].bootstrap, "g", 3)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(300):
        p.produce("g", value=f"v{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0

    def coordinator():
        got = psql(postgres, "SELECT leader_id FROM partitions WHERE topic = '__floe_group_coordinator'")
        return int(got) if got else None

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "grp", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
    c.subscribe(["g"])
    seen = []
    committed = []

    def consume_until(n, timeout=60):
        deadline = time.time() + timeout
        while len(seen) < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            seen.append((m.partition(), m.offset()))
            if len(seen) % 20 == 0:
                try:
                    c.commit(asynchronous=False)
                except KafkaException:
                    continue  # retriable while the coordinator moves
                committed.append({tp.partition: tp.offset for tp in c.committed(
                    [KafkaTopicPartition("g", q) for q in range(3)], timeout=10)})

    try:
        consume_until(100)
        victim = coordinator()
        assert victim in brokers
        brokers[victim].kill9()
        wait_for("the coordinator to move", lambda: coordinator() not in (None, victim))
        consume_until(300, timeout=90)
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            assert e.args[0].code() == KafkaError._NO_OFFSET, e  # all committed already
        final = {tp.partition: tp.offset for tp in c.committed(
            [KafkaTopicPartition("g", q) for q in range(3)], timeout=10)}
    finally:
        c.close()
    # Every record was read (a record after the last commit before the
    # failover may be read twice, never one skipped), and the committed
    # offsets never went backwards.
    assert set(seen) == {(q, o) for q in range(3) for o in range(100)}
    for before, after in zip(committed, committed[1:]):
        assert all(after[q] >= before[q] for q in before), (before, after)
    assert final == {0: 100, 1: 100, 2: 100}
    # An independent client in the same group starts from those offsets.
    survivors = [b.bootstrap for i, b in brokers.items() if i != victim]
    p.produce("g", value=b"late", partition=0)
    assert p.flush(30) == 0
    kc = KafkaConsumer("g", bootstrap_servers=survivors, group_id="grp", enable_auto_commit=False,
                       consumer_timeout_ms=15000)
    try:
        got = [(m.partition, m.value) for m in kc]
    finally:
        kc.close()
    assert got == [(0, b"late")]


def test_a_schema_registered_on_one_broker_validates_produce_on_another(floe_factory, tmp_path, postgres):
    from confluent_kafka.serialization import MessageField, SerializationContext
    from test_schemas import INVALID_RECORD, good_order, produce_raw, serializer, setup_order_schema

    brokers = start_cluster(floe_factory, tmp_path, postgres, ids=(1, 2))
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    create_topic(brokers[1].bootstrap, "checked", 1, {"floe.validate.mode": "reject"})
    leader_id = settled_leaders(bootstrap, ["checked"])["checked"]
    leader, other = brokers[leader_id], brokers[3 - leader_id]
    # The leader has no schema for the topic: it refuses everything.
    err, errors, _ = produce_raw(leader, "checked", [b"\x00\x00\x00\x00\x01\x00\x08\x01"])
    assert err == INVALID_RECORD and "no schema" in errors[0][1], errors
    # Registered on the other broker, the schema validates the very next
    # produce on the leader (announced, or looked up on the miss).
    _, M = setup_order_schema(other, "checked")
    ctx = SerializationContext("checked", MessageField.VALUE)
    good = serializer(other, M)(good_order(M), ctx)
    bad = serializer(other, M)(good_order(M, quantity=0), ctx)
    assert produce_raw(leader, "checked", [good]) == (0, [], None)
    err, errors, _ = produce_raw(leader, "checked", [bad])
    assert err == INVALID_RECORD and "quantity" in errors[0][1], errors


def test_three_brokers_on_s3_keep_one_table_per_topic_readable_from_any_broker(garage, floe_factory, tmp_path,
                                                                                 postgres):
    """On a real S3-compatible store (Garage): the table of a topic is
    committed by its leader only, one snapshot stream, which PyIceberg reads
    through any broker's catalog, before and after its leader dies."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import NoSuchTableError

    brokers = {
        i: floe_factory(f"--metadata={postgres}", f"--broker-id={i}", "--object-store=s3://lake/floe",
                        f"--broker-lease-ms={LEASE_MS}", "--flush-linger-ms=20", data_dir=tmp_path / f"broker{i}")
        for i in (1, 2, 3)
    }
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    create_topic(brokers[1].bootstrap, "pay", 2, {"floe.iceberg.commit.interval.ms": "500"})
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})

    def produce(start, n):
        for i in range(start, start + n):
            p.produce("pay", key=str(i).encode(), value=f"v{i}".encode(), partition=i % 2)
        assert p.flush(60) == 0

    def rows(via):
        cat = RestCatalog("floe", uri=via.http + "/iceberg", **garage_catalog_props())
        try:
            t = cat.load_table("floe.pay")
        except NoSuchTableError:
            return 0, 0  # until the leader's first table commit
        return t.scan().to_arrow().num_rows, len(t.history())

    produce(0, 500)
    leader = wait_for("a leader", lambda: leaders(bootstrap, ["pay"]).get("pay"))
    others = [b for i, b in brokers.items() if i != leader]
    wait_for("the table through another broker", lambda: rows(others[0])[0] == 500)
    brokers[leader].kill9()
    produce(500, 500)
    wait_for("the table after the failover", lambda: rows(others[1])[0] == 1000, timeout=60)
    # One snapshot stream: both catalogs serve the same table.
    assert rows(others[0]) == rows(others[1])
    got = consume_all(",".join(b.bootstrap for b in others), "pay", 2, expected=1000)
    assert sorted(int(m.key()) for msgs in got.values() for m in msgs) == list(range(1000))


def _roundtrip(floe, request, response_class, version):
    """One request to `floe` with kafka-python's protocol classes; the
    decoded response."""
    from test_schemas import read_exact

    request.with_header(correlation_id=7, client_id="hints")
    host, port = floe.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request.encode(version=version, header=True, framed=True))
        (size,) = struct.unpack(">i", read_exact(s, 4))
        return response_class.decode(read_exact(s, size), version=version, header=True)


def test_a_broker_that_does_not_lead_names_the_leader_in_its_refusal(floe_factory, tmp_path, postgres):
    """KIP-951: a produce (v10+) or fetch (v16+) sent to a broker that does
    not lead the partition is refused with NOT_LEADER_OR_FOLLOWER naming the
    current leader, its epoch and its endpoint."""
    from kafka.protocol.consumer import FetchRequest, FetchResponse
    from kafka.protocol.producer import ProduceRequest, ProduceResponse
    from kafka.record.default_records import DefaultRecordBatchBuilder

    brokers = start_cluster(floe_factory, tmp_path, postgres, ids=(1, 2))
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    create_topic(brokers[1].bootstrap, "hinted", 1)
    leader_id = settled_leaders(bootstrap, ["hinted"])["hinted"]
    leader, other = brokers[leader_id], brokers[3 - leader_id]
    epoch = int(psql(postgres, "SELECT leader_epoch FROM partitions WHERE topic = 'hinted' AND partition_id = 0"))
    topic_id = uuid.UUID(psql(postgres, "SELECT topic_id FROM topics WHERE name = 'hinted'"))
    leader_port = int(leader.bootstrap.rsplit(":", 1)[1])

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    b.append(0, timestamp=int(time.time() * 1000), key=None, value=b"v", headers=[])
    produce = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[ProduceRequest.TopicProduceData(
        name="hinted", partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(
            index=0, records=bytes(b.build()))])])
    r = _roundtrip(other, produce, ProduceResponse, 11)
    p = r.responses[0].partition_responses[0]
    assert p.error_code == 6, p
    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (leader_id, epoch)
    assert [(e.node_id, e.port) for e in r.node_endpoints] == [(leader_id, leader_port)]
    # The leader itself takes it, with no hint.
    r = _roundtrip(leader, produce, ProduceResponse, 11)
    p = r.responses[0].partition_responses[0]
    assert p.error_code == 0 and p.current_leader is None and not r.node_endpoints, r

    fetch = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, topics=[FetchRequest.FetchTopic(
                             topic_id=topic_id, partitions=[FetchRequest.FetchTopic.FetchPartition(
                                 partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                 log_start_offset=-1, partition_max_bytes=1 << 20)])],
                         forgotten_topics_data=[], rack_id="")
    r = _roundtrip(other, fetch, FetchResponse, 16)
    p = r.responses[0].partitions[0]
    assert p.error_code == 6, p
    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (leader_id, epoch)
    assert [(e.node_id, e.port) for e in r.node_endpoints] == [(leader_id, leader_port)]
    r = _roundtrip(leader, fetch, FetchResponse, 16)
    assert r.responses[0].partitions[0].error_code == 0 and not r.node_endpoints, r
