"""Consumer groups (classic protocol) and committed offsets, with
librdkafka (confluent-kafka) and kafka-python."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka import KafkaConsumer

from helpers import admin, create_topic

GROUP_ARGS = ("--group-initial-rebalance-delay-ms", "300")


def produce(bootstrap, topic, n, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        while True:
            try:
                p.produce(topic, str(i).encode(), partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def group_consumer(bootstrap, group, **extra):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                     "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100, **extra})


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_members_share_partitions_rebalance_and_commit(floe_factory, strategy):
    """Three members share 8 partitions; a fourth joins mid-way and one
    leaves cleanly; with commits after processing, every record of 100 000
    is processed at least once and the committed offsets end at the end."""
    f = floe_factory(*GROUP_ARGS)
    topic, parts, n = "shared", 8, 100_000
    create_topic(f.bootstrap, topic, parts)
    produce(f.bootstrap, topic, n, parts)

    seen = set()
    lock = threading.Lock()
    stop = threading.Event()
    owned = {}

    def run(name, close_after=None):
        c = group_consumer(f.bootstrap, "g1", **{"partition.assignment.strategy": strategy,
                                                 "fetch.max.bytes": 1_100_000, "max.partition.fetch.bytes": 20_000})
        c.subscribe([topic])
        handled = 0
        pending = False
        while not stop.is_set():
            msgs = c.consume(200, 0.1)
            for m in msgs:
                if m.error():
                    continue
                with lock:
                    seen.add(int(m.value()))
                handled += 1
                pending = True
            if pending:
                try:
                    c.commit(asynchronous=False)
                    pending = False
                except KafkaException as e:
                    # Refused during a rebalance: retried on the next loop
                    # (under cooperative rebalancing a kept partition is not
                    # re-read, so the application must commit again).
                    assert e.args[0].code() in (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                                KafkaError.UNKNOWN_MEMBER_ID, KafkaError._NO_OFFSET), e
                    if e.args[0].code() == KafkaError._NO_OFFSET:
                        pending = False
            owned[name] = {tp.partition for tp in c.assignment()}
            if close_after and handled >= close_after:
                break
        owned.pop(name, None)
        c.close()

    threads = [threading.Thread(target=run, args=("a",)), threading.Thread(target=run, args=("b",)),
               threading.Thread(target=run, args=("c", 20_000))]
    for t in threads:
        t.start()
    joined = False
    shared_by_three = False
    deadline = time.time() + 120
    while len(seen) < n and time.time() < deadline:
        if len(owned) == 3 and all(owned.values()):
            snapshot = list(owned.values())
            if sum(len(x) for x in snapshot) == parts and set().union(*snapshot) == set(range(parts)):
                shared_by_three = True
        if not joined and len(seen) >= 30_000:
            late = threading.Thread(target=run, args=("d",))
            late.start()
            threads.append(late)
            joined = True
        time.sleep(0.05)
    # Members keep running until their commits reach the end: a commit
    # refused during a rebalance is redone by the partition's next owner.
    a = admin(f.bootstrap)

    def committed():
        res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g1")])
        return {tp.partition: tp.offset for tp in res["g1"].result(10).topic_partitions}

    while time.time() < deadline and committed() != {p: n // parts for p in range(parts)}:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(30)
    assert shared_by_three, "at some point three members owned disjoint partitions covering the topic"
    assert len(seen) == n, f"{n - len(seen)} records were never processed"
    offsets = committed()
    assert offsets == {p: n // parts for p in range(parts)}, "committed offsets reach the end: lag is zero"


def test_committed_offsets_and_metadata_survive_kill9(floe_factory):
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "durable", 2)
    produce(f.bootstrap, "durable", 100, 2)
    c = group_consumer(f.bootstrap, "g2")
    c.commit(offsets=[TopicPartition("durable", 0, 17, metadata="checkpoint-a"),
                      TopicPartition("durable", 1, 33, metadata="checkpoint-b")], asynchronous=False)
    c.close()
    f.restart(kill=True)
    c = group_consumer(f.bootstrap, "g2")
    got = c.committed([TopicPartition("durable", 0), TopicPartition("durable", 1)], timeout=10)
    c.close()
    assert [(t.partition, t.offset, t.metadata) for t in got] == [(0, 17, "checkpoint-a"), (1, 33, "checkpoint-b")]
    # Lag from ListOffsets and OffsetFetch.
    c = group_consumer(f.bootstrap, "g2")
    lag = [c.get_watermark_offsets(TopicPartition("durable", p), 10)[1] - o.offset for p, o in enumerate(got)]
    c.close()
    assert lag == [50 - 17, 50 - 33]


def test_kafka_python_group_resumes_from_commits(floe_factory):
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "kpg", 3)
    produce(f.bootstrap, "kpg", 3000, 3)
    first = KafkaConsumer("kpg", bootstrap_servers=f.bootstrap, group_id="kp-group", auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=8000)
    values = []
    for m in first:
        values.append(int(m.value))
        if len(values) == 1500:
            break
    first.commit()
    first.close()
    second = KafkaConsumer("kpg", bootstrap_servers=f.bootstrap, group_id="kp-group", auto_offset_reset="earliest",
                           enable_auto_commit=False, consumer_timeout_ms=8000)
    rest = [int(m.value) for m in second]
    second.close()
    assert sorted(values + rest) == list(range(3000)), "the second member starts where the commits left off"


def test_group_admin_list_describe_delete(floe_factory):
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "adm", 2)
    c = group_consumer(f.bootstrap, "g-admin")
    c.subscribe(["adm"])
    deadline = time.time() + 30
    while not c.assignment() and time.time() < deadline:
        c.poll(0.2)
    assert len(c.assignment()) == 2
    a = admin(f.bootstrap)
    listed = {g.group_id: g for g in a.list_consumer_groups().result(10).valid}
    assert "g-admin" in listed
    d = a.describe_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert len(d.members) == 1 and d.state.name == "STABLE"
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1]
    with pytest.raises(Exception):
        a.delete_consumer_groups(["g-admin"])["g-admin"].result(10)  # NON_EMPTY_GROUP
    c.close()
    a.delete_consumer_groups(["g-admin"])["g-admin"].result(10)
    listed = {g.group_id for g in a.list_consumer_groups().result(10).valid}
    assert "g-admin" not in listed


def wait_for(pred, timeout, step=0.2, poll=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if poll:
            poll()
        if pred():
            return True
        time.sleep(step)
    return False


def test_static_member_rejoins_without_a_rebalance(floe_factory):
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "static", 4)
    assigns = {"a": 0, "b": 0}

    def counting(name):
        def on_assign(c, parts):
            assigns[name] += 1
        return on_assign

    a = group_consumer(f.bootstrap, "g-static", **{"group.instance.id": "member-a"})
    b = group_consumer(f.bootstrap, "g-static", **{"group.instance.id": "member-b"})
    a.subscribe(["static"], on_assign=counting("a"))
    b.subscribe(["static"], on_assign=counting("b"))
    assert wait_for(lambda: len(a.assignment()) + len(b.assignment()) == 4 and a.assignment() and b.assignment(),
                    30, poll=lambda: (a.poll(0.05), b.poll(0.05)))
    before_b = assigns["b"]
    mine = sorted(tp.partition for tp in a.assignment())
    a.close()  # static members do not send LeaveGroup
    a2 = group_consumer(f.bootstrap, "g-static", **{"group.instance.id": "member-a"})
    a2.subscribe(["static"])
    assert wait_for(lambda: bool(a2.assignment()), 30, poll=lambda: (a2.poll(0.05), b.poll(0.05)))
    assert sorted(tp.partition for tp in a2.assignment()) == mine, "the same partitions come back"
    for _ in range(20):
        b.poll(0.05)
    assert assigns["b"] == before_b, "the other member saw no rebalance"
    a2.close()
    b.close()


def test_a_second_static_member_with_the_same_instance_id_fences_the_first(floe_factory):
    """KIP-345: a process that joins with a group.instance.id another member
    holds takes it over; the old one is told FENCED_INSTANCE_ID on its next
    heartbeat or commit and stops (librdkafka raises it as a fatal error)."""
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "fenced", 2)
    produce(f.bootstrap, "fenced", 10, 2)
    errors = []
    old = group_consumer(f.bootstrap, "g-fence", **{"group.instance.id": "dup", "error_cb": errors.append})
    old.subscribe(["fenced"])
    assert wait_for(lambda: len(old.assignment()) == 2, 30, poll=lambda: old.poll(0.05))
    new = group_consumer(f.bootstrap, "g-fence", **{"group.instance.id": "dup"})
    new.subscribe(["fenced"])
    assert wait_for(lambda: len(new.assignment()) == 2, 30, poll=lambda: new.poll(0.05))

    def poll_both():
        m = old.poll(0.05)
        if m is not None and m.error():
            errors.append(m.error())
        new.poll(0.05)

    def fenced():
        # librdkafka turns FENCED_INSTANCE_ID into a fatal error.
        return any(e.code() in (KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL) and
                   "fenced" in e.str().lower() for e in errors)
    assert wait_for(fenced, 20, step=0.05, poll=poll_both), errors
    # Its commits are refused; the new member's go through.
    with pytest.raises(KafkaException):
        old.commit(offsets=[TopicPartition("fenced", 0, 3)], asynchronous=False)
    new.commit(offsets=[TopicPartition("fenced", 0, 5)], asynchronous=False)
    assert new.committed([TopicPartition("fenced", 0)], timeout=10)[0].offset == 5
    new.close()
    old.close()


def test_kafka_python_static_member_is_fenced(floe_factory):
    """The same with an independent client: kafka-python's consumer raises
    FencedInstanceIdError once another process took its instance id."""
    from kafka.errors import FencedInstanceIdError
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "fenced-kp", 1)
    produce(f.bootstrap, "fenced-kp", 10, 1)
    cfg = dict(bootstrap_servers=f.bootstrap, group_id="g-fence-kp", group_instance_id="dup",
               auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
               heartbeat_interval_ms=300)
    old = KafkaConsumer("fenced-kp", **cfg)
    assert wait_for(lambda: bool(old.assignment()), 30, poll=lambda: old.poll(50))
    new = KafkaConsumer("fenced-kp", **cfg)
    assert wait_for(lambda: bool(new.assignment()), 30, poll=lambda: new.poll(50))
    raised = []

    def poll_old():
        try:
            old.poll(50)
            old.commit()
        except FencedInstanceIdError as e:
            raised.append(e)
    assert wait_for(lambda: bool(raised), 20, step=0.05, poll=poll_old)
    new.close()
    old.close()


def test_a_member_commits_while_the_group_prepares_a_rebalance(floe_factory):
    """Kafka accepts a commit from a member of the current generation while
    the group waits for its members to rejoin (cooperative assignors commit
    the partitions they give up then); floe refused it with
    REBALANCE_IN_PROGRESS."""
    from confluent_kafka import ConsumerGroupState
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "coop", 4)
    produce(f.bootstrap, "coop", 40, 4)
    # A long heartbeat interval: `a` learns of the rebalance late, so the
    # group stays in PreparingRebalance while it commits.
    a = group_consumer(f.bootstrap, "g-coop", **{"partition.assignment.strategy": "cooperative-sticky",
                                                 "session.timeout.ms": 60000,
                                                 "heartbeat.interval.ms": 20000})
    a.subscribe(["coop"])
    assert wait_for(lambda: len(a.assignment()) == 4, 30, poll=lambda: a.poll(0.05))
    b = group_consumer(f.bootstrap, "g-coop", **{"partition.assignment.strategy": "cooperative-sticky"})
    b.subscribe(["coop"])
    adm = admin(f.bootstrap)

    def preparing():
        d = adm.describe_consumer_groups(["g-coop"])["g-coop"].result(10)
        return d.state == ConsumerGroupState.PREPARING_REBALANCING
    assert wait_for(preparing, 10, step=0.05, poll=lambda: b.poll(0.05))
    a.commit(offsets=[TopicPartition("coop", p, 7) for p in range(4)], asynchronous=False)
    got = a.committed([TopicPartition("coop", p) for p in range(4)], timeout=10)
    assert [tp.offset for tp in got] == [7, 7, 7, 7]
    a.close()
    b.close()


KILLABLE = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "g-kill", "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})
c.subscribe(["killme"])
while True:
    c.poll(0.2)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_killed_member_is_expired_and_its_partitions_move(floe_factory, tmp_path):
    import subprocess
    import sys
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "killme", 4)
    script = tmp_path / "member.py"
    script.write_text(KILLABLE)
    victim = subprocess.Popen([sys.executable, str(script), f.bootstrap], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline().strip() == "assigned"
        survivor = group_consumer(f.bootstrap, "g-kill")
        survivor.subscribe(["killme"])
        assert wait_for(lambda: len(survivor.assignment()) == 2, 30, poll=lambda: survivor.poll(0.05))
        victim.kill()
        victim.wait()
        start = time.time()
        assert wait_for(lambda: len(survivor.assignment()) == 4, 30, poll=lambda: survivor.poll(0.05)), \
            "the dead member's partitions moved after its session timed out"
        assert time.time() - start >= 4, "not before the session timeout"
        survivor.close()
    finally:
        victim.kill()


def test_kip848_consumer_protocol_with_server_side_assignment(floe_factory):
    f = floe_factory(*GROUP_ARGS)
    topic, n = "kip848", 4000
    create_topic(f.bootstrap, topic, 4)
    produce(f.bootstrap, topic, n, 4)
    conf = {"bootstrap.servers": f.bootstrap, "group.id": "g848", "group.protocol": "consumer",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
    a, b = Consumer(conf), Consumer(conf)
    a.subscribe([topic])
    b.subscribe([topic])
    seen = set()
    active = [a, b]

    def pump():
        for c in active:
            for m in c.consume(500, 0.1):
                if not m.error():
                    seen.add(int(m.value()))
            try:
                c.commit(asynchronous=False)
            except KafkaException:
                pass

    assert wait_for(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, 60, step=0.05, poll=pump), \
        (a.assignment(), b.assignment())
    assert {tp.partition for tp in a.assignment()} | {tp.partition for tp in b.assignment()} == {0, 1, 2, 3}
    assert wait_for(lambda: len(seen) == n, 60, step=0.05, poll=pump)
    adm = admin(f.bootstrap)  # must outlive its futures
    d = adm.describe_consumer_groups(["g848"])["g848"].result(10)
    assert len(d.members) == 2
    active.remove(b)
    b.close()
    assert wait_for(lambda: len(a.assignment()) == 4, 60, step=0.05, poll=pump), "a takes over b's partitions"
    a.close()
    c = Consumer({"bootstrap.servers": f.bootstrap, "group.id": "g848"})
    committed = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    c.close()
    assert [t.offset for t in committed] == [n // 4] * 4


def test_group_admin_with_an_independent_client(floe_factory):
    """kafka-python's admin client: ListGroups with a state filter and
    OffsetDelete (refused while a member is subscribed)."""
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTP
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "kadm", 2)
    c = group_consumer(f.bootstrap, "g-active")
    c.subscribe(["kadm"])
    assert wait_for(lambda: len(c.assignment()) == 2, 30, poll=lambda: c.poll(0.05))
    c.commit(offsets=[TopicPartition("kadm", 0, 5)], asynchronous=False)
    idle = group_consumer(f.bootstrap, "g-idle")
    idle.commit(offsets=[TopicPartition("kadm", 1, 7)], asynchronous=False)
    idle.close()

    ka = KafkaAdminClient(bootstrap_servers=f.bootstrap)
    names = lambda groups: sorted(g["group_id"] for g in groups)
    assert names(ka.list_groups(states_filter=["Stable"])) == ["g-active"]
    assert names(ka.list_groups(states_filter=["Empty"])) == ["g-idle"]

    from kafka.errors import GroupSubscribedToTopicError
    refused = ka.delete_group_offsets("g-active", [KTP("kadm", 0)])
    assert refused[KTP("kadm", 0)] is GroupSubscribedToTopicError
    done = ka.delete_group_offsets("g-idle", [KTP("kadm", 1)])
    assert all(v is None or getattr(v, "errno", 0) == 0 for v in done.values()), done
    reader = group_consumer(f.bootstrap, "g-idle")
    assert reader.committed([TopicPartition("kadm", 1)], timeout=10)[0].offset < 0, "the offset is gone"
    reader.close()
    c.close()
    ka.close()


def test_kip848_group_survives_broker_kill9_without_rebalance(floe_factory):
    """Consumer-protocol group state lives in the metadata store: after a
    kill -9 the members carry on with their ids and partitions, nobody is
    revoked, and consumption continues."""
    f = floe_factory(*GROUP_ARGS)
    topic = "kip848-restart"
    create_topic(f.bootstrap, topic, 4)
    produce(f.bootstrap, topic, 400, 4)
    revoked = []
    conf = {"bootstrap.servers": f.bootstrap, "group.id": "g848r", "group.protocol": "consumer",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
    a, b = Consumer(conf), Consumer(conf)
    for c in (a, b):
        c.subscribe([topic], on_revoke=lambda _c, parts: revoked.append(parts))
    seen = set()

    def pump():
        for c in (a, b):
            for m in c.consume(200, 0.05):
                if not m.error():
                    seen.add(int(m.value()))

    assert wait_for(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2 and len(seen) == 400,
                    60, step=0.05, poll=pump)
    def members():
        adm = admin(f.bootstrap)  # a fresh client: one from before the kill may be in reconnect backoff
        return sorted(m.member_id for m in adm.describe_consumer_groups(["g848r"])["g848r"].result(10).members)

    before = members()
    assignment_before = (sorted(tp.partition for tp in a.assignment()),
                         sorted(tp.partition for tp in b.assignment()))
    revoked.clear()

    f.restart(kill=True)
    produce(f.bootstrap, topic, 400, 4)
    seen.clear()
    assert wait_for(lambda: len(seen) == 400, 60, step=0.05, poll=pump), len(seen)
    assert members() == before, "members kept their ids"
    assert (sorted(tp.partition for tp in a.assignment()),
            sorted(tp.partition for tp in b.assignment())) == assignment_before
    assert revoked == [], "no partition was revoked"
    assert "member joined (consumer protocol)" not in f.log_text().split("floe is ready")[-1]
    a.close()
    b.close()


def test_kip848_regex_subscription_picks_up_new_topics(floe_factory):
    """A consumer-protocol member subscribed by regular expression is
    assigned every matching topic, including one created after it joined;
    a bad expression gets INVALID_REGULAR_EXPRESSION's message back."""
    f = floe_factory(*GROUP_ARGS)
    create_topic(f.bootstrap, "kre-a", 2)
    create_topic(f.bootstrap, "other", 1)
    conf = {"bootstrap.servers": f.bootstrap, "group.id": "g-regex", "group.protocol": "consumer",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000}
    c = Consumer(conf)
    c.subscribe(["^kre-.*"])
    seen = []
    pump = lambda: seen.extend(m.topic() for m in c.consume(100, 0.05) if not m.error())
    assigned = lambda: sorted((tp.topic, tp.partition) for tp in c.assignment())
    assert wait_for(lambda: assigned() == [("kre-a", 0), ("kre-a", 1)], 30, step=0.05, poll=pump), assigned()
    create_topic(f.bootstrap, "kre-b", 1)
    assert wait_for(lambda: assigned() == [("kre-a", 0), ("kre-a", 1), ("kre-b", 0)], 30,
                    step=0.05, poll=pump), assigned()
    produce(f.bootstrap, "kre-b", 10, 1)
    produce(f.bootstrap, "other", 10, 1)
    assert wait_for(lambda: seen.count("kre-b") == 10, 30, step=0.05, poll=pump)
    assert "other" not in seen
    adm = admin(f.bootstrap)
    d = adm.describe_consumer_groups(["g-regex"])["g-regex"].result(10)
    assert [len(m.assignment.topic_partitions) for m in d.members] == [3]
    c.close()


