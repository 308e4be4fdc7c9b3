"""The operator's CLI (`floe topic ...`) against a running broker: tables
for people, JSON for scripts, Kafka's refusals named, and a non-zero exit
when something fails."""

import json
import subprocess

from confluent_kafka import Producer

from conftest import floe_binary


def floe_cli(floe, *args, ok=True):
    done = subprocess.run([floe_binary(), *args, "--brokers", floe.bootstrap], capture_output=True,
                          text=True, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def as_json(floe, *args):
    return json.loads(floe_cli(floe, *args, "--format", "json").stdout)


def test_topics_are_created_described_altered_and_deleted(floe):
    out = floe_cli(floe, "topic", "create", "orders", "-p", "3", "-c", "retention.ms=86400000").stdout
    assert "orders" in out and "created" in out, out
    again = floe_cli(floe, "topic", "create", "orders", ok=False)
    assert again.returncode == 1 and "TopicAlreadyExists (36)" in again.stderr, again.stderr
    assert {"name": "orders", "partitions": 3} in as_json(floe, "topic", "list")

    p = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(5):
        p.produce("orders", value=f"v{i}".encode(), partition=1)
    assert p.flush(30) == 0
    d = as_json(floe, "topic", "describe", "orders")
    assert [x["high_watermark"] for x in d["partitions"]] == [0, 5, 0], d
    assert all(x["leader"] == 0 and x["log_start_offset"] == 0 for x in d["partitions"]), d
    assert d["configs"] == {"retention.ms": "86400000"}, d
    table = floe_cli(floe, "topic", "describe", "orders").stdout
    assert table.splitlines()[0].split() == ["PARTITION", "LEADER", "EPOCH", "LOG-START", "HIGH-WATERMARK"]
    assert table.splitlines()[2].split()[-1] == "5" and "retention.ms=86400000" in table, table

    floe_cli(floe, "topic", "alter-config", "orders", "--set", "cleanup.policy=compact,delete",
             "--delete", "retention.ms")
    assert as_json(floe, "topic", "describe", "orders")["configs"] == {"cleanup.policy": "compact,delete"}
    bad = floe_cli(floe, "topic", "alter-config", "orders", "--set", "cleanup.policy=sometimes", ok=False)
    assert bad.returncode == 1 and "InvalidConfig" in bad.stderr, bad.stderr

    floe_cli(floe, "topic", "add-partitions", "orders", "--total", "5")
    assert len(as_json(floe, "topic", "describe", "orders")["partitions"]) == 5
    fewer = floe_cli(floe, "topic", "add-partitions", "orders", "--total", "2", ok=False)
    assert fewer.returncode == 1 and "InvalidPartitions" in fewer.stderr, fewer.stderr

    assert as_json(floe, "topic", "delete", "orders") == [{"topic": "orders", "status": "deleted"}]
    assert all(t["name"] != "orders" for t in as_json(floe, "topic", "list"))
    missing = floe_cli(floe, "topic", "delete", "orders", ok=False)
    assert missing.returncode == 1 and "UnknownTopicOrPartition" in missing.stderr, missing.stderr
    unknown = floe_cli(floe, "topic", "describe", "nothing", ok=False)
    assert unknown.returncode == 1 and "UnknownTopicOrPartition" in unknown.stderr, unknown.stderr


def test_a_cluster_that_does_not_answer_is_named(tmp_path):
    done = subprocess.run([floe_binary(), "topic", "list", "--brokers", "127.0.0.1:1"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "connecting to 127.0.0.1:1" in done.stderr, done.stderr
    usage = subprocess.run([floe_binary(), "topic", "create"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "NAME" in usage.stderr, usage.stderr
