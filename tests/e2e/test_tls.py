"""TLS on the Kafka listener (--kafka-security-protocol SSL and SASL_SSL,
rustls): librdkafka and kafka-python connect through it with the CA that
signed the broker's certificate, refuse a broker their CA did not sign, and
a certificate replaced on disk applies to new connections without a
restart; mTLS, with the client CA bundle read again when it changes and
Kafka's ssl.principal.mapping.rules naming the principal."""

import hashlib
import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer

from test_sasl import add_user, create, librdkafka_login_error, purpose_claim, roundtrip_librdkafka


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory, name):
    """A CA and a server certificate it signs for 127.0.0.1 / localhost:
    (ca.pem, server.pem, server.key) under directory/name."""
    d = directory / name
    d.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", f"/CN=floe test CA {name}", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d / "ca.pem", d / "server.pem", d / "server.key"


def served_certificate(floe, ca):
    """The SHA-256 of the certificate a new TLS connection is shown."""
    host, port = floe.bootstrap.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def tls_floe(floe_factory, protocol, cert, key):
    return floe_factory("--kafka-security-protocol", protocol, "--tls-cert", str(cert), "--tls-key", str(key))


def test_sasl_ssl_with_librdkafka_and_kafka_python(floe_factory, tmp_path):
    ca, cert, key = make_certs(tmp_path, "a")
    other_ca, _, _ = make_certs(tmp_path, "b")
    floe = tls_floe(floe_factory, "SASL_SSL", cert, key)
    add_user(floe, "alice", "alice-secret")
    conf = {"bootstrap.servers": floe.bootstrap, "security.protocol": "SASL_SSL", "ssl.ca.location": str(ca),
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "alice-secret"}
    create(floe, conf, "secure")
    assert len(roundtrip_librdkafka(conf, "secure")) >= 20
    assert len(roundtrip_librdkafka({**conf, "sasl.mechanism": "PLAIN"}, "secure")) >= 20
    # A wrong password over TLS: the login is refused.
    e = librdkafka_login_error({**conf, "sasl.password": "wrong"})
    assert e is not None and e.code() == KafkaError._AUTHENTICATION, e
    # A client that does not trust the broker's CA refuses it.
    e = librdkafka_login_error({**conf, "ssl.ca.location": str(other_ca)})
    assert e is not None and e.code() in (KafkaError._SSL, KafkaError._TRANSPORT), e
    # kafka-python over TLS with SCRAM-SHA-256.
    auth = dict(security_protocol="SASL_SSL", ssl_cafile=str(ca), sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="alice", sasl_plain_password="alice-secret")
    p = KafkaProducer(bootstrap_servers=floe.bootstrap, **auth)
    p.send("secure", b"from kafka-python").get(timeout=30)
    p.close()
    c = KafkaConsumer("secure", bootstrap_servers=floe.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=10_000, **auth)
    values = {m.value for m in c}
    c.close()
    assert b"from kafka-python" in values


