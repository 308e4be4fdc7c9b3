"""The operator's CLI (`floe topic ...`) against a running broker: tables
for people, JSON for scripts, Kafka's refusals named, and a non-zero exit
when something fails."""

import json
import os
import subprocess
import time

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
    assert table.splitlines()[0].split() == ["PARTITION", "LEADER", "EPOCH", "LOG-START", "HIGH-WATERMARK",
                                             "SIZE", "TABLE-LAG"]
    assert table.splitlines()[2].split()[4] == "5" and "retention.ms=86400000" in table, table
    # Without the HTTP API (the default --http is not this broker's) the
    # table's side is unknown and the rest still shows.
    assert "table: unknown" in table, table

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


def test_groups_are_listed_described_reset_and_deleted(floe):
    """A consumer group seen as an operator sees it: listed, its members
    and lag per partition, offsets reset while it is empty (refused while
    a member is active), deleted; confluent-kafka consumes and commits,
    kafka-python reads where the reset put the group."""
    from confluent_kafka import Consumer
    from kafka import KafkaConsumer

    from helpers import create_topic

    create_topic(floe.bootstrap, "events", 2)
    p = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(30):
        p.produce("events", value=f"v{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "billing", "client.id": "billing-app",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["events"])
    counts = {0: 0, 1: 0}
    deadline = time.time() + 30
    while min(counts.values()) < 10 and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            counts[m.partition()] += 1
    c.commit(asynchronous=False)
    # Each partition has 15 records; the group committed where the
    # consumer got to, at least 10 in each.
    committed = {tp.partition: tp.offset for tp in c.committed(c.assignment(), 10)}

    assert {"group": "billing", "state": "Stable", "protocol_type": "consumer"} in as_json(floe, "group", "list")
    d = as_json(floe, "group", "describe", "billing")
    assert d["state"] == "Stable" and len(d["members"]) == 1 and d["members"][0]["client_id"] == "billing-app", d
    lag = {x["partition"]: x for x in d["partitions"]}
    assert {p: (x["committed_offset"], x["log_end_offset"], x["lag"]) for p, x in lag.items()} == {
        p: (committed[p], 15, 15 - committed[p]) for p in (0, 1)}, d
    assert all(x["client_id"] == "billing-app" for x in d["partitions"]), d
    assert d["total_lag"] == 30 - sum(committed.values())
    table = floe_cli(floe, "group", "describe", "billing").stdout
    assert table.splitlines()[0].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                                             "MEMBER", "CLIENT-ID", "HOST"], table
    assert f"total lag: {d['total_lag']}" in table, table
    assert as_json(floe, "group", "lag", "billing")["total_lag"] == d["total_lag"]

    # Not while a member is active (Kafka's tool refuses too).
    busy = floe_cli(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-earliest", ok=False)
    assert busy.returncode == 1 and "active member" in busy.stderr, busy.stderr
    undeletable = floe_cli(floe, "group", "delete", "billing", ok=False)
    assert undeletable.returncode == 1 and "NonEmptyGroup" in undeletable.stderr, undeletable.stderr
    c.close()

    dry = as_json(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-offset", "3", "--dry-run")
    assert dry["status"] == "dry run" and [x["offset"] for x in dry["partitions"]] == [3, 3], dry
    assert {x["partition"]: x["committed_offset"] for x in as_json(floe, "group", "lag", "billing")["partitions"]} == committed
    r = as_json(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-offset", "3", "--partitions", "1")
    assert r["partitions"] == [{"topic": "events", "partition": 1, "offset": 3}], r
    # Beyond the end is kept at the end, as Kafka's tool does.
    floe_cli(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-offset", "999", "--partitions", "0")
    after = {x["partition"]: x["committed_offset"] for x in as_json(floe, "group", "lag", "billing")["partitions"]}
    assert after == {0: 15, 1: 3}, after
    # Another client of the group starts where the reset put it.
    kc = KafkaConsumer("events", bootstrap_servers=floe.bootstrap, group_id="billing",
                       auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    offsets = sorted((m.partition, m.offset) for m in kc)
    kc.close()
    assert offsets == [(1, o) for o in range(3, 15)], offsets
    floe_cli(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-earliest")
    assert {x["committed_offset"] for x in as_json(floe, "group", "lag", "billing")["partitions"]} == {0}
    bad = floe_cli(floe, "group", "reset-offsets", "billing", "--topic", "events", "--to-latest",
                   "--partitions", "7", ok=False)
    assert bad.returncode == 1 and "no partition 7" in bad.stderr, bad.stderr
    neither = floe_cli(floe, "group", "reset-offsets", "billing", "--topic", "events", ok=False)
    assert neither.returncode == 2, neither.stderr

    assert as_json(floe, "group", "delete", "billing") == [{"group": "billing", "status": "deleted"}]
    assert all(g["group"] != "billing" for g in as_json(floe, "group", "list"))
    gone = floe_cli(floe, "group", "delete", "billing", ok=False)
    assert gone.returncode == 1 and "GroupIdNotFound" in gone.stderr, gone.stderr


def test_consume_prints_records_from_where_it_is_told(floe):
    """`floe consume`: every record from the start (JSON lines with keys,
    values, headers, timestamps), -n, an offset, a time, the end, one
    partition, and follow mode printing records produced after it
    started."""
    import subprocess as sp

    from helpers import create_topic

    create_topic(floe.bootstrap, "log", 2)
    p = Producer({"bootstrap.servers": floe.bootstrap})
    base = int(time.time() * 1000) - 60_000
    for i in range(20):
        p.produce("log", key=f"k{i}".encode(), value=None if i == 19 else f"v{i}".encode(), partition=i % 2,
                  headers=[("n", str(i).encode())], timestamp=base + i * 1000)
    assert p.flush(30) == 0

    def lines(*args):
        out = floe_cli(floe, "consume", "log", *args, "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines()]

    every = lines()
    assert len(every) == 20
    by_key = {r["key"]: r for r in every}
    assert by_key["k4"] == {"topic": "log", "partition": 0, "offset": 2, "timestamp": base + 4000, "key": "k4",
                            "value": "v4", "headers": [{"key": "n", "value": "4"}]}, by_key["k4"]
    assert by_key["k19"]["value"] is None
    assert [r["offset"] for r in every if r["partition"] == 1] == list(range(10))
    assert len(lines("-n", "3")) == 3
    assert [(r["partition"], r["offset"]) for r in lines("-p", "1", "--offset", "7")] == [(1, 7), (1, 8), (1, 9)]
    assert lines("--offset", "end") == []
    assert sorted(r["key"] for r in lines("--timestamp", str(base + 16_000))) == ["k16", "k17", "k18", "k19"]
    table = floe_cli(floe, "consume", "log", "-p", "0", "-n", "1").stdout
    assert table == "0\t0\tk0\tv0\n", table
    missing = floe_cli(floe, "consume", "nothing", ok=False)
    assert missing.returncode == 1 and "UnknownTopicOrPartition" in missing.stderr, missing.stderr

    follow = sp.Popen([floe_binary(), "consume", "log", "-f", "-p", "0", "--offset", "end", "-n", "2",
                       "--format", "json", "--brokers", floe.bootstrap], stdout=sp.PIPE, text=True)
    try:
        time.sleep(1.0)
        p.produce("log", key=b"late", value=b"1", partition=0)
        p.produce("log", key=b"late", value=b"2", partition=0)
        assert p.flush(30) == 0
        out, _ = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert [(json.loads(line)["offset"], json.loads(line)["value"]) for line in out.splitlines()] == [(10, "1"), (11, "2")]


def test_produce_writes_lines_where_kafka_clients_would(floe, tmp_path):
    """`floe produce`: lines from stdin or a file, keys split at a
    delimiter and placed by murmur2 as the Java client and kafka-python
    place them, headers, a chosen partition; read back by confluent-kafka
    and by `floe consume`; a refusal named."""
    from kafka.partitioner.default import murmur2

    from helpers import consume_all, create_topic

    create_topic(floe.bootstrap, "lines", 3)
    lines = "".join(f"user{i}:event {i}\n" for i in range(50)) + "no key here\n"
    done = subprocess.run([floe_binary(), "produce", "lines", "-k", ":", "-H", "source=cli", "--format", "json",
                           "--brokers", floe.bootstrap], input=lines, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert sum(p["records"] for p in summary["partitions"]) == 51, summary
    got = consume_all(floe.bootstrap, "lines", 3)
    records = [m for msgs in got.values() for m in msgs]
    assert len(records) == 51
    for m in records:
        assert m.headers() == [("source", b"cli")]
        if m.key() is not None:
            assert m.partition() == (murmur2(m.key()) & 0x7FFFFFFF) % 3, (m.key(), m.partition())
            assert m.value() == b"event " + m.key()[4:]
    assert sorted(m.value() for m in records if m.key() is None) == [b"no key here"]

    f = tmp_path / "in.txt"
    f.write_text("a\nb\nc\n")
    floe_cli(floe, "produce", "lines", "--file", str(f), "-p", "2")
    tail = [json.loads(line)["value"] for line in floe_cli(floe, "consume", "lines", "-p", "2", "--format", "json").stdout.splitlines()]
    assert tail[-3:] == ["a", "b", "c"], tail
    bad = floe_cli(floe, "produce", "lines", "-p", "9", ok=False)
    assert bad.returncode == 1 and "no partition 9" in bad.stderr, bad.stderr
    create_topic(floe.bootstrap, "compacted", 1, {"cleanup.policy": "compact"})
    refused = subprocess.run([floe_binary(), "produce", "compacted", "--brokers", floe.bootstrap],
                             input="keyless\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "InvalidRecord" in refused.stderr, refused.stderr


def test_describe_shows_sizes_and_how_far_the_table_lags(floe):
    from helpers import create_topic

    create_topic(floe.bootstrap, "sized", 2, {"floe.iceberg.commit.interval.ms": "500"})
    p = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(100):
        p.produce("sized", value=os.urandom(1000), partition=0)
    assert p.flush(30) == 0
    deadline = time.time() + 30
    while True:
        d = as_json(floe, "topic", "describe", "sized", "--http", floe.http)
        lag = [x["table_lag"] for x in d["partitions"]]
        if lag == [0, 0] or time.time() > deadline:
            break
        time.sleep(0.3)
    assert lag == [0, 0] and d["table"]["operation"] == "append", d
    sizes = [x["size_bytes"] for x in d["partitions"]]
    assert sizes[0] > 50_000 and sizes[1] == 0, d
    table = floe_cli(floe, "topic", "describe", "sized", "--http", floe.http).stdout
    assert f"table: snapshot {d['table']['snapshot_id']} (append)" in table, table


def test_shell_completion_scripts_name_the_commands(tmp_path):
    for shell in ("bash", "zsh", "fish"):
        done = subprocess.run([floe_binary(), "completion", shell], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        for word in ("topic", "group", "consume", "produce", "reset-offsets", "brokers"):
            assert word in done.stdout, (shell, word)
    script = tmp_path / "floe.bash"
    script.write_text(subprocess.run([floe_binary(), "completion", "bash"], capture_output=True, text=True).stdout)
    # The script loads in bash and completes `floe gr` to `group`.
    out = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=(floe gr); COMP_CWORD=1; "
                          "_floe floe gr floe; printf '%s\\n' \"${COMPREPLY[@]}\""],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "group" in out.stdout.split(), (out.stdout, out.stderr)
    bad = subprocess.run([floe_binary(), "completion", "tcsh"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2, bad.stderr


ORDER = """syntax = "proto3";
package shop;
import "common/money.proto";
import "google/protobuf/timestamp.proto";
message Order {
  string id = 1;
  common.Money total = 2;
  google.protobuf.Timestamp at = 3;
%s}
"""


def test_schemas_are_registered_with_their_imports_checked_and_deleted(floe, tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "money.proto").write_text(
        'syntax = "proto3";\npackage common;\nmessage Money {\n  int64 units = 1;\n  string currency = 2;\n}\n')
    (tmp_path / "orders.proto").write_text(ORDER % "")
    http = ["--http", floe.http]
    r = as_json(floe, "schema", "register", "orders-value", str(tmp_path / "orders.proto"), *http)
    assert r["version"] == 1 and r["references"] == [
        {"name": "common/money.proto", "subject": "common/money.proto", "version": 1}], r
    listed = {x["subject"]: x["versions"] for x in as_json(floe, "schema", "list", *http)}
    assert listed["orders-value"] == [1] and listed["common/money.proto"] == [1], listed
    got = as_json(floe, "schema", "get", "orders-value", *http)
    assert got["schema"] == ORDER % "" and got["schemaType"] == "PROTOBUF", got
    assert got["references"][0]["subject"] == "common/money.proto", got
    assert "message Order {" in floe_cli(floe, "schema", "get", "orders-value", *http).stdout
    # Registering the same text again is the same version.
    assert as_json(floe, "schema", "register", "orders-value", str(tmp_path / "orders.proto"), *http)["version"] == 1

    (tmp_path / "more.proto").write_text(ORDER % "  string note = 4;\n")
    ok = floe_cli(floe, "schema", "check", "orders-value", str(tmp_path / "more.proto"), "-I", str(tmp_path), *http)
    assert "yes" in ok.stdout, ok.stdout
    (tmp_path / "broken.proto").write_text((ORDER % "").replace("string id = 1;", "int64 id = 1;"))
    bad = floe_cli(floe, "schema", "check", "orders-value", str(tmp_path / "broken.proto"), *http, ok=False)
    assert bad.returncode == 1 and "not compatible" in bad.stderr, bad.stderr
    (tmp_path / "lost.proto").write_text('syntax = "proto3";\nimport "nowhere/x.proto";\n')
    lost = floe_cli(floe, "schema", "register", "lost-value", str(tmp_path / "lost.proto"), *http, ok=False)
    assert lost.returncode == 1 and "nowhere/x.proto" in lost.stderr and "-I" in lost.stderr, lost.stderr

    assert as_json(floe, "schema", "delete", "orders-value", *http)["deleted"] == [1]
    assert as_json(floe, "schema", "delete", "orders-value", "--permanent", *http)["deleted"] == [1]
    assert "orders-value" not in [x["subject"] for x in as_json(floe, "schema", "list", *http)]
    gone = floe_cli(floe, "schema", "get", "orders-value", *http, ok=False)
    assert gone.returncode == 1 and "not found" in gone.stderr.lower(), gone.stderr


def test_users_are_created_listed_and_deleted_and_can_log_in(floe_factory):
    """`floe user` sets SCRAM credentials over the HTTP API; librdkafka logs
    in with them over SASL_PLAINTEXT; a deleted user no longer can."""
    from test_sasl import SASL, librdkafka_login_error, roundtrip_librdkafka, sasl_conf

    floe = floe_factory(*SASL)
    http = ["--http", floe.http]
    env = {**os.environ, "FLOE_USER_PASSWORD": "alice-secret"}
    done = subprocess.run([floe_binary(), "user", "create", "alice", "--mechanism", "SCRAM-SHA-512", *http],
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0 and "password set" in done.stdout, done.stderr
    users = as_json(floe, "user", "list", *http)
    assert users == [{"name": "alice", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 8192}]}], users
    assert len(roundtrip_librdkafka(sasl_conf(floe, "SCRAM-SHA-512", "alice", "alice-secret"), "cli-users")) == 20
    few = floe_cli(floe, "user", "create", "bob", "--password", "x", "--iterations", "10", *http, ok=False)
    assert few.returncode == 1 and "iterations" in few.stderr, few.stderr
    floe_cli(floe, "user", "delete", "alice", *http)
    assert as_json(floe, "user", "list", *http) == []
    assert librdkafka_login_error(sasl_conf(floe, "SCRAM-SHA-512", "alice", "alice-secret")) is not None
    missing = floe_cli(floe, "user", "delete", "alice", *http, ok=False)
    assert missing.returncode == 1 and "no user alice" in missing.stderr, missing.stderr


def test_acls_are_created_listed_and_deleted(floe_factory):
    """`floe acl` against a broker with ACLs on (the CLI's anonymous
    principal a super user); confluent-kafka's admin client sees what it
    made."""
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    from helpers import admin

    floe = floe_factory("--acls", "--super-users", "User:ANONYMOUS")
    made = as_json(floe, "acl", "create", "--principal", "User:alice", "--operation", "read",
                   "--operation", "Describe", "--topic", "orders")
    assert made == {"created": 2}, made
    floe_cli(floe, "acl", "create", "--principal", "User:*", "--operation", "write", "--topic", "tmp-",
             "--prefixed", "--deny")
    acls = as_json(floe, "acl", "list")["acls"]
    assert sorted((a["principal"], a["resource_name"], a["pattern"], a["operation"], a["permission"])
                  for a in acls) == [("User:*", "tmp-", "prefixed", "write", "deny"),
                                     ("User:alice", "orders", "literal", "describe", "allow"),
                                     ("User:alice", "orders", "literal", "read", "allow")], acls
    assert len(as_json(floe, "acl", "list", "--principal", "User:alice")["acls"]) == 2
    table = floe_cli(floe, "acl", "list", "--topic", "orders").stdout
    assert table.splitlines()[0].split() == ["PRINCIPAL", "HOST", "RESOURCE", "NAME", "PATTERN", "OPERATION",
                                             "PERMISSION"] and len(table.splitlines()) == 3, table
    a = admin(floe.bootstrap)
    seen = a.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                            AclOperation.ANY, AclPermissionType.ANY)).result(30)
    assert len(seen) == 3, seen
    deleted = as_json(floe, "acl", "delete", "--principal", "User:alice")["deleted"]
    assert len(deleted) == 2, deleted
    assert [x["principal"] for x in as_json(floe, "acl", "list")["acls"]] == ["User:*"]
    vague = floe_cli(floe, "acl", "delete", ok=False)
    assert vague.returncode == 1 and "say what to delete" in vague.stderr, vague.stderr
    no_resource = floe_cli(floe, "acl", "create", "--principal", "User:bob", "--operation", "read", ok=False)
    assert no_resource.returncode == 1 and "name the resource" in no_resource.stderr, no_resource.stderr
    bad_op = floe_cli(floe, "acl", "create", "--principal", "User:bob", "--operation", "fly", "--topic", "t",
                      ok=False)
    assert bad_op.returncode == 1 and "unknown operation" in bad_op.stderr, bad_op.stderr


def test_a_profile_names_the_cluster_and_flags_win_over_it(floe, tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'# floe CLI profiles\n[local]\nbrokers = "{floe.bootstrap}"\nhttp = "{floe.http}"\n'
                        'format = "json"\n\n[default]\nbrokers = "127.0.0.1:1"\n')
    env = {**os.environ, "FLOE_PROFILES": str(profiles)}
    env.pop("FLOE_BROKERS", None)

    def run(*args):
        return subprocess.run([floe_binary(), *args], capture_output=True, text=True, timeout=60, env=env)

    made = run("topic", "create", "profiled", "--profile", "local")
    assert made.returncode == 0 and json.loads(made.stdout)["status"] == "created", made.stderr
    listed = run("topic", "list", "--profile", "local", "--format", "table")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].split() == ["NAME", "PARTITIONS"], listed
    # Without --profile, [default] applies (a broker that is not there);
    # a flag wins over it.
    assert run("topic", "list").returncode == 1
    assert run("topic", "list", "--brokers", floe.bootstrap).returncode == 0
    missing = run("topic", "list", "--profile", "prod")
    assert missing.returncode == 1 and "no profile [prod]" in missing.stderr, missing.stderr
    profiles.write_text("[local]\ncolour = \"red\"\n")
    bad = run("topic", "list", "--profile", "local")
    assert bad.returncode == 1 and "unknown key" in bad.stderr, bad.stderr
