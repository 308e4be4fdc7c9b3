"""SASL on the Kafka listener (--kafka-security-protocol SASL_PLAINTEXT):
SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN against the users' SCRAM
credentials in the metadata store, with librdkafka (confluent-kafka) and
kafka-python; users managed over REST and with Kafka's
AlterUserScramCredentials; a purpose claim bound to the authenticated
principal."""

import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError

from test_schemas import http

SASL = ("--kafka-security-protocol", "SASL_PLAINTEXT")


def sasl_conf(floe, mechanism, user, password):
    return {"bootstrap.servers": floe.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def add_user(floe, name, password, **extra):
    status, body = http(floe, "PUT", f"/floe/users/{name}", {"password": password, **extra})
    assert status == 200, body
    return body


def create(floe, conf, topic):
    a = AdminClient(conf)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def roundtrip_librdkafka(conf, topic, n=20):
    p = Producer(conf)
    for i in range(n):
        p.produce(topic, f"v{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < n and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def librdkafka_login_error(conf):
    """The error a librdkafka client gets when its login is refused."""
    errors = []
    p = Producer({**conf, "error_cb": errors.append})
    deadline = time.time() + 20
    while not errors and time.time() < deadline:
        p.poll(0.2)
    return errors[0] if errors else None


def purpose_claim(conf, topic):
    """What a consumer claiming the `support` purpose gets first from
    `topic`: "records", or the error code it is refused with."""
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                  "client.id": "app;purpose=support"})
    c.subscribe([topic])
    deadline = time.time() + 20
    try:
        while time.time() < deadline:
            m = c.poll(1)
            if m is not None:
                return m.error().code() if m.error() else "records"
    finally:
        c.close()


def test_scram_and_plain_logins_with_librdkafka(floe_factory):
    floe = floe_factory(*SASL)
    add_user(floe, "alice", "alice-secret")
    create(floe, sasl_conf(floe, "SCRAM-SHA-512", "alice", "alice-secret"), "t")
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        got = roundtrip_librdkafka(sasl_conf(floe, mechanism, "alice", "alice-secret"), "t")
        assert len(got) >= 20, (mechanism, got)
    # A wrong password and an unknown user are refused with an
    # authentication error, whatever the mechanism.
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        for user, password in (("alice", "wrong"), ("mallory", "alice-secret")):
            e = librdkafka_login_error(sasl_conf(floe, mechanism, user, password))
            assert e is not None and e.code() == KafkaError._AUTHENTICATION, (mechanism, user, e)
            assert "invalid user name or password" in e.str(), e.str()
    # A mechanism the listener does not offer.
    floe2 = floe_factory(*SASL, "--sasl-mechanisms", "SCRAM-SHA-256")
    add_user(floe2, "alice", "alice-secret")
    e = librdkafka_login_error(sasl_conf(floe2, "PLAIN", "alice", "alice-secret"))
    assert e is not None and e.code() == KafkaError._AUTHENTICATION, e


def test_kafka_python_logs_in_with_scram_and_plain(floe_factory):
    floe = floe_factory(*SASL)
    add_user(floe, "bob", "bob-secret")
    create(floe, sasl_conf(floe, "SCRAM-SHA-256", "bob", "bob-secret"), "kp")
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        auth = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                    sasl_plain_username="bob", sasl_plain_password="bob-secret")
        p = KafkaProducer(bootstrap_servers=floe.bootstrap, **auth)
        p.send("kp", mechanism.encode()).get(timeout=30)
        p.close()
        c = KafkaConsumer("kp", bootstrap_servers=floe.bootstrap, auto_offset_reset="earliest",
                          consumer_timeout_ms=10_000, **auth)
        values = {m.value for m in c}
        c.close()
        assert mechanism.encode() in values, values
    with pytest.raises(KafkaPythonError):
        KafkaProducer(bootstrap_servers=floe.bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="bob",
                      sasl_plain_password="wrong", max_block_ms=5000).send("kp", b"x").get(10)


