"""ACLs (--acls): Kafka's CreateAcls / DescribeAcls / DeleteAcls, enforced
on produce, consume, group membership, topic create/delete and config
changes with Kafka's error codes; prefixed patterns, deny over allow,
Metadata hiding what a principal may not describe, super users, and
allow.everyone.if.no.acl.found. With librdkafka (confluent-kafka) and
kafka-python, over SASL logins."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourcePatternType, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType
from kafka.admin import ResourcePattern as KpResourcePattern
from kafka.admin import ResourceType as KpResourceType
from kafka.admin._acls import ResourcePatternFilter
from kafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from test_sasl import SASL, sasl_conf
from test_schemas import http

ACLS = (*SASL, "--acls", "--super-users", "User:admin", "--http-authentication", "required",
        "--initial-user", "admin:admin-secret")
ADMIN = ("admin", "admin-secret")


def users(floe):
    """alice and bob, created over HTTP by the initial user."""
    for name in ("alice", "bob"):
        status, body = http(floe, "PUT", f"/floe/users/{name}", {"password": f"{name}-secret"},
                            auth=ADMIN)
        assert status == 200, body
    return {name: sasl_conf(floe, "SCRAM-SHA-512", name, f"{name}-secret")
            for name in ("admin", "alice", "bob")}


def allow(kind, name, principal, op, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW):
    return AclBinding(kind, name, pattern, principal, "*", op, permission)


def create_acls(admin, bindings):
    for f in admin.create_acls(bindings).values():
        f.result(30)


def error_of(future):
    try:
        future.result(30)
    except KafkaException as e:
        return e.args[0].code()
    return None


def produce_error(conf, topic):
    """None when one record is acknowledged, else the delivery error code."""
    outcome = []
    p = Producer({**conf, "message.timeout.ms": 10_000})
    p.produce(topic, b"x", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    assert outcome, "no delivery report"
    return outcome[0].code() if outcome[0] else None


def consume_outcome(conf, topic, group):
    """"records" when a record arrives, else the first error code."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.time() + 20
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            return m.error().code() if m.error() else "records"
    finally:
        c.close()


def visible_topics(conf):
    return set(AdminClient(conf).list_topics(timeout=20).topics)