def test_kip848_static_member_returns_to_its_partitions(floe_factory):
    """A static consumer-protocol member that closes and comes back under
    the same group.instance.id gets its partitions back; the other member
    is never revoked."""
    f = floe_factory(*GROUP_ARGS)
    topic = "kip848-static"
    create_topic(f.bootstrap, topic, 4)
    revoked = []
    conf = lambda iid: {"bootstrap.servers": f.bootstrap, "group.id": "g848s", "group.protocol": "consumer",
                        "group.instance.id": iid, "enable.auto.commit": False,
                        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
    a, b = Consumer(conf("a")), Consumer(conf("b"))
    a.subscribe([topic], on_revoke=lambda _c, parts: revoked.append(parts))
    b.subscribe([topic])
    members = [a, b]
    pump = lambda: [c.poll(0.02) for c in members]
    parts = lambda c: sorted(tp.partition for tp in c.assignment())
    assert wait_for(lambda: len(parts(a)) == 2 and len(parts(b)) == 2, 30, step=0.05, poll=pump)
    b_parts, a_parts = parts(b), parts(a)
    revoked.clear()
    members.remove(b)
    b.close()
    b = Consumer(conf("b"))
    b.subscribe([topic])
    members.append(b)
    assert wait_for(lambda: parts(b) == b_parts, 30, step=0.05, poll=pump), parts(b)
    for _ in range(20):
        pump()
    assert parts(a) == a_parts and revoked == []
    for c in members:
        c.close()
