"""Schema registry, validation on produce and redaction by purpose, driven
by confluent-kafka's SchemaRegistryClient, ProtobufSerializer and
ProtobufDeserializer against floe's REST API, unchanged."""

import base64
import json
import random
import socket
import struct
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from kafka.record.default_records import DefaultRecordBatchBuilder

from helpers import create_topic, recent_ms

MONEY = """syntax = "proto3";
package common;
message Money { string currency = 1; int64 cents = 2; }
"""

ORDER = """syntax = "proto3";
package shop;
import "common/money.proto";
import "buf/validate/validate.proto";
import "floe/policy/v1/policy.proto";

enum Status { STATUS_UNSPECIFIED = 0; PLACED = 1; SHIPPED = 2; }

message Address {
  string city = 1;
  string street = 2 [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
}

message Order {
  string id = 1 [(buf.validate.field).string.uuid = true];
  string email = 2 [(buf.validate.field).string.email = true,
                    (floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
  int32 quantity = 3 [(buf.validate.field).int32 = {gt: 0, lte: 1000}];
  Status status = 4 [(buf.validate.field).enum.defined_only = true];
  repeated string tags = 5 [(buf.validate.field).repeated = {max_items: 3}];
  common.Money total = 6 [(buf.validate.field).required = true,
                          (floe.policy.v1.field) = {classification: "FINANCIAL", purposes: ["billing"]}];
  Address ship_to = 7;
  string note = 8 [debug_redact = true];
  oneof contact {
    option (buf.validate.oneof).required = true;
    string phone = 9;
    string handle = 10;
  }
  option (buf.validate.message).cel = {
    id: "shipped_needs_address",
    message: "a shipped order needs ship_to",
    expression: "this.status != 2 || has(this.ship_to)"
  };
}
"""

ARGS = ("--group-initial-rebalance-delay-ms", "0")