def test_a_request_before_authenticating_closes_the_connection(floe_factory):
    floe = floe_factory(*SASL)
    host, port = floe.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        # Metadata v1, no topics: refused by closing, as Kafka does.
        body = struct.pack(">hhih", 3, 1, 1, 1) + b"x" + struct.pack(">i", 0)
        s.sendall(struct.pack(">i", len(body)) + body)
        assert s.recv(4) == b""


def test_users_managed_with_kafkas_admin_api_log_in(floe_factory):
    floe = floe_factory(*SASL)
    add_user(floe, "admin", "admin-secret")
    conf = sasl_conf(floe, "SCRAM-SHA-512", "admin", "admin-secret")
    a = AdminClient(conf)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    futures = a.alter_user_scram_credentials([UserScramCredentialUpsertion("carol", info, b"carol-pw")])
    futures["carol"].result(30)
    described = a.describe_user_scram_credentials(["carol"])["carol"].result(30)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_256, 4096)]
    # An unknown user: RESOURCE_NOT_FOUND.
    with pytest.raises(KafkaException) as e:
        a.describe_user_scram_credentials(["nobody"])["nobody"].result(30)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    create(floe, sasl_conf(floe, "SCRAM-SHA-256", "carol", "carol-pw"), "c")
    # Too few iterations: UNACCEPTABLE_CREDENTIAL; nothing stored.
    weak = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 1000)
    with pytest.raises(KafkaException) as e:
        a.alter_user_scram_credentials([UserScramCredentialUpsertion("dave", weak, b"pw")])["dave"].result(30)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    assert http(floe, "GET", "/floe/users/dave")[0] == 404
    # Deleted, carol can no longer log in.
    a.alter_user_scram_credentials(
        [UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])["carol"].result(30)
    e = librdkafka_login_error(sasl_conf(floe, "SCRAM-SHA-256", "carol", "carol-pw"))
    assert e is not None and e.code() == KafkaError._AUTHENTICATION, e
    status, users = http(floe, "GET", "/floe/users")
    assert [u["name"] for u in users] == ["admin"]