def test_ssl_refuses_plaintext_and_takes_a_renewed_certificate_without_a_restart(floe_factory, tmp_path):
    ca, cert, key = make_certs(tmp_path, "first")
    floe = tls_floe(floe_factory, "SSL", cert, key)
    conf = {"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca)}
    create(floe, conf, "t")
    assert len(roundtrip_librdkafka(conf, "t")) >= 20
    # A plaintext client gets no Kafka answer.
    e = librdkafka_login_error({"bootstrap.servers": floe.bootstrap})
    assert e is not None, "a plaintext client was served on an SSL listener"
    before = served_certificate(floe, ca)
    # The certificate is renewed on disk (by another CA, to tell them apart).
    new_ca, new_cert, new_key = make_certs(tmp_path, "second")
    cert.write_bytes(new_cert.read_bytes())
    key.write_bytes(new_key.read_bytes())
    deadline = time.time() + 20
    after = None
    while time.time() < deadline:
        try:
            after = served_certificate(floe, new_ca)
            break
        except ssl.SSLError:
            time.sleep(0.5)
    assert after is not None and after != before, "the renewed certificate was not served"
    assert len(roundtrip_librdkafka({**conf, "ssl.ca.location": str(new_ca)}, "t")) >= 20


def test_ssl_without_its_files_is_refused_at_startup(tmp_path):
    from conftest import floe_binary

    done = subprocess.run([floe_binary(), "serve", "--data-dir", str(tmp_path / "d"), "--kafka-listen",
                           "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--kafka-security-protocol", "SSL"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "needs --tls-cert and --tls-key" in done.stderr, done.stderr
    (tmp_path / "bad.pem").write_text("not a certificate")
    done = subprocess.run([floe_binary(), "serve", "--data-dir", str(tmp_path / "d"), "--kafka-listen",
                           "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--kafka-security-protocol", "SSL",
                           "--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", str(tmp_path / "bad.pem")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "bad.pem" in done.stderr, done.stderr


def client_certificate(ca_dir, name, subject):
    """A client certificate signed by the CA of ca_dir: (cert, key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=ca_dir)
    # X.509 v3 with its usage: webpki refuses v1 certificates.
    (ca_dir / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "client.ext", cwd=ca_dir)
    return ca_dir / f"{name}.pem", ca_dir / f"{name}.key"


def test_mtls_requires_a_trusted_client_certificate_whose_subject_is_the_principal(floe_factory, tmp_path):
    from confluent_kafka.serialization import MessageField, SerializationContext
    from test_schemas import good_order, http, serializer, setup_order_schema

    ca, cert, key = make_certs(tmp_path, "a")
    make_certs(tmp_path, "b")
    alice = client_certificate(tmp_path / "a", "alice", "/O=floe/CN=alice")
    bob = client_certificate(tmp_path / "a", "bob", "/O=floe/CN=bob")
    mallory = client_certificate(tmp_path / "b", "mallory", "/O=floe/CN=alice")
    floe = floe_factory("--kafka-security-protocol", "SSL", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--tls-client-ca", str(ca))

    def conf(pair):
        return {"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca),
                "ssl.certificate.location": str(pair[0]), "ssl.key.location": str(pair[1])}

    create(floe, conf(alice), "orders")
    # No client certificate, or one another CA signed: refused in the handshake.
    no_cert = {"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca)}
    for c in (no_cert, conf(mallory)):
        e = librdkafka_login_error(c)
        assert e is not None and e.code() in (KafkaError._SSL, KafkaError._TRANSPORT), e
    # The subject is the principal: a purpose granted to alice's subject.
    _, M = setup_order_schema(floe, "orders")
    p = Producer(conf(alice))
    p.produce("orders", serializer(floe, M)(good_order(M), SerializationContext("orders", MessageField.VALUE)))
    assert p.flush(30) == 0
    assert http(floe, "PUT", "/floe/grants/CN=alice,O=floe", {"purposes": ["support"]})[0] == 200

    assert purpose_claim(conf(alice), "orders") == "records"
    assert purpose_claim(conf(bob), "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # kafka-python with a client certificate.
    kp = KafkaConsumer("orders", bootstrap_servers=floe.bootstrap, security_protocol="SSL", ssl_cafile=str(ca),
                       ssl_certfile=str(bob[0]), ssl_keyfile=str(bob[1]), auto_offset_reset="earliest",
                       consumer_timeout_ms=10_000)
    assert len(list(kp)) == 1
    kp.close()


def test_a_fetch_larger_than_the_socket_buffer_arrives_whole_over_tls(floe_factory, tmp_path):
    """A response bigger than the socket takes at once is flushed whole:
    none of it waits in the TLS session for a later response (the client
    would time out waiting for the tail)."""
    import os
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    ca, cert, key = make_certs(tmp_path, "big")
    floe = tls_floe(floe_factory, "SSL", cert, key)
    conf = {"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(ca)}
    p = Producer({**conf, "linger.ms": 50, "batch.size": 1_000_000})
    for _ in range(1500):
        p.produce("big", os.urandom(16_384), partition=0)
    assert p.flush(60) == 0
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4()}", "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 52_428_800, "socket.timeout.ms": 10_000,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition("big", 0, 0)])
    got, deadline = 0, time.time() + 30
    while got < 1500 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert not m.error(), m.error()
            got += 1
    c.close()
    assert got == 1500


def test_the_http_api_over_tls(floe_factory, tmp_path):
    """--http-tls: the HTTP API answers HTTPS with the listener's
    certificate, and nothing over plain HTTP."""
    import http.client
    import json
    import urllib.request

    ca, cert, key = make_certs(tmp_path, "http")
    floe = floe_factory("--kafka-security-protocol", "SSL", "--tls-cert", str(cert),
                        "--tls-key", str(key), "--http-tls")
    https = floe.http.replace("http://", "https://")
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(https + "/health", context=ctx, timeout=10) as r:
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(https + "/subjects", context=ctx, timeout=10) as r:
        assert r.status == 200
    try:
        urllib.request.urlopen(floe.http + "/health", timeout=5)
        raise AssertionError("plain HTTP was answered")
    except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
        pass


def test_a_client_ca_changed_on_disk_applies_to_new_connections(floe_factory, tmp_path):
    ca, cert, key = make_certs(tmp_path, "a")
    other_ca, _, _ = make_certs(tmp_path, "b")
    alice = client_certificate(tmp_path / "a", "alice", "/CN=alice")
    mallory = client_certificate(tmp_path / "b", "mallory", "/CN=mallory")
    bundle = tmp_path / "client-ca.pem"
    bundle.write_text(ca.read_text())
    floe = floe_factory("--kafka-security-protocol", "SSL", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--tls-client-ca", str(bundle))

    def conf(pair):
        return {"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca),
                "ssl.certificate.location": str(pair[0]), "ssl.key.location": str(pair[1])}

    def refused(pair):
        """True when a new connection with this certificate gets no answer."""
        from confluent_kafka.admin import AdminClient
        try:
            AdminClient(conf(pair)).list_topics(timeout=5)
            return False
        except KafkaException:
            return True

    def eventually(check, what):
        deadline = time.time() + 15
        while not check():
            assert time.time() < deadline, what
            time.sleep(0.5)

    assert refused(mallory) and not refused(alice)
    # The second CA added to the bundle: trusted without a restart.
    bundle.write_text(ca.read_text() + other_ca.read_text())
    eventually(lambda: not refused(mallory), "a CA added to the bundle was not trusted")
    # A bundle that does not read is logged and the one in force kept.
    bundle.write_text("not a certificate")
    assert floe.log_contains("client CA changed but cannot be used", within=10)
    assert not refused(mallory)
    # The first CA removed: its clients are refused from then on.
    bundle.write_text(other_ca.read_text())
    eventually(lambda: refused(alice), "a CA removed from the bundle was still trusted")
    assert not refused(mallory)


def test_principal_mapping_rules_name_the_principal_of_a_certificate(floe_factory, tmp_path):
    from confluent_kafka.admin import AdminClient, NewTopic

    ca, cert, key = make_certs(tmp_path, "a")
    alice = client_certificate(tmp_path / "a", "alice", "/O=floe/CN=Alice")
    bob = client_certificate(tmp_path / "a", "bob", "/O=floe/CN=bob")
    eve = client_certificate(tmp_path / "a", "eve", "/O=other/CN=eve")
    floe = floe_factory("--kafka-security-protocol", "SSL", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--tls-client-ca", str(ca), "--ssl-principal-mapping-rules",
                        "RULE:^CN=([^,]+),O=floe$/$1/L", "--acls", "--super-users", "User:alice")

    def admin(pair):
        return AdminClient({"bootstrap.servers": floe.bootstrap, "security.protocol": "SSL",
                            "ssl.ca.location": str(ca), "ssl.certificate.location": str(pair[0]),
                            "ssl.key.location": str(pair[1])})

    def create_error(pair, topic):
        a = admin(pair)  # must outlive the future
        try:
            a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        except KafkaException as e:
            return e.args[0].code()
        return None

    # CN=Alice,O=floe is User:alice, a super user; CN=bob,O=floe is User:bob.
    assert create_error(alice, "by-alice") is None
    assert create_error(bob, "by-bob") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A subject no rule applies to is refused, as Kafka refuses it.
    with pytest.raises(KafkaException):
        admin(eve).list_topics(timeout=5)
    assert floe.log_contains("no --ssl-principal-mapping-rules rule applies")


def test_bad_principal_mapping_rules_are_refused_at_startup(tmp_path):
    from conftest import floe_refuses_to_start

    said = floe_refuses_to_start(tmp_path / "d", "--ssl-principal-mapping-rules", "RULE:^CN=(.*$/$1/")
    assert "--ssl-principal-mapping-rules" in said, said


def test_a_client_certificate_names_the_caller_of_the_http_api(floe_factory, tmp_path):
    """--http-tls with --tls-client-ca: a client certificate authenticates
    an HTTPS caller (mapped by the same rules as on Kafka), a client without
    one logs in as before, and one whose subject no rule maps is refused."""
    import urllib.error
    import urllib.request

    ca, cert, key = make_certs(tmp_path, "a")
    alice = client_certificate(tmp_path / "a", "alice", "/O=floe/CN=alice")
    bob = client_certificate(tmp_path / "a", "bob", "/O=floe/CN=bob")
    eve = client_certificate(tmp_path / "a", "eve", "/O=other/CN=eve")
    floe = floe_factory("--tls-cert", str(cert), "--tls-key", str(key), "--http-tls", "--tls-client-ca", str(ca),
                        "--ssl-principal-mapping-rules", "RULE:^CN=([^,]+),O=floe$/$1/",
                        "--http-authentication", "required", "--acls", "--super-users", "User:alice",
                        "--initial-user", "admin:admin-secret")
    https = floe.http.replace("http://", "https://")

    def status(pair, path="/config", headers=None):
        ctx = ssl.create_default_context(cafile=str(ca))
        if pair:
            ctx.load_cert_chain(str(pair[0]), str(pair[1]))
        try:
            with urllib.request.urlopen(urllib.request.Request(https + path, headers=headers or {}),
                                        context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status(alice) == 200, "User:alice, a super user"
    assert status(bob) == 403, "User:bob holds no ACL"
    assert status(None) == 401, "no certificate, no credentials"
    assert status(eve) == 401, "no rule maps O=other"
    # Credentials in the request win over the certificate.
    import base64
    basic = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    assert status(alice, headers=basic) == 401
    assert status(None, "/health") == 200
    # A certificate another CA signed fails the handshake.
    make_certs(tmp_path, "b")
    mallory = client_certificate(tmp_path / "b", "mallory", "/O=floe/CN=alice")
    with pytest.raises((ssl.SSLError, OSError, urllib.error.URLError)):
        status(mallory)