def http(floe, method, path, body=None, auth=None):
    """(status, JSON body) of one request; `auth` is (user, password) for
    HTTP basic authentication."""
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(floe.http + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def registry(floe):
    return SchemaRegistryClient({"url": floe.http})


def setup_order_schema(floe, topic):
    """Registers Money and Order (with references) and returns the Order
    class, built from the descriptors the registry serves."""
    sr = registry(floe)
    sr.register_schema("common/money.proto", Schema(MONEY, "PROTOBUF"))
    refs = [SchemaReference("common/money.proto", "common/money.proto", 1),
            SchemaReference("buf/validate/validate.proto", "buf/validate/validate.proto", 1),
            SchemaReference("floe/policy/v1/policy.proto", "floe/policy/v1/policy.proto", 1)]
    schema_id = sr.register_schema(f"{topic}-value", Schema(ORDER, "PROTOBUF", refs))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    from google.protobuf import duration_pb2, timestamp_pb2, field_mask_pb2
    for m in (duration_pb2, timestamp_pb2, field_mask_pb2):
        pool.AddSerializedFile(m.DESCRIPTOR.serialized_pb)

    def add(name, subject):
        s = http(floe, "GET", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/1?format=serialized")[1]
        fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(s["schema"]))
        fd.name = name
        pool.Add(fd)

    for name in ("buf/validate/validate.proto", "floe/policy/v1/policy.proto", "common/money.proto"):
        add(name, name)
    add("shop/order.proto", f"{topic}-value")
    msgs = {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
            for n in ("shop.Order", "shop.Address", "common.Money")}
    return schema_id, msgs


def good_order(M, **over):
    o = M["shop.Order"](id="5f0c3a9e-2b7d-4c1e-9a34-0d6f1c2b8e77", email="ann@example.com", quantity=2,
                        status=1, tags=["a"], phone="+4712345678")
    o.total.CopyFrom(M["common.Money"](currency="EUR", cents=1250))
    o.ship_to.CopyFrom(M["shop.Address"](city="Oslo", street="Main 1"))
    o.note = "fragile"
    for k, v in over.items():
        setattr(o, k, v)
    return o


def test_registry_api_references_evolution_and_errors(floe):
    sr = registry(floe)
    assert "floe/policy/v1/policy.proto" in sr.get_subjects(), "floe ships its policy options"
    schema_id, _ = setup_order_schema(floe, "orders")
    assert sr.get_schema(schema_id).schema_type == "PROTOBUF"
    latest = sr.get_latest_version("orders-value")
    assert (latest.version, latest.schema_id) == (1, schema_id)
    assert [r.name for r in latest.schema.references][0] == "common/money.proto"
    assert sr.lookup_schema("orders-value", latest.schema).version == 1
    # Registering the same schema again answers the same id, no new version.
    assert sr.register_schema("orders-value", latest.schema) == schema_id
    assert sr.get_versions("orders-value") == [1]
    assert ("orders-value", 1) in [(v.subject, v.version) for v in sr.get_schema_versions(schema_id)]

    # BACKWARD is the default; adding a field is compatible, changing a type is not.
    evolved = ORDER.replace("  string note = 8", "  string coupon = 11;\n  string note = 8")
    assert sr.test_compatibility("orders-value", Schema(evolved, "PROTOBUF", latest.schema.references))
    v2 = sr.register_schema("orders-value", Schema(evolved, "PROTOBUF", latest.schema.references))
    assert v2 != schema_id and sr.get_versions("orders-value") == [1, 2]
    broken = ORDER.replace("int32 quantity = 3", "string quantity = 3").replace(
        "[(buf.validate.field).int32 = {gt: 0, lte: 1000}]", "")
    assert not sr.test_compatibility("orders-value", Schema(broken, "PROTOBUF", latest.schema.references))
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema("orders-value", Schema(broken, "PROTOBUF", latest.schema.references))
    assert e.value.http_status_code == 409 and e.value.error_code == 409
    assert "quantity" in e.value.error_message
    # NONE lets it through.
    sr.set_compatibility("orders-value", "NONE")
    assert sr.get_compatibility("orders-value") == "NONE"
    sr.register_schema("orders-value", Schema(broken, "PROTOBUF", latest.schema.references))
    assert sr.get_versions("orders-value") == [1, 2, 3]

    # A schema that does not compile is refused with the compiler's message.
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema("bad-value", Schema('syntax = "proto3"; message A { Nope n = 1; }', "PROTOBUF"))
    assert e.value.error_code == 42201 and "Nope" in e.value.error_message
    # Unknown things get Confluent's codes.
    with pytest.raises(SchemaRegistryError) as e:
        sr.get_latest_version("nothing-here")
    assert e.value.error_code == 40401
    with pytest.raises(SchemaRegistryError) as e:
        sr.get_schema(99999)
    assert e.value.error_code == 40403
    # A referenced version cannot be deleted; soft then permanent delete otherwise.
    with pytest.raises(SchemaRegistryError) as e:
        sr.delete_subject("common/money.proto")
    assert e.value.error_code == 42206
    assert sr.delete_version("orders-value", 3) == 3
    assert sr.get_versions("orders-value") == [1, 2]
    with pytest.raises(SchemaRegistryError) as e:
        sr.delete_subject("orders-value", permanent=True)
    assert e.value.error_code == 40405
    status, body = http(floe, "GET", "/subjects/orders-value/versions?deleted=true")
    assert (status, body) == (200, [1, 2, 3])
    # The content type is the registry's.
    with urllib.request.urlopen(floe.http + "/subjects") as r:
        assert r.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"


def test_registry_state_survives_a_restart(floe):
    sr = registry(floe)
    schema_id, _ = setup_order_schema(floe, "durable")
    sr.set_compatibility(level="FULL")
    floe.restart(kill=True)
    sr = registry(floe)
    assert sr.get_latest_version("durable-value").schema_id == schema_id
    assert sr.get_compatibility() == "FULL"


def produce_v8(topic, records, corr):
    body = struct.pack(">hhi", -1, -1, 10_000)
    name = topic.encode()
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iii", 1, 0, len(records)) + records
    payload = struct.pack(">hhih", 0, 8, corr, 3) + b"raw" + body
    return struct.pack(">i", len(payload)) + payload


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def produce_raw(floe, topic, values, timeout=10):
    """One Produce v8 request with one batch; returns (error code, record
    errors [(index, message)], error message)."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    ts = recent_ms()
    for i, v in enumerate(values):
        b.append(i, timestamp=ts + i, key=None, value=v, headers=[])
    host, port = floe.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(produce_v8(topic, bytes(b.build()), 5))
        (size,) = struct.unpack(">i", read_exact(s, 4))
        r = read_exact(s, size)
    pos = 4 + 4  # correlation id, topic count
    (nlen,) = struct.unpack(">h", r[pos:pos + 2])
    pos += 2 + nlen + 4  # name, partition count
    _, err, _, _, _ = struct.unpack(">ihqqq", r[pos:pos + 30])
    pos += 30
    (n,) = struct.unpack(">i", r[pos:pos + 4])
    pos += 4
    errors = []
    for _ in range(n):
        idx, mlen = struct.unpack(">ih", r[pos:pos + 6])
        pos += 6
        errors.append((idx, r[pos:pos + mlen].decode() if mlen >= 0 else None))
        pos += max(mlen, 0)
    (mlen,) = struct.unpack(">h", r[pos:pos + 2])
    message = r[pos + 2:pos + 2 + mlen].decode() if mlen >= 0 else None
    return err, errors, message


INVALID_RECORD = 87


def serializer(floe, M):
    return ProtobufSerializer(M["shop.Order"], registry(floe),
                              {"auto.register.schemas": False, "use.latest.version": True})


def test_reject_mode_refuses_each_rule_family_and_keeps_nothing(floe):
    topic = "checked"
    create_topic(floe.bootstrap, topic, 1, {"floe.validate.mode": "reject"})
    _, M = setup_order_schema(floe, topic)
    ser = serializer(floe, M)
    ctx = SerializationContext(topic, MessageField.VALUE)
    good = ser(good_order(M), ctx)
    assert produce_raw(floe, topic, [good]) == (0, [], None)

    def without(field):
        o = good_order(M)
        o.ClearField(field)
        return o

    def with_(**kw):
        return good_order(M, **kw)

    shipped_nowhere = with_(status=2)
    shipped_nowhere.ClearField("ship_to")
    too_many = good_order(M)
    too_many.tags.extend(["b", "c", "d"])
    cases = [
        (with_(email="not-an-email"), "email", "string.email"),
        (with_(id="123"), "id", "string.uuid"),
        (with_(quantity=0), "quantity", "int32.gt"),
        (with_(status=7), "status", "enum.defined_only"),
        (too_many, "tags", "repeated.max_items"),
        (without("total"), "total", "required"),
        (without("phone"), "contact", "required"),
        (shipped_nowhere, "shop.Order", "shipped_needs_address"),
    ]
    for order, field, rule in cases:
        err, errors, message = produce_raw(floe, topic, [good, ser(order, ctx), good])
        assert err == INVALID_RECORD, (field, err)
        assert [i for i, _ in errors] == [1], errors
        assert f"`{field}`" in errors[0][1] and rule in errors[0][1], errors[0][1]
        assert message and field in message
    # Not even a decodable value, a wrong schema id, no prefix at all.
    # Order is the second message of its file: indexes [1], a 7-byte prefix.
    assert good[5:7] == b"\x02\x02"
    for bad, words in [(good[:7] + b"\xff\xff\xff", "does not decode"),
                       (b"\0\0\0\x30\x39" + good[5:], "not a version of subject"),
                       (b"plain text", "magic byte")]:
        err, errors, _ = produce_raw(floe, topic, [bad])
        assert err == INVALID_RECORD and words in errors[0][1], errors
    # Nothing of any rejected batch was stored: only the one good record.
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "chk", "auto.offset.reset": "earliest"})
    lo, hi = c.get_watermark_offsets(__import__("confluent_kafka").TopicPartition(topic, 0), timeout=10)
    c.close()
    assert (lo, hi) == (0, 1)


def test_validate_mode_is_a_topic_config(floe):
    from confluent_kafka.admin import ConfigResource, ConfigEntry, AlterConfigOpType
    from helpers import admin
    topic = "togglable"
    create_topic(floe.bootstrap, topic, 1)
    _, M = setup_order_schema(floe, topic)
    junk = b"\0\0\0\0\x01\0\xff"
    assert produce_raw(floe, topic, [junk])[0] == 0, "off by default"
    a = admin(floe.bootstrap)
    res = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("floe.validate.mode", "reject", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result(10)
    assert produce_raw(floe, topic, [junk])[0] == INVALID_RECORD
    bad = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("floe.validate.mode", "maybe", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception):
        for f in a.incremental_alter_configs([bad]).values():
            f.result(10)
    # The same setting over REST: removed (back to off), set, refused.
    path = f"/admin/topics/{topic}/configs"
    assert http(floe, "PATCH", path, {"floe.validate.mode": None}) == (200, {"name": topic, "configs": {}})
    assert produce_raw(floe, topic, [junk])[0] == 0
    status, body = http(floe, "PATCH", path, {"floe.validate.mode": "reject"})
    assert status == 200 and body["configs"] == {"floe.validate.mode": "reject"}
    assert produce_raw(floe, topic, [junk])[0] == INVALID_RECORD
    status, body = http(floe, "PATCH", path, {"floe.validate.mode": "maybe"})
    assert status == 422 and "off or reject" in body["error"], body
    assert http(floe, "PATCH", "/admin/topics/nope/configs", {})[0] == 404


def test_coerce_wraps_values_sent_without_the_prefix(floe):
    """floe.validate.coerce: plain protobuf bytes (what a producer without
    the Confluent serializer sends) are stored with the prefix of the
    subject's latest schema, then validated like any other value."""
    from helpers import consume_all
    topic = "coerced"
    create_topic(floe.bootstrap, topic, 1, {"floe.validate.mode": "reject", "floe.validate.coerce": "true",
                                            "floe.validate.coerce.message": "shop.Order"})
    _, M = setup_order_schema(floe, topic)
    ctx = SerializationContext(topic, MessageField.VALUE)
    framed = serializer(floe, M)(good_order(M), ctx)
    plain = good_order(M).SerializeToString()
    assert produce_raw(floe, topic, [plain, framed]) == (0, [], None)
    bad = good_order(M, email="nope").SerializeToString()
    err, errors, _ = produce_raw(floe, topic, [plain, bad])
    assert err == INVALID_RECORD and [i for i, _ in errors] == [1], errors
    assert "`email`" in errors[0][1] and "string.email" in errors[0][1], errors
    # An idempotent, compressing producer: the rewritten batches keep their
    # producer fields and sequences, so every send is acknowledged once.
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True,
                  "compression.type": "zstd", "linger.ms": 20})
    for i in range(200):
        p.produce(topic, good_order(M, quantity=1 + i).SerializeToString(), key=str(i))
    assert p.flush(30) == 0
    got = consume_all(floe.bootstrap, topic, 1, expected=202)[0]
    assert len(got) == 202
    de = ProtobufDeserializer(M["shop.Order"], {"use.deprecated.format": False})
    for m in got:
        assert m.value()[:7] == framed[:7], "the Order prefix of the latest schema"
    # (Read with no purpose, so the restricted fields are cut.)
    orders = [de(m.value(), ctx) for m in got]
    assert [o.quantity for o in orders[2:]] == list(range(1, 201))
    assert all(o.id == good_order(M).id and o.email == "" for o in orders)

    # Coercion without a schema to coerce with is refused, saying why.
    create_topic(floe.bootstrap, "coerce-nothing", 1, {"floe.validate.coerce": "true"})
    err, errors, _ = produce_raw(floe, "coerce-nothing", [plain])
    assert err == INVALID_RECORD and "cannot be coerced" in errors[0][1], errors