def test_acls_allow_deny_and_hide_with_librdkafka(floe_factory):
    floe = floe_factory(*ACLS)
    conf = users(floe)
    admin = AdminClient(conf["admin"])
    for t in ("orders-eu", "orders-secret", "payments"):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    assert produce_error(conf["admin"], "orders-secret") is None  # super user

    # No ACL names these topics: closed to all but the super users, and
    # hidden from Metadata.
    assert visible_topics(conf["alice"]) == set()
    assert produce_error(conf["alice"], "orders-eu") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    prefixed = ResourcePatternType.PREFIXED
    create_acls(admin, [
        allow(ResourceType.TOPIC, "orders-", "User:alice", AclOperation.WRITE, prefixed),
        allow(ResourceType.TOPIC, "orders-", "User:alice", AclOperation.READ, prefixed),
        allow(ResourceType.TOPIC, "orders-secret", "User:alice", AclOperation.READ,
              permission=AclPermissionType.DENY),
        allow(ResourceType.GROUP, "app-", "User:alice", AclOperation.READ, prefixed),
        allow(ResourceType.TOPIC, "payments", "User:bob", AclOperation.READ),
    ])
    # WRITE and READ imply DESCRIBE: the orders topics show, payments not.
    assert visible_topics(conf["alice"]) == {"orders-eu", "orders-secret"}
    assert visible_topics(conf["bob"]) == {"payments"}
    assert produce_error(conf["alice"], "orders-eu") is None
    assert produce_error(conf["alice"], "orders-secret") is None  # only READ is denied
    assert consume_outcome(conf["alice"], "orders-eu", "app-1") == "records"
    # The deny wins over the prefixed allow.
    assert (consume_outcome(conf["alice"], "orders-secret", "app-2")
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    # A group outside the allowed prefix.
    assert (consume_outcome(conf["alice"], "orders-eu", "other")
            == KafkaError.GROUP_AUTHORIZATION_FAILED)
    # Bob may read payments but not write it: the Produce itself is refused.
    assert produce_error(conf["bob"], "payments") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Topic create, delete, partitions and configs need their own operations.
    alice = AdminClient(conf["alice"])
    assert (error_of(alice.create_topics([NewTopic("orders-new", 1, 1)])["orders-new"])
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert (error_of(alice.delete_topics(["orders-eu"])["orders-eu"])
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert (error_of(alice.create_partitions([NewPartitions("orders-eu", 2)])["orders-eu"])
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "orders-eu",
                              set_config={"retention.ms": "3600000"})
    assert (error_of(alice.alter_configs([resource])[resource])
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)
    create_acls(admin, [
        allow(ResourceType.TOPIC, "orders-", "User:alice", AclOperation.CREATE, prefixed),
        allow(ResourceType.TOPIC, "orders-eu", "User:alice", AclOperation.ALTER_CONFIGS),
        allow(ResourceType.TOPIC, "orders-new", "User:alice", AclOperation.DELETE),
    ])
    assert error_of(alice.create_topics([NewTopic("orders-new", 1, 1)])["orders-new"]) is None
    assert error_of(alice.alter_configs([resource])[resource]) is None
    assert error_of(alice.delete_topics(["orders-new"])["orders-new"]) is None
    assert (error_of(alice.delete_topics(["orders-eu"])["orders-eu"])
            == KafkaError.TOPIC_AUTHORIZATION_FAILED)

    # The ACL APIs themselves need the cluster: alice may not use them.
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # (librdkafka drops DescribeAcls' top-level error and lists nothing;
    # kafka-python raises it, in the test below.)
    try:
        assert alice.describe_acls(everything).result(30) == []
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    mine = allow(ResourceType.TOPIC, "payments", "User:alice", AclOperation.READ)
    assert error_of(alice.create_acls([mine])[mine]) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    listed = admin.describe_acls(everything).result(30)
    assert len(listed) == 8, listed
    matching = AclBindingFilter(ResourceType.TOPIC, "orders-secret", ResourcePatternType.MATCH,
                                None, None, AclOperation.ANY, AclPermissionType.ANY)
    names = sorted((b.name, b.resource_pattern_type) for b in
                   admin.describe_acls(matching).result(30))
    assert names == sorted([("orders-", prefixed)] * 3 + [
        ("orders-secret", ResourcePatternType.LITERAL)]), names

    # Deleting alice's write takes it away at once.
    writes = AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, "User:alice",
                              None, AclOperation.WRITE, AclPermissionType.ALLOW)
    deleted = admin.delete_acls([writes])[writes].result(30)
    assert [(b.name, b.operation) for b in deleted] == [("orders-", AclOperation.WRITE)]
    assert produce_error(conf["alice"], "orders-eu") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # HTTP basic authentication against the same users, and the cluster's
    # ACLs on the routes that are not a topic's: reading needs DESCRIBE,
    # changing ALTER; a refusal changes nothing. A listing shows what the
    # principal may see.
    assert http(floe, "GET", "/health")[0] == 200
    assert http(floe, "GET", "/subjects")[0] == 401
    assert http(floe, "GET", "/subjects", auth=("alice", "wrong"))[0] == 401
    assert http(floe, "GET", "/config", auth=("alice", "alice-secret"))[0] == 403
    status, body = http(floe, "GET", "/subjects", auth=("alice", "alice-secret"))
    assert status == 200 and "floe/policy/v1/policy.proto" not in body, body
    assert http(floe, "PUT", "/floe/users/mallory", {"password": "x"},
                auth=("alice", "alice-secret"))[0] == 403
    assert http(floe, "GET", "/floe/users/mallory", auth=ADMIN)[0] == 404
    create_acls(admin, [allow(ResourceType.BROKER, "kafka-cluster", "User:alice",
                              AclOperation.DESCRIBE)])
    status, body = http(floe, "GET", "/subjects", auth=("alice", "alice-secret"))
    assert status == 200 and "floe/policy/v1/policy.proto" in body, body
    assert http(floe, "PUT", "/floe/grants/alice", {"purposes": ["support"]},
                auth=("alice", "alice-secret"))[0] == 403
    assert http(floe, "GET", "/floe/grants", auth=ADMIN)[0] == 200
    assert floe.log_contains('resource="HTTP:/floe/users/mallory"')
    # Every refusal is in the audit log, with its principal.
    assert floe.log_contains("outcome=\"denied\"") or floe.log_contains("outcome=denied")
    assert floe.log_contains("User:alice")


def test_kafka_python_manages_acls_and_is_refused_by_them(floe_factory):
    floe = floe_factory(*ACLS)
    users(floe)
    auth = lambda user: dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                             sasl_plain_username=user, sasl_plain_password=f"{user}-secret")
    admin = KafkaAdminClient(bootstrap_servers=floe.bootstrap, **auth("admin"))
    from kafka.admin import NewTopic as KpNewTopic
    admin.create_topics([KpNewTopic("kp-logs", 1, 1)])
    topic = KpResourcePattern(KpResourceType.TOPIC, "kp-", ACLResourcePatternType.PREFIXED)
    acl = ACL("User:bob", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW, topic)
    result = admin.create_acls([acl])
    assert result["failed"] == [], result
    found, error = admin.describe_acls(ACLFilter(principal="User:bob", host="*",
                                                 operation=ACLOperation.ANY,
                                                 permission_type=ACLPermissionType.ANY,
                                                 resource_pattern=ResourcePatternFilter(
                                                     KpResourceType.TOPIC, None,
                                                     ACLResourcePatternType.ANY)))
    assert error.errno == 0 and len(found) == 1, (found, error)

    p = KafkaProducer(bootstrap_servers=floe.bootstrap, **auth("bob"))
    p.send("kp-logs", b"allowed").get(timeout=30)
    p.close()
    # Bob may write but not read: consuming is refused.
    c = KafkaConsumer(bootstrap_servers=floe.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=5_000, **auth("bob"))
    from kafka import TopicPartition
    c.assign([TopicPartition("kp-logs", 0)])
    with pytest.raises(TopicAuthorizationFailedError):
        for _ in c:
            break
    c.close()
    # Alice has nothing: her produce is refused with Kafka's error.
    p = KafkaProducer(bootstrap_servers=floe.bootstrap, max_block_ms=10_000, **auth("alice"))
    with pytest.raises(Exception) as refused:
        p.send("kp-logs", b"refused").get(timeout=30)
    assert "TopicAuthorizationFailed" in repr(refused.value), repr(refused.value)
    p.close()
    # The ACL APIs refuse a principal without the cluster's DESCRIBE / ALTER.
    alice = KafkaAdminClient(bootstrap_servers=floe.bootstrap, **auth("alice"))
    with pytest.raises(ClusterAuthorizationFailedError):
        alice.describe_acls(ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                                      permission_type=ACLPermissionType.ANY,
                                      resource_pattern=ResourcePatternFilter(
                                          KpResourceType.ANY, None, ACLResourcePatternType.ANY)))
    alice.close()
    admin.close()


