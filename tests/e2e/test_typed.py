"""Schema topics store keys and values as typed columns: Kafka consumers
still get the producers' bytes exactly (canonical or not, read back from
Parquet after a restart), and PyIceberg, pyarrow and DuckDB see the
protobuf fields as columns, across schema versions."""

import base64
import datetime as dt
import json
import struct
import time
import urllib.parse
import urllib.request
from decimal import Decimal

import duckdb
import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2, wrappers_pb2
from kafka import KafkaProducer
from pyiceberg.catalog.rest import RestCatalog

from helpers import consume_all, create_topic
from test_tables import local_path, wait_covered

FAST = {"floe.iceberg.commit.interval.ms": "300"}

ORDER_V1 = """syntax = "proto3";
package typed;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Status { STATUS_UNSPECIFIED = 0; PLACED = 1; SHIPPED = 2; }
message Line { string sku = 1; uint64 qty = 2; }
message Order {
  string id = 1;
  Status status = 2;
  repeated Line lines = 3;
  map<string, int32> counts = 4;
  google.protobuf.Timestamp placed_at = 5;
  google.protobuf.Int32Value discount = 6;
  oneof contact { string phone = 7; string email = 8; }
  double total = 9;
  repeated int64 codes = 10;
}
"""

# v2: `total` renamed to `amount`, `codes` removed, `coupon` added.
ORDER_V2 = (ORDER_V1
            .replace("  double total = 9;", "  double amount = 9;\n  string coupon = 11;")
            .replace("  repeated int64 codes = 10;\n", "  reserved 10;\n"))

KEY = """syntax = "proto3";
package typed;
message OrderKey { string id = 1; int32 shard = 2; }
"""


def sr_http(floe, path):
    with urllib.request.urlopen(floe.http + path, timeout=10) as r:
        return json.loads(r.read())


def classes(floe, subject, version, file_name, names):
    """Message classes built from the descriptors the registry serves."""
    pool = descriptor_pool.DescriptorPool()
    for m in (timestamp_pb2, wrappers_pb2):
        pool.AddSerializedFile(m.DESCRIPTOR.serialized_pb)
    quoted = urllib.parse.quote(subject, safe="")
    s = sr_http(floe, f"/subjects/{quoted}/versions/{version}?format=serialized")
    fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(s["schema"]))
    fd.name = file_name
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n)) for n in names}


def order(M, i, v2=False):
    o = M["typed.Order"](id=f"o-{i}", status=1 + i % 2)
    line = o.lines.add()
    line.sku, line.qty = f"sku-{i % 7}", 2**63 + i  # beyond int64: a decimal(20, 0)
    o.counts[f"c{i % 3}"] = i
    o.placed_at.FromMilliseconds(1_700_000_000_000 + i)
    if i % 2:
        o.discount.value = i
        o.phone = f"+47{i}"
    else:
        o.email = f"u{i}@example.com"
    if v2:
        o.amount = i * 1.5
        o.coupon = f"C{i}"
    else:
        o.total = i * 1.5
        o.codes.extend([i, -i])
    return o


def serializers(floe, M, K):
    sr = SchemaRegistryClient({"url": floe.http})
    conf = {"auto.register.schemas": False, "use.latest.version": True}
    return ProtobufSerializer(M["typed.Order"], sr, conf), ProtobufSerializer(K["typed.OrderKey"], sr, conf)


def send_canonical(floe, topic, M, K, indexes, v2=False):
    """Confluent's serializer: the canonical encoding. Returns {i: (key, value)}."""
    value_ser, key_ser = serializers(floe, M, K)
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 5})
    sent = {}
    for i in indexes:
        key = key_ser(K["typed.OrderKey"](id=f"o-{i}", shard=i % 4),
                      SerializationContext(topic, MessageField.KEY))
        value = value_ser(order(M, i, v2), SerializationContext(topic, MessageField.VALUE))
        sent[i] = (key, value)
        p.produce(topic, key=key, value=value, partition=i % 2)
    assert p.flush(30) == 0
    return sent


def noncanonical(M, schema_id, i):
    """Valid encodings of an Order that protobuf libraries would not write.
    Order is the file's second message: its indexes are [1] (count 1,
    index 1, both zigzag varints)."""
    prefix = b"\x00" + struct.pack(">i", schema_id) + b"\x02\x02"
    o = order(M, i)
    whole = o.SerializeToString()
    only_id = M["typed.Order"](id=o.id).SerializeToString()
    rest = M["typed.Order"](total=o.total).SerializeToString()
    return {
        # Fields out of number order.
        "reordered": prefix + rest + only_id,
        # An unknown field (number 100, varint 1).
        "unknown field": prefix + whole + b"\xa0\x06\x01",
        # An implicit-presence zero written out (status = 0).
        "explicit zero": prefix + only_id + b"\x10\x00",
        # A repeated scalar not packed (codes 5 and 6 as two fields).
        "unpacked": prefix + only_id + b"\x50\x05\x50\x06",
        # The message indexes with a non-minimal varint for the count.
        "long prefix": b"\x00" + struct.pack(">i", schema_id) + b"\x82\x00\x02" + whole,
        # The first message of the file (Line), not the topic's.
        "other message": b"\x00" + struct.pack(">i", schema_id) + b"\x00" + b"\x0a\x01x",
        # Not protobuf at all (the topic does not validate).
        "garbage": prefix + b"\xff\xff\xff",
    }