def consume_values(floe, topic, n, client_id, group, conf=None):
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": group, "client.id": client_id,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **(conf or {})})
    c.subscribe([topic])
    out, errors = [], []
    import time
    deadline = time.time() + 30
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error())
            if errors[-1].code() == 29 or len(errors) > 3:
                break
            continue
        out.append(m.value())
    c.close()
    return out, errors


def test_each_purpose_sees_exactly_its_fields(floe):
    topic = "orders-by-purpose"
    create_topic(floe.bootstrap, topic, 1)
    _, M = setup_order_schema(floe, topic)
    status, _ = http(floe, "PUT", "/floe/grants/anonymous", {"purposes": ["support", "billing"]})
    assert status == 200
    ser = serializer(floe, M)
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": floe.bootstrap})
    original = good_order(M)
    good = ser(original, ctx)
    p.produce(topic, good)
    # A value with the topic's prefix that does not decode cannot be
    # inspected: it is withheld (null), never passed on as is.
    p.produce(topic, good[:7] + b"\xff\xff\xff" + b"a@leak.example")
    assert p.flush(10) == 0
    de = ProtobufDeserializer(M["shop.Order"], {"use.deprecated.format": False})

    seen = {}
    for purpose in ("support", "billing", None):
        cid = f"app;purpose={purpose}" if purpose else "app"
        values, errors = consume_values(floe, topic, 2, cid, f"g-{purpose}")
        assert len(values) == 2, errors
        assert values[0][:1] == b"\0", "the wire prefix is kept"
        assert values[1] is None, values[1]
        seen[purpose] = de(values[0], ctx)
    s, b, n = seen["support"], seen["billing"], seen[None]
    for o in (s, b, n):
        assert o.id == original.id and o.quantity == 2 and o.ship_to.city == "Oslo" and o.phone == original.phone
        assert o.note == "", "debug_redact hides from everyone"
    assert s.email == original.email and s.ship_to.street == "Main 1" and not s.HasField("total")
    assert b.total.cents == 1250 and b.email == "" and b.ship_to.street == ""
    assert n.email == "" and not n.HasField("total") and n.ship_to.street == ""

    # A purpose the principal is not granted is refused, not served more.
    values, errors = consume_values(floe, topic, 1, "app;purpose=marketing", "g-mkt")
    assert values == [] and errors and errors[0].code() == 29, errors

    status, body = http(floe, "GET", f"/floe/topics/{topic}/policies")
    assert status == 200
    fields = {f["field"]: f for f in body["messages"]["shop.Order"]}
    assert fields["email"] == {"field": "email", "classification": "PII", "purposes": ["support"]}
    assert fields["note"]["classification"] == "debug_redact"
    assert body["messages"]["shop.Address"][0]["field"] == "street"


