"""Several Kafka listeners on one broker (--listeners, Kafka's `listeners`,
`advertised.listeners` and `listener.security.protocol.map`): each with its
own security protocol, each client told the addresses of the listener it
came in through (on every broker of a cluster), and a listener that does
not authenticate configured to a fixed principal that ACLs apply to."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from conftest import floe_refuses_to_start, free_port
from test_acls import produce_error
from test_sasl import add_user, roundtrip_librdkafka
from test_tls import make_certs


def brokers_seen(conf):
    """{id: "host:port"} as a Metadata response through `conf` lists them."""
    md = AdminClient(conf).list_topics(timeout=15)
    return {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}


def test_each_listener_has_its_protocol_and_advertises_its_own_address(floe_factory, tmp_path):
    ca, cert, key = make_certs(tmp_path, "a")
    plain, secure, internal = free_port(), free_port(), free_port()
    floe = floe_factory(
        "--listeners", f"PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure},"
                       f"INTERNAL://127.0.0.1:{internal}",
        "--listener-security-protocol-map", "INTERNAL:SASL_PLAINTEXT",
        # Clients of INTERNAL are told a name, not the bound address.
        "--advertised-listeners", f"INTERNAL://localhost:{internal}",
        "--tls-cert", str(cert), "--tls-key", str(key))
    assert floe.bootstrap == f"127.0.0.1:{plain}"
    add_user(floe, "alice", "alice-secret")
    login = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "alice-secret"}
    plaintext = {"bootstrap.servers": f"127.0.0.1:{plain}"}
    sasl_ssl = {"bootstrap.servers": f"127.0.0.1:{secure}", "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(ca), **login}
    sasl_plaintext = {"bootstrap.servers": f"127.0.0.1:{internal}", "security.protocol": "SASL_PLAINTEXT",
                      **login}
    assert brokers_seen(plaintext) == {0: f"127.0.0.1:{plain}"}
    assert brokers_seen(sasl_ssl) == {0: f"127.0.0.1:{secure}"}
    assert brokers_seen(sasl_plaintext) == {0: f"localhost:{internal}"}
    a = AdminClient(plaintext)  # must outlive the future
    a.create_topics([NewTopic("multi", 1, 1)])["multi"].result(30)
    # One topic, written and read through every listener by librdkafka.
    for conf in (plaintext, sasl_ssl, sasl_plaintext):
        assert len(roundtrip_librdkafka(conf, "multi", n=10)) >= 10
    # kafka-python through the listener whose advertised host is a name.
    auth = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="alice", sasl_plain_password="alice-secret")
    p = KafkaProducer(bootstrap_servers=f"localhost:{internal}", **auth)
    p.send("multi", b"from kafka-python").get(timeout=30)
    p.close()
    c = KafkaConsumer("multi", bootstrap_servers=f"localhost:{internal}", auto_offset_reset="earliest",
                      consumer_timeout_ms=10_000, **auth)
    assert b"from kafka-python" in {m.value for m in c}
    c.close()
    # A listener keeps its protocol: plaintext on the SASL_SSL port fails.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": f"127.0.0.1:{secure}"}).list_topics(timeout=4)


def test_a_listener_principal_is_bound_by_acls(floe_factory):
    plain, sasl = free_port(), free_port()
    floe = floe_factory(
        "--listeners", f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        "--listener-principals", "PLAINTEXT=User:etl",
        "--acls", "--super-users", "User:admin", "--initial-user", "admin:admin-secret")
    admin = {"bootstrap.servers": f"127.0.0.1:{sasl}", "security.protocol": "SASL_PLAINTEXT",
             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": "admin-secret"}
    a = AdminClient(admin)
    for f in a.create_topics([NewTopic("etl-in", 1, 1), NewTopic("other", 1, 1)]).values():
        f.result(30)
    for f in a.create_acls([AclBinding(ResourceType.TOPIC, "etl-in", ResourcePatternType.LITERAL, "User:etl",
                                       "*", op, AclPermissionType.ALLOW)
                            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]).values():
        f.result(30)
    etl = {"bootstrap.servers": f"127.0.0.1:{plain}"}
    deadline = time.time() + 10
    while produce_error(etl, "etl-in") is not None and time.time() < deadline:
        time.sleep(0.2)
    assert produce_error(etl, "etl-in") is None
    assert produce_error(etl, "other") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The listener's principal is what Metadata filters by: etl sees its topic only.
    assert set(AdminClient(etl).list_topics(timeout=15).topics) == {"etl-in"}
    # kafka-python on the same listener is the same principal.
    kp = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{plain}")
    assert set(kp.list_topics()) == {"etl-in"}
    kp.close()


def test_brokers_of_a_cluster_advertise_each_listener(floe_factory, tmp_path, postgres):
    from cluster import LEASE_MS, wait_for
    ports = {i: (free_port(), free_port()) for i in (1, 2)}
    brokers = {
        i: floe_factory(f"--metadata={postgres}", f"--broker-id={i}", f"--object-store={tmp_path / 'objects'}",
                        f"--broker-lease-ms={LEASE_MS}",
                        "--listeners", f"CLIENT://127.0.0.1:{ports[i][0]},REPLICA://127.0.0.1:{ports[i][1]}",
                        "--listener-security-protocol-map", "CLIENT:PLAINTEXT,REPLICA:PLAINTEXT",
                        "--advertised-listeners", f"REPLICA://localhost:{ports[i][1]}",
                        data_dir=tmp_path / f"broker{i}")
        for i in (1, 2)
    }
    client = {1: f"127.0.0.1:{ports[1][0]}", 2: f"127.0.0.1:{ports[2][0]}"}
    replica = {1: f"localhost:{ports[1][1]}", 2: f"localhost:{ports[2][1]}"}
    # Whichever broker is asked, through whichever listener: every broker's
    # address on that listener.
    for i in (1, 2):
        wait_for("both brokers listed", lambda: brokers_seen({"bootstrap.servers": client[i]}) == client)
        assert brokers_seen({"bootstrap.servers": replica[i]}) == replica
    # A coordinator found through a listener is reached through it.
    a = AdminClient({"bootstrap.servers": replica[1]})
    a.create_topics([NewTopic("both", 2, 1)])["both"].result(30)
    assert len(roundtrip_librdkafka({"bootstrap.servers": replica[2]}, "both", n=10)) >= 10
    # Restarted, a broker's listeners are its new run's, the old ones gone.
    brokers[2].restart()
    wait_for("broker 2 back", lambda: brokers_seen({"bootstrap.servers": client[1]}) == client)


def test_listener_mistakes_are_refused_at_startup(tmp_path):
    said = floe_refuses_to_start(tmp_path / "a", "--listeners", "EXTERNAL://127.0.0.1:0")
    assert "--listener-security-protocol-map" in said, said
    said = floe_refuses_to_start(tmp_path / "b", "--listeners", "SSL://127.0.0.1:0")
    assert "--tls-cert" in said, said

