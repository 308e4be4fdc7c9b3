"""A broker's id is held by one running process at a time, through a lease
in the metadata store: a second process with the same id is refused while
the first runs, a run that died is replaced at once on the same listener
(after its lease elsewhere), a broker that cannot renew its lease stops
serving until it can."""

import json
import subprocess
import time
import urllib.error
import urllib.request

from confluent_kafka import Producer

from conftest import Floe, floe_refuses_to_start
from helpers import consume_all, create_topic


def health(f):
    try:
        with urllib.request.urlopen(f.http + "/health", timeout=5) as r:
            return r.status, json.loads(r.read())["status"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["status"]


def produce(bootstrap, topic, values, timeout_ms=10_000):
    """Produces `values`; returns the delivery errors."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": timeout_ms, "linger.ms": 1})
    for v in values:
        p.produce(topic, value=v.encode(), on_delivery=lambda err, _m: err and errors.append(err))
    p.flush(timeout_ms / 1000 + 10)
    return errors


def test_a_second_process_on_the_same_data_dir_is_refused(floe_factory, tmp_path):
    f = floe_factory("--broker-lease-ms=1000")
    said = floe_refuses_to_start(f.data_dir, "--broker-lease-ms=1000")
    assert f"broker id 0 is in use by a running broker at {f.bootstrap}" in said, said
    assert health(f) == (200, "ok")


def test_a_second_broker_with_the_same_id_on_one_postgres_is_refused(floe_factory, tmp_path, postgres):
    f = floe_factory(f"--metadata={postgres}", "--broker-id=1", "--broker-lease-ms=1000")
    said = floe_refuses_to_start(tmp_path / "other", f"--metadata={postgres}", "--broker-id=1",
                                 "--broker-lease-ms=1000")
    assert f"broker id 1 is in use by a running broker at {f.bootstrap}" in said, said


def test_a_run_that_died_is_replaced_at_once_on_its_listener_and_after_its_lease_elsewhere(floe_factory, tmp_path):
    f = floe_factory("--broker-lease-ms=30000")
    create_topic(f.bootstrap, "t", 1)
    assert produce(f.bootstrap, "t", ["a"]) == []
    # Same listener: the old run's lease (30 s) is not waited for.
    started = time.time()
    f.restart(kill=True)
    assert time.time() - started < 15
    assert produce(f.bootstrap, "t", ["b"]) == []
    # Another listener: the id is free once the old run's lease lapses.
    f.extra_args = ["--broker-lease-ms=3000"]
    f.restart(kill=True)
    f.kill9()
    other = Floe(f.data_dir, ["--broker-lease-ms=3000"])
    started = time.time()
    other.start(timeout=60)
    try:
        waited = time.time() - started
        assert other.log_contains("waiting for it to lapse"), other.log_text()[-2000:]
        assert 1 < waited < 20, waited
        got = consume_all(other.bootstrap, "t", 1, expected=2)
        assert [m.value() for m in got[0]] == [b"a", b"b"]
    finally:
        other.kill9()


def test_a_broker_that_cannot_renew_its_lease_stops_serving_until_it_can(floe_factory, postgres):
    f = floe_factory(f"--metadata={postgres}", "--broker-lease-ms=1500", "--metadata-statement-timeout-ms=60000")
    create_topic(f.bootstrap, "t", 1)
    assert produce(f.bootstrap, "t", ["before"]) == []
    # Another session locks the broker's row: renewals wait behind it.
    holder = subprocess.Popen(["psql", postgres, "-Xq"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        holder.stdin.write("BEGIN; SELECT * FROM broker_registrations FOR UPDATE;\n")
        holder.stdin.flush()
        deadline = time.time() + 15
        while health(f)[0] != 503 and time.time() < deadline:
            time.sleep(0.2)
        assert health(f) == (503, "lease lapsed")
        assert f.log_contains("lease lapsed")
        errors = produce(f.bootstrap, "t", ["during"], timeout_ms=2000)
        assert len(errors) == 1, "a broker whose lease lapsed acknowledges nothing"
    finally:
        holder.stdin.write("ROLLBACK;\n\\q\n")
        holder.stdin.close()
        holder.wait(10)
    deadline = time.time() + 15
    while health(f)[0] != 200 and time.time() < deadline:
        time.sleep(0.2)
    assert health(f) == (200, "ok")
    assert produce(f.bootstrap, "t", ["after"]) == []
    got = consume_all(f.bootstrap, "t", 1, expected=2)
    assert [m.value() for m in got[0]] == [b"before", b"after"]