def produce_random_orders(floe, topic, n, conf=None):
    """n random orders, their restricted values unique; (secrets by field,
    the message classes)."""
    _, M = setup_order_schema(floe, topic)
    ser = serializer(floe, M)
    ctx = SerializationContext(topic, MessageField.VALUE)
    rng = random.Random(7)
    secret = lambda kind, i: f"{kind}-secret-{i}-{rng.randrange(1 << 30)}"
    secrets = {"email": set(), "street": set(), "cents": set(), "note": set()}
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 20, **(conf or {})})
    for i in range(n):
        o = M["shop.Order"](id=f"{i}")
        if rng.random() < 0.8:
            o.email = secret("email", i)
            secrets["email"].add(o.email)
        if rng.random() < 0.7:
            o.ship_to.CopyFrom(M["shop.Address"](city="c", street=secret("street", i)))
            secrets["street"].add(o.ship_to.street)
        if rng.random() < 0.6:
            cents = 10_000_000 + i
            o.total.CopyFrom(M["common.Money"](currency="EUR", cents=cents))
            secrets["cents"].add(cents)
        if rng.random() < 0.5:
            o.note = secret("note", i)
        o.tags.extend(secret("tag", i) for _ in range(rng.randrange(3)))
        while True:
            try:
                p.produce(topic, ser(o, ctx))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    return secrets, M


