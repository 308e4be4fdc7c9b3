"""Limits that keep one client from stopping the broker for everyone
(issue 20): connection floods on both ports, idle and slow connections,
request bodies, nesting depth of schemas and values, topic names."""

import json
import socket
import struct
import time
import urllib.error
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import consume_all


def flood(host, port, n, source="127.0.0.2"):
    """Opens `n` connections from `source` and answers (open, refused):
    connections the broker closes at once are refused."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect((host, port))
        socks.append(s)
    time.sleep(1.0)
    open_, refused = [], 0
    for s in socks:
        s.setblocking(False)
        try:
            closed = s.recv(1) == b""
        except BlockingIOError:
            closed = False
        except ConnectionResetError:
            closed = True
        if closed:
            refused += 1
            s.close()
        else:
            open_.append(s)
    return open_, refused


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def produce_and_consume(f, topic, n=5):
    p = Producer({"bootstrap.servers": f.bootstrap})
    for i in range(n):
        p.produce(topic, value=f"{topic} {i}".encode())
    assert p.flush(30) == 0
    out = consume_all(f.bootstrap, topic, 1, expected=n)
    assert [m.value() for m in out[0]][-n:] == [f"{topic} {i}".encode() for i in range(n)]


def http(f, method, path, body=None, content_type="application/json", timeout=30):
    req = urllib.request.Request(f.http + path, data=body, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_connection_flood_is_refused_past_the_limits_and_everyone_else_is_served(floe_factory):
    # Idle connections may live 8 s: the flood below opens 600 connections
    # before it looks at them, which on a loaded 2-core CI machine took
    # longer than a shorter idle limit (every held place was closed).
    f = floe_factory("--max-connections", "400", "--max-connections-per-address", "100",
                     "--connections-max-idle-ms", "8000", "--request-arrival-timeout-ms", "2000")
    pid = f.proc.pid
    host, port = f.bootstrap.rsplit(":", 1)
    held, refused = flood(host, int(port), 600)
    assert len(held) == 100 and refused == 500, (len(held), refused)
    # A client from another address is served while the flood holds its places.
    produce_and_consume(f, "during-flood")
    assert f.log_contains("max-connections-per-address")
    # Idle connections are closed after --connections-max-idle-ms.
    assert all(closed_within(s, 12) for s in held), "idle connections are closed"
    for s in held:
        s.close()
    # A request that starts and never ends is cut off.
    slow = socket.create_connection((host, int(port)))
    slow.sendall(struct.pack(">i", 1000) + b"\x00\x12\x00\x00")
    assert closed_within(slow, 6), "a request that does not arrive is cut off"
    slow.close()
    assert f.log_contains("did not arrive whole in time")
    # The places are free again: a second flood gets as many.
    held, refused = flood(host, int(port), 150)
    assert len(held) == 100, len(held)
    for s in held:
        s.close()
    produce_and_consume(f, "after-flood")
    assert f.proc.pid == pid and f.proc.poll() is None


def test_the_http_api_limits_connections_idle_time_and_bodies(floe_factory):
    f = floe_factory("--http-max-connections", "50", "--http-idle-timeout-ms", "3000",
                     "--http-max-body-bytes", "1000000")
    pid = f.proc.pid
    host, port = f.http.removeprefix("http://").rsplit(":", 1)
    held, refused = flood(host, int(port), 120, source="127.0.0.1")
    assert len(held) == 50 and refused == 70, (len(held), refused)
    # Stalled connections hold their places only until the idle time.
    assert all(closed_within(s, 8) for s in held)
    for s in held:
        s.close()
    assert http(f, "GET", "/health")[0] == 200
    body = json.dumps({"schema": "x" * 2_000_000}).encode()
    status, _ = http(f, "POST", "/subjects/big-value/versions", body,
                     content_type="application/vnd.schemaregistry.v1+json")
    assert status == 413
    assert "big-value" not in json.loads(http(f, "GET", "/subjects")[1]), "the refused body changed nothing"
    assert f.proc.pid == pid and f.proc.poll() is None


def nested_proto(levels):
    text = 'syntax = "proto3";\n'
    text += "".join(f"message M{i} {{ int32 x = 1;\n" for i in range(levels))
    return text + "}\n" * levels


def register(f, subject, schema):
    body = json.dumps({"schemaType": "PROTOBUF", "schema": schema}).encode()
    return http(f, "POST", f"/subjects/{subject}/versions", body,
                content_type="application/vnd.schemaregistry.v1+json")


def nested_value(depth, leaf=b"\x12\x01x"):
    """A `Node { Node child = 1; string s = 2; }` value `depth` levels deep."""
    v = leaf
    for _ in range(depth):
        v = b"\x0a" + varint(len(v)) + v
    return v


def varint(n):
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([n & 0x7F | 0x80])
        n >>= 7


def confluent(schema_id, payload):
    return b"\x00" + struct.pack(">i", schema_id) + b"\x00" + payload


def test_schemas_and_values_nested_past_the_limit_are_refused(floe_factory):
    f = floe_factory()
    pid = f.proc.pid
    for levels in (1_000, 100_000):
        status, body = register(f, f"deep{levels}-value", nested_proto(levels))
        assert status == 422, (status, body)
        assert b"nests deeper than 100" in body, body
    # A descriptor prost-reflect panics on (found by the compile fuzzer).
    status, body = register(f, "panics-value", "YgEH")
    assert status == 422, (status, body)
    status, body = register(f, "fine-value", nested_proto(50))
    assert status == 200, body
    # A chain of 2 000 message types, each holding the next.
    chain = 'syntax = "proto3";\n' + "".join(
        f"message C{i} {{ C{i + 1} next = 1; }}\n" for i in range(2000)) + "message C2000 { int32 x = 1; }\n"
    status, body = register(f, "chain-value", chain)
    assert status == 200, body

    status, body = register(f, "nodes-value", 'syntax = "proto3"; message Node { Node child = 1; string s = 2; }')
    assert status == 200, body
    schema_id = json.loads(body)["id"]
    a = AdminClient({"bootstrap.servers": f.bootstrap})
    a.create_topics([NewTopic("nodes", 1, 1, config={"floe.validate.mode": "reject"})])["nodes"].result(30)
    p = Producer({"bootstrap.servers": f.bootstrap, "batch.num.messages": 1})
    results = {}

    def report(depth):
        return lambda err, msg: results.__setitem__(depth, err)

    for depth in (10, 99, 150, 100_000):
        p.produce("nodes", value=confluent(schema_id, nested_value(depth)), on_delivery=report(depth))
        p.flush(30)
    assert results[10] is None and results[99] is None, results
    for depth in (150, 100_000):
        assert results[depth] is not None and results[depth].code() == 87, results  # INVALID_RECORD
    out = consume_all(f.bootstrap, "nodes", 1, expected=2)
    assert [m.value() for m in out[0]] == [confluent(schema_id, nested_value(d)) for d in (10, 99)]

    # Without validation, a typed topic stores what it cannot type as bytes
    # and gives every record back exactly.
    a.create_topics([NewTopic("nodes-raw", 1, 1, config={"floe.validate.mode": "off"})])["nodes-raw"].result(30)
    status, body = register(f, "nodes-raw-value", 'syntax = "proto3"; message Node { Node child = 1; string s = 2; }')
    assert status == 200, body
    values = [confluent(schema_id, nested_value(d)) for d in (3, 150, 20_000)]
    for v in values:
        p.produce("nodes-raw", value=v)
    assert p.flush(30) == 0
    out = consume_all(f.bootstrap, "nodes-raw", 1, expected=3)
    assert [m.value() for m in out[0]] == values
    assert f.proc.pid == pid and f.proc.poll() is None


def create(a, name):
    try:
        a.create_topics([NewTopic(name, 1, 1)])[name].result(30)
        return None
    except Exception as e:  # noqa: BLE001 (the Kafka error is the point)
        return e.args[0]


def test_topic_names_follow_kafka_rules(floe_factory):
    f = floe_factory()
    a = AdminClient({"bootstrap.servers": f.bootstrap})
    longest = "t" * 249
    assert create(a, longest) is None
    produce_and_consume(f, longest)
    assert create(a, "a.b") is None
    err = create(a, "a_b")
    assert err.code() == 17 and "collides with existing topic: a.b" in err.str(), err  # INVALID_TOPIC_EXCEPTION
    for reserved in ("__consumer_offsets", "__transaction_state"):
        err = create(a, reserved)
        assert err.code() == 17, err
    err = create(a, "t" * 250)
    assert err.code() == 17, err
    assert set(a.list_topics(timeout=10).topics) == {longest, "a.b"}
    # The long name's files and table work across a restart.
    f.restart()
    produce_and_consume(f, longest)
    status, body = http(f, "GET", f"/admin/topics/{longest}/check")
    assert status == 200, body


def test_a_fetch_stays_within_fetch_max_bytes(floe_factory):
    """Kafka may exceed a fetch's max_bytes only to return the first batch
    of the first non-empty partition; floe answered 1.8 MB to a fetch of
    1 MB. Four partitions of ~2 MB each in 16 KiB batches, fetched raw
    (Fetch v4) with max_bytes 1 000 000 and 1 MiB per partition, from the
    tail cache and, after a restart, from the Parquet files."""
    import os
    import socket
    import struct
    from confluent_kafka import Producer
    from helpers import create_topic
    floe = floe_factory()
    create_topic(floe.bootstrap, "capped", 4)
    p = Producer({"bootstrap.servers": floe.bootstrap, "batch.size": 16384, "linger.ms": 5})
    for i in range(8000):
        while True:
            try:
                p.produce("capped", os.urandom(1000), partition=i % 4)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    for attempt in range(2):  # from the tail cache, then from the files
        if attempt:
            floe.restart()
        host, port = floe.bootstrap.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        try:
            topic = b"capped"
            parts = b"".join(struct.pack(">iqi", i, 0, 1 << 20) for i in range(4))
            body = struct.pack(">iiiib", -1, 100, 1, 1_000_000, 0) + struct.pack(">i", 1) + \
                struct.pack(">h", len(topic)) + topic + struct.pack(">i", 4) + parts
            client = b"raw"
            payload = struct.pack(">hhih", 1, 4, 9, len(client)) + client + body
            s.sendall(struct.pack(">i", len(payload)) + payload)
            (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
            got = b""
            while len(got) < size:
                got += s.recv(size - len(got))
            # The response's own framing is a few hundred bytes at most.
            assert 500_000 < size <= 1_000_000 + 1_000, (attempt, size)
        finally:
            s.close()