def test_without_acls_the_acl_apis_say_security_disabled(floe_factory):
    floe = floe_factory()
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    binding = allow(ResourceType.TOPIC, "t", "User:alice", AclOperation.READ)
    assert error_of(admin.create_acls([binding])[binding]) == KafkaError.SECURITY_DISABLED


def test_allow_everyone_if_no_acl_found_opens_only_unnamed_resources(floe_factory):
    floe = floe_factory(*ACLS, "--allow-everyone-if-no-acl-found")
    conf = users(floe)
    admin = AdminClient(conf["admin"])
    for t in ("open", "named"):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    create_acls(admin, [allow(ResourceType.TOPIC, "named", "User:bob", AclOperation.WRITE)])
    assert produce_error(conf["alice"], "open") is None
    assert produce_error(conf["alice"], "named") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(conf["bob"], "named") is None
    # Invalid entries are refused with INVALID_REQUEST, and nothing is stored.
    bad = AclBinding(ResourceType.BROKER, "not-the-cluster", ResourcePatternType.LITERAL,
                     "User:alice", "*", AclOperation.ALTER, AclPermissionType.ALLOW)
    assert error_of(admin.create_acls([bad])[bad]) == KafkaError.INVALID_REQUEST
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert len(admin.describe_acls(everything).result(30)) == 1


def test_brokers_of_a_cluster_enforce_the_same_acls_at_once(floe_factory, tmp_path, postgres):
    from cluster import start_cluster, wait_for
    brokers = start_cluster(floe_factory, tmp_path, postgres, ids=(1, 2), extra=ACLS)
    conf = users(brokers[1])
    on = lambda conf, b: {**conf, "bootstrap.servers": brokers[b].bootstrap}
    admin1 = AdminClient(on(conf["admin"], 1))
    admin1.create_topics([NewTopic("shared", 1, 1)])["shared"].result(30)
    assert visible_topics(on(conf["alice"], 2)) == set()
    # Created through broker 1: listed by broker 2 at once (it reads the
    # store), enforced there as soon as the notification arrives.
    binding = allow(ResourceType.TOPIC, "shared", "User:alice", AclOperation.DESCRIBE)
    create_acls(admin1, [binding])
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    admin2 = AdminClient(on(conf["admin"], 2))
    assert len(admin2.describe_acls(everything).result(30)) == 1
    started = time.time()
    wait_for("broker 2 to enforce the new ACL",
             lambda: visible_topics(on(conf["alice"], 2)) == {"shared"}, timeout=2)
    # Deleted through broker 2: gone on broker 1 as quickly.
    admin2.delete_acls([everything])[everything].result(30)
    wait_for("broker 1 to drop the ACL",
             lambda: visible_topics(on(conf["alice"], 1)) == set(), timeout=2)
    assert time.time() - started < 4