def leaks(values, topic, may_see, secrets, M):
    """How many restricted values of fields outside `may_see` `values` hold."""
    de = ProtobufDeserializer(M["shop.Order"], {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    leaked = 0
    for v in values:
        o = de(v, ctx)
        assert o.note == ""
        if "email" not in may_see:
            leaked += o.email in secrets["email"]
        if "street" not in may_see:
            leaked += o.ship_to.street in secrets["street"]
        if "cents" not in may_see:
            leaked += o.total.cents in secrets["cents"]
        if "email" in may_see:
            assert o.email == "" or o.email in secrets["email"]
    return leaked


def test_no_restricted_value_ever_reaches_an_unauthorized_consumer(floe):
    """10 000 random orders; consumers of each purpose never see a value of
    a field their purpose may not see."""
    topic = "fuzz"
    create_topic(floe.bootstrap, topic, 2)
    http(floe, "PUT", "/floe/grants/anonymous", {"purposes": ["support", "billing"]})
    n = 10_000
    secrets, M = produce_random_orders(floe, topic, n)
    allowed = {"support": {"email", "street"}, "billing": {"cents"}, None: set()}
    for purpose, may_see in allowed.items():
        cid = f"fz;purpose={purpose}" if purpose else "fz"
        values, errors = consume_values(floe, topic, n, cid, f"fz-{purpose}")
        assert len(values) == n, (purpose, len(values), errors)
        assert leaks(values, topic, may_see, secrets, M) == 0, purpose