def test_a_purpose_is_claimed_by_the_authenticated_principal_not_by_anonymous(floe_factory):
    from confluent_kafka.serialization import MessageField, SerializationContext
    from test_schemas import good_order, serializer, setup_order_schema

    floe = floe_factory(*SASL)
    add_user(floe, "support-app", "pw1")
    add_user(floe, "other-app", "pw2")
    support = sasl_conf(floe, "SCRAM-SHA-512", "support-app", "pw1")
    other = sasl_conf(floe, "SCRAM-SHA-512", "other-app", "pw2")
    create(floe, support, "orders")
    _, M = setup_order_schema(floe, "orders")
    p = Producer(support)
    p.produce("orders", serializer(floe, M)(good_order(M), SerializationContext("orders", MessageField.VALUE)))
    assert p.flush(30) == 0
    # Granted to support-app only (and not to anonymous).
    assert http(floe, "PUT", "/floe/grants/support-app", {"purposes": ["support"]})[0] == 200

    assert purpose_claim(support, "orders") == "records"
    assert purpose_claim(other, "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _request(s, api_key, version, body, correlation=1):
    header = struct.pack(">hhih", api_key, version, correlation, 1) + b"x"
    frame = header + body
    s.sendall(struct.pack(">i", len(frame)) + frame)


def _read_frame(s):
    from test_schemas import read_exact
    (size,) = struct.unpack(">i", read_exact(s, 4))
    return read_exact(s, size)


def test_sasl_handshake_v0_takes_bare_tokens_and_kcat_logs_in(floe_factory):
    """SaslHandshake v0 is followed by bare tokens (no SaslAuthenticate);
    librdkafka builds that take a broker without v0 for one without SASL
    (Debian's kcat, librdkafka 2.0.2) log in."""
    import subprocess

    floe = floe_factory(*SASL)
    add_user(floe, "alice", "alice-secret")
    host, port = floe.bootstrap.rsplit(":", 1)

    def v0_login(password):
        s = socket.create_connection((host, int(port)), timeout=5)
        _request(s, 17, 0, struct.pack(">h", 5) + b"PLAIN")
        r = _read_frame(s)
        assert struct.unpack(">h", r[4:6])[0] == 0, r
        token = b"\0alice\0" + password
        s.sendall(struct.pack(">i", len(token)) + token)
        return s

    s = v0_login(b"alice-secret")
    assert _read_frame(s) == b"", "PLAIN's answer is empty"
    # Logged in: Kafka requests are served.
    _request(s, 3, 1, struct.pack(">i", 0), correlation=2)
    assert struct.unpack(">i", _read_frame(s)[:4])[0] == 2
    s.close()
    s = v0_login(b"wrong")
    assert s.recv(4) == b"", "a refused bare login closes the connection"
    s.close()

    # Debian's kcat is built on librdkafka 2.0.2, whose SCRAM repeats its
    # nonce in the final message (fixed in librdkafka 2.6.1): accepted, as
    # Kafka 3.8.1+ does.
    for mechanism in ("PLAIN", "SCRAM-SHA-256"):
        auth = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanism={mechanism}",
                "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
        produced = subprocess.run(["kcat", "-b", floe.bootstrap, *auth, "-P", "-t", "kc"], input=b"one\ntwo\n",
                                  capture_output=True, timeout=60)
        assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-b", floe.bootstrap, *auth, "-C", "-t", "kc", "-o", "beginning", "-e"],
                              capture_output=True, timeout=60)
    assert consumed.stdout.split() == [b"one", b"two", b"one", b"two"], consumed.stderr


def test_no_restricted_value_reaches_a_principal_without_its_grant(floe_factory):
    """The 10 000-order leak test with authenticated principals: each
    consumer states a purpose in client.id, and what it gets depends on the
    grants of the user it logged in as, never on what it claims."""
    from test_schemas import consume_values, leaks, produce_random_orders

    floe = floe_factory(*SASL)
    for user in ("writer", "support-app", "billing-app", "intruder"):
        add_user(floe, user, f"{user}-secret")
    for user, purposes in (("support-app", ["support"]), ("billing-app", ["billing"])):
        assert http(floe, "PUT", f"/floe/grants/{user}", {"purposes": purposes})[0] == 200
    as_user = lambda u: {k: v for k, v in sasl_conf(floe, "SCRAM-SHA-256", u, f"{u}-secret").items()
                         if k != "bootstrap.servers"}
    topic = "leak"
    create(floe, {**as_user("writer"), "bootstrap.servers": floe.bootstrap}, topic)
    n = 10_000
    secrets, M = produce_random_orders(floe, topic, n, conf=as_user("writer"))
    cases = [
        ("support-app", "support", {"email", "street"}),
        ("billing-app", "billing", {"cents"}),
        ("intruder", None, set()),
        ("support-app", None, set()),
    ]
    for user, purpose, may_see in cases:
        cid = f"fz;purpose={purpose}" if purpose else "fz"
        values, errors = consume_values(floe, topic, n, cid, f"g-{user}-{purpose}",
                                        conf=as_user(user))
        assert len(values) == n, (user, purpose, len(values), errors)
        assert leaks(values, topic, may_see, secrets, M) == 0, (user, purpose)
    # Claiming a purpose the user does not hold gets nothing at all.
    for user, purpose in (("intruder", "support"), ("billing-app", "support"),
                          ("support-app", "billing")):
        values, errors = consume_values(floe, topic, n, f"fz;purpose={purpose}",
                                        f"g-{user}-{purpose}", conf=as_user(user))
        assert values == [], (user, purpose, len(values))
        assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