CUSTOMER = """syntax = "proto3";
package acltest;
import "floe/policy/v1/policy.proto";
message Customer {
  string id = 1;
  string email = 2 [(floe.policy.v1.field) = {classification: "PII", purposes: ["support"]}];
}
"""


def test_a_table_loads_only_for_a_principal_that_may_see_every_column(floe_factory):
    """With --acls the catalog lists the tables of topics a principal may
    describe, and loads one only for a principal that may read the topic
    and holds a grant for every restricted field of its schemas."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import ForbiddenError

    floe = floe_factory(*ACLS)
    conf = users(floe)
    admin = AdminClient(conf["admin"])
    for t in ("customers", "clicks"):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    status, body = http(floe, "POST", "/subjects/customers-value/versions", {
        "schemaType": "PROTOBUF", "schema": CUSTOMER,
        "references": [{"name": "floe/policy/v1/policy.proto",
                        "subject": "floe/policy/v1/policy.proto", "version": 1}]}, auth=ADMIN)
    assert status == 200, body
    create_acls(admin, [
        allow(ResourceType.BROKER, "kafka-cluster", "User:alice", AclOperation.DESCRIBE),
        allow(ResourceType.TOPIC, "customers", "User:alice", AclOperation.READ),
        allow(ResourceType.TOPIC, "clicks", "User:alice", AclOperation.READ),
    ])
    uri = floe.http + "/iceberg"
    alice = RestCatalog("floe", uri=uri, credential="alice:alice-secret")
    assert {t[1] for t in alice.list_tables("floe")} == {"customers", "clicks"}
    assert alice.load_table("floe.clicks") is not None
    # customers holds an email only the `support` purpose may see.
    with pytest.raises(ForbiddenError) as refused:
        alice.load_table("floe.customers")
    assert "email" in str(refused.value) and "support" in str(refused.value)
    status, body = http(floe, "PUT", "/floe/grants/alice", {"purposes": ["support"]}, auth=ADMIN)
    assert status == 200, body
    assert alice.load_table("floe.customers") is not None
    # Bob may describe nothing here: he is shown no table and loads none.
    bob = RestCatalog("floe", uri=uri, credential="bob:bob-secret")
    assert bob.list_tables("floe") == []
    with pytest.raises(ForbiddenError):
        bob.load_table("floe.clicks")


PLAIN = 'syntax = "proto3";\npackage subjecttest;\nmessage %s { string id = 1; }\n'


def test_schema_subjects_follow_the_acls_of_their_topics(floe_factory):
    """Confluent's topic-based model: `<topic>-value` and `<topic>-key` are
    governed by the topic's ACLs (DESCRIBE to read, ALTER to register),
    other subjects by the cluster's; a schema by id is readable by who may
    read a subject using it; the subject list shows what one may see."""
    floe = floe_factory(*ACLS)
    conf = users(floe)
    admin = AdminClient(conf["admin"])
    for t in ("orders", "payments"):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    create_acls(admin, [allow(ResourceType.TOPIC, "orders", "User:alice", op)
                        for op in (AclOperation.DESCRIBE, AclOperation.ALTER)])
    alice = ("alice", "alice-secret")

    def register(subject, name, auth):
        return http(floe, "POST", f"/subjects/{subject}/versions",
                    {"schemaType": "PROTOBUF", "schema": PLAIN % name}, auth=auth)

    status, body = register("orders-value", "Order", alice)
    assert status == 200, body
    orders_id = body["id"]
    assert register("payments-value", "Payment", alice)[0] == 403
    assert register("com.acme.Thing", "Thing", alice)[0] == 403
    status, body = register("payments-value", "Payment", ADMIN)
    assert status == 200, body
    payments_id = body["id"]
    assert http(floe, "GET", "/subjects", auth=alice) == (200, ["orders-value"])
    assert http(floe, "GET", "/subjects/orders-value/versions", auth=alice)[0] == 200
    assert http(floe, "GET", "/subjects/payments-value/versions", auth=alice)[0] == 403
    assert http(floe, "GET", f"/schemas/ids/{orders_id}", auth=alice)[0] == 200
    assert http(floe, "GET", f"/schemas/ids/{payments_id}", auth=alice)[0] == 403
    assert http(floe, "GET", f"/schemas/ids/{orders_id}", auth=("bob", "bob-secret"))[0] == 403
    assert http(floe, "DELETE", "/subjects/payments-value", auth=alice)[0] == 403
    assert http(floe, "GET", "/subjects/payments-value/versions", auth=ADMIN) == (200, [1])