def table_of(floe, topic):
    return RestCatalog("floe", uri=floe.http + "/iceberg").load_table(f"floe.{topic}")


def consumed(floe, topic, expected):
    got = consume_all(floe.bootstrap, topic, 2, expected=expected)
    return {(p, m.offset()): (m.key(), m.value()) for p, ms in got.items() for m in ms}


def test_typed_columns_are_byte_exact_and_queryable(floe):
    topic = "typed_orders"
    create_topic(floe.bootstrap, topic, partitions=2, config=FAST)
    sr = SchemaRegistryClient({"url": floe.http})
    value_id = sr.register_schema(f"{topic}-value", Schema(ORDER_V1, "PROTOBUF"))
    key_id = sr.register_schema(f"{topic}-key", Schema(KEY, "PROTOBUF"))
    M = classes(floe, f"{topic}-value", 1, "typed/order.proto", ["typed.Order"])
    K = classes(floe, f"{topic}-key", 1, "typed/key.proto", ["typed.OrderKey"])

    canonical = send_canonical(floe, topic, M, K, range(200))
    odd = noncanonical(M, value_id, 7)
    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, linger_ms=5)
    for n, value in enumerate(odd.values()):
        kp.send(topic, key=b"plain key", value=value, partition=n % 2)
    kp.send(topic, key=b"tombstone", value=None, partition=0)
    kp.flush(30)
    kp.close()
    expected = [kv for kv in canonical.values()] + [(b"plain key", v) for v in odd.values()] + [(b"tombstone", None)]

    # After a restart nothing is in the tail cache: every byte comes from
    # the typed columns (or the side column) of the Parquet files.
    floe.restart()
    got = consumed(floe, topic, len(expected))
    assert sorted(got.values(), key=repr) == sorted(expected, key=repr)

    snapshot = None
    for p in range(2):
        last = max(o for (q, o) in got if q == p)
        snapshot = wait_covered(floe, topic, p, last)
    rows = table_of(floe, topic).scan().to_arrow()
    assert rows.num_rows == len(expected)
    names = rows.column_names
    for column in ("key", "key_raw", "key_schema_id", "value", "value_raw", "schema_id"):
        assert column in names, names
    by_id = {}
    d = rows.to_pylist()
    for r in d:
        if r["value"] is not None and r["value"]["id"]:
            by_id.setdefault(r["value"]["id"], []).append(r)
    r = by_id["o-3"][0]
    v = r["value"]
    assert v["status"] == "SHIPPED"
    assert v["lines"] == [{"sku": "sku-3", "qty": Decimal(2**63 + 3)}]
    assert dict(v["counts"]) == {"c0": 3}
    assert v["placed_at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 3000, tzinfo=dt.timezone.utc)
    assert (v["discount"], v["phone"], v["email"]) == (3, "+473", None)
    assert v["total"] == 4.5 and v["codes"] == [3, -3]
    assert (r["schema_id"], r["value_raw"]) == (value_id, None)
    assert r["key"] == {"id": "o-3", "shard": 3} and r["key_schema_id"] == key_id and r["key_raw"] is None
    assert by_id["o-4"][0]["value"]["discount"] is None, "an unset wrapper is null"

    # The side column holds exactly the records that do not re-encode.
    raw_rows = [r for r in d if r["value_raw"] is not None]
    assert sorted(r["value_raw"] for r in raw_rows) == sorted(odd.values())
    print(f"\nside column used by {len(raw_rows)} of {len(d)} values "
          f"({len(odd)} non-canonical produced)")
    reordered = next(r for r in raw_rows if r["value_raw"] == odd["reordered"])
    assert (reordered["value"]["id"], reordered["value"]["total"]) == ("o-7", 10.5), \
        "a non-canonical value is still typed"
    for name in ("garbage", "other message"):
        assert next(r for r in raw_rows if r["value_raw"] == odd[name])["value"] is None, name
    for name in ("unknown field", "explicit zero", "unpacked", "long prefix"):
        assert next(r for r in raw_rows if r["value_raw"] == odd[name])["value"]["id"] == "o-7", name
    # Keys without the prefix stay bytes.
    plain = [r for r in d if r["key_raw"] == b"plain key"]
    assert len(plain) == len(odd) and all(r["key"] is None for r in plain)
    tombstone = next(r for r in d if r["key_raw"] == b"tombstone")
    assert (tombstone["value"], tombstone["value_raw"], tombstone["schema_id"]) == (None, None, None)

    # pyarrow and DuckDB read the data files directly, with the same values.
    files = [local_path(t.file.file_path) for t in table_of(floe, topic).scan().plan_files()]
    direct = sorted(i for f in files for i in pq.read_table(f).column("value").combine_chunks()
                    .field("id").to_pylist() if i)
    assert direct == sorted(i for i in (x["value"]["id"] for x in d if x["value"]) if i)
    con = duckdb.connect()
    n, total = con.execute(
        "SELECT count(*), sum(value.total) FROM read_parquet($1) WHERE value.status = 'SHIPPED'",
        [files]).fetchone()
    shipped = [x for x in d if x["value"] and x["value"]["status"] == "SHIPPED"]
    assert (n, total) == (len(shipped), sum(x["value"]["total"] for x in shipped))
    assert snapshot is not None


def test_schema_evolution_keeps_ids_and_bytes(floe):
    topic = "typed_evolving"
    create_topic(floe.bootstrap, topic, partitions=2, config=FAST)
    sr = SchemaRegistryClient({"url": floe.http})
    sr.register_schema(f"{topic}-key", Schema(KEY, "PROTOBUF"))
    K = classes(floe, f"{topic}-key", 1, "typed/key.proto", ["typed.OrderKey"])
    v1_id = sr.register_schema(f"{topic}-value", Schema(ORDER_V1, "PROTOBUF"))
    M1 = classes(floe, f"{topic}-value", 1, "typed/order.proto", ["typed.Order"])
    sent = send_canonical(floe, topic, M1, K, range(0, 40))
    wait_covered(floe, topic, 0, 19)
    wait_covered(floe, topic, 1, 19)
    t1 = table_of(floe, topic)
    total_id = t1.schema().find_field("value.total").field_id

    v2_id = sr.register_schema(f"{topic}-value", Schema(ORDER_V2, "PROTOBUF"))
    assert v2_id != v1_id
    M2 = classes(floe, f"{topic}-value", 2, "typed/order.proto", ["typed.Order"])
    sent.update(send_canonical(floe, topic, M2, K, range(40, 80), v2=True))
    # Let these reach their own files first, so that compaction below has
    # files of one layout to merge.
    wait_covered(floe, topic, 0, 39)
    wait_covered(floe, topic, 1, 39)
    # A producer still on v1 after v2 exists.
    old = send_canonical(floe, topic, M1, K, range(80, 90))
    for i, (k, v) in old.items():
        # use.latest.version stamped v2's id on v1 bytes: v1 payloads under v2.
        assert v[1:5] == struct.pack(">i", v2_id)
    sent.update(old)

    floe.restart()
    got = consumed(floe, topic, len(sent))
    assert sorted(got.values()) == sorted(sent.values())
    for p in range(2):
        wait_covered(floe, topic, p, max(o for (q, o) in got if q == p))

    table = table_of(floe, topic)
    schema = table.schema()
    assert schema.find_field("value.amount").field_id == total_id, "a rename keeps the field id"
    assert schema.find_field("value.coupon")
    assert schema.find_field("value.codes"), "a removed field's values stay queryable"
    rows = table.scan().to_arrow().to_pylist()
    assert len(rows) == 90
    by_i = {int(r["value"]["id"][2:]): r for r in rows}
    for i in range(90):
        r = by_i[i]
        assert r["value"]["amount"] == i * 1.5, i
        # v1 bytes stamped with v2's id carry `codes`, unknown to v2: only
        # they need the side column.
        want_raw = sent[i][1] if i >= 80 else None
        assert r["value_raw"] == want_raw, f"record {i}"
    assert {by_i[i]["schema_id"] for i in range(40)} == {v1_id}
    assert {by_i[i]["schema_id"] for i in range(40, 90)} == {v2_id}
    assert [by_i[i]["value"]["coupon"] for i in (3, 50)] == [None, "C50"]
    assert by_i[3]["value"]["codes"] == [3, -3] and by_i[50]["value"]["codes"] is None
    # v1 bytes written after v2: decoded with v2, their codes are unknown
    # fields there; the columns keep what v2 knows.
    assert by_i[85]["value"]["coupon"] in ("", None)

    # Compaction merges files of one layout only, and changes nothing.
    files_before = len(list(table.scan().plan_files()))
    req = urllib.request.Request(f"{floe.http}/admin/topics/{topic}/compact", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        stats = json.loads(r.read())
    assert stats["files_in"] > stats["files_out"] >= 1, stats
    floe.restart()
    assert consumed(floe, topic, len(sent)) == got
    deadline = time.time() + 30
    while len(list(table_of(floe, topic).scan().plan_files())) >= files_before:
        assert time.time() < deadline, "the compaction never reached the table"
        time.sleep(0.2)
    after = table_of(floe, topic).scan().to_arrow().to_pylist()
    key = lambda r: (r["partition"], r["offset"])
    assert sorted(after, key=key) == sorted(rows, key=key)
