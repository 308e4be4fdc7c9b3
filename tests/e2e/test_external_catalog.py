"""Tables registered in an external Iceberg REST catalog: registered at the
first snapshot, then kept level with floe's own table (appends, schema
changes, a delete, expired snapshots, a restart of floe), dropped with the
topic, and a table of the same name that is not floe's is left alone.

The external catalog is PyIceberg's SQL catalog behind REST routes
(`rest_catalog.py`), with OAuth2 client credentials and a path prefix;
engines read it with PyIceberg's own REST client."""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema as IcebergSchema
from pyiceberg.types import NestedField, StringType

from helpers import admin, create_topic, recent_ms
from test_tables import catalog, produce, wait_covered
from test_typed import KEY, ORDER_V1, ORDER_V2, classes, send_canonical

CREDENTIAL = "floe-broker:s3cret"
FAST = {"floe.iceberg.commit.interval.ms": "300"}


@pytest.fixture
def external(tmp_path):
    """Starts the external catalog on a free port; yields its URI."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("rest_catalog.py")), "--port", "0",
         "--dir", str(tmp_path / "external"), "--credential", CREDENTIAL],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (\d+)", line)
        assert m, f"external catalog did not start: {line}{proc.stdout.read() if proc.poll() is not None else ''}"
        yield f"http://127.0.0.1:{m.group(1)}"
    finally:
        proc.kill()
        proc.wait()


def ext_catalog(uri):
    return RestCatalog("ext", uri=uri, credential=CREDENTIAL)


def requests_seen(uri):
    with urllib.request.urlopen(uri + "/debug/requests", timeout=10) as r:
        return [tuple(x) for x in json.loads(r.read())["requests"]]


def wait_level(floe, uri, topic, timeout=30):
    """Waits until the external entry has floe's snapshots, branch and
    schemas; returns (floe's table, the external table)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ours = catalog(floe).load_table(f"floe.{topic}")
        try:
            theirs = ext_catalog(uri).load_table(f"floe.{topic}")
        except NoSuchTableError:
            theirs = None
        if theirs is not None:
            last = (theirs.metadata.current_snapshot_id, ours.metadata.current_snapshot_id)
            same = (
                theirs.metadata.current_snapshot_id == ours.metadata.current_snapshot_id
                and {s.snapshot_id for s in theirs.metadata.snapshots}
                == {s.snapshot_id for s in ours.metadata.snapshots}
                and theirs.metadata.current_schema_id == ours.metadata.current_schema_id
                and theirs.schema() == ours.schema()
            )
            if same:
                return ours, theirs
        time.sleep(0.2)
    raise AssertionError(f"external entry of {topic} did not catch up: {last}")


def positions(table):
    d = table.scan(selected_fields=("partition", "offset")).to_arrow().to_pydict()
    return sorted(zip(d["partition"], d["offset"]))


def test_tables_follow_every_snapshot_in_the_external_catalog(floe_factory, external):
    floe = floe_factory("--iceberg-external-catalog", external,
                        "--iceberg-external-credential", CREDENTIAL,
                        "--iceberg-snapshot-retention-secs", "2")
    topic = "ext_orders"
    create_topic(floe.bootstrap, topic, partitions=2, config=FAST)

    # Raw records first: the table is registered with floe's metadata file.
    raw = produce(floe.bootstrap, topic,
                  [(i % 2, None, f"raw-{i}".encode(), [], recent_ms()) for i in range(40)])
    for p in range(2):
        wait_covered(floe, topic, p, max(o for (q, o) in raw if q == p))
    ours, theirs = wait_level(floe, external, topic)
    assert ("floe",) in ext_catalog(external).list_namespaces()
    assert ("floe", topic) in ext_catalog(external).list_tables("floe")
    assert theirs.metadata.table_uuid == ours.metadata.table_uuid
    assert theirs.metadata.location == ours.metadata.location
    assert positions(theirs) == sorted(raw)
    seen = requests_seen(external)
    assert ("POST", f"/v1/ext/namespaces/floe/register", 200) in seen

    # Typed records under v1, then v2: the schema changes reach the entry.
    sr = SchemaRegistryClient({"url": floe.http})
    sr.register_schema(f"{topic}-key", Schema(KEY, "PROTOBUF"))
    K = classes(floe, f"{topic}-key", 1, "typed/key.proto", ["typed.OrderKey"])
    sr.register_schema(f"{topic}-value", Schema(ORDER_V1, "PROTOBUF"))
    M1 = classes(floe, f"{topic}-value", 1, "typed/order.proto", ["typed.Order"])
    send_canonical(floe, topic, M1, K, range(0, 20))
    for p in range(2):
        wait_covered(floe, topic, p, 29)
    wait_level(floe, external, topic)
    sr.register_schema(f"{topic}-value", Schema(ORDER_V2, "PROTOBUF"))
    M2 = classes(floe, f"{topic}-value", 2, "typed/order.proto", ["typed.Order"])
    send_canonical(floe, topic, M2, K, range(20, 40), v2=True)
    for p in range(2):
        wait_covered(floe, topic, p, 39)
    ours, theirs = wait_level(floe, external, topic)
    assert len(ours.metadata.schemas) >= 3, "raw, v1 and v2 columns"
    assert theirs.schema().find_field("value.amount")
    assert theirs.schema().find_field("value.coupon")
    assert theirs.schema().find_field("value_raw")
    # The entry moved on by commits of the external catalog's own, into its
    # own metadata files next to floe's.
    assert theirs.metadata_location != ours.metadata_location
    assert Path(theirs.metadata_location).parent == Path(ours.metadata_location).parent
    commits = [r for r in requests_seen(external)
               if r[:2] == ("POST", f"/v1/ext/namespaces/floe/tables/{topic}")]
    assert commits and all(code == 200 for (_, _, code) in commits), commits
    rows = theirs.scan(selected_fields=("partition", "offset", "value.id", "value.coupon")).to_arrow()
    assert rows.num_rows == 80
    ids = sorted(v["id"] for v in rows.column("value").to_pylist() if v is not None)
    assert ids == sorted(f"o-{i}" for i in range(40))

    # A restart of floe: the mirror picks up from what the catalog holds.
    floe.restart()
    more = produce(floe.bootstrap, topic,
                   [(0, None, f"late-{i}".encode(), [], recent_ms()) for i in range(10)])
    wait_covered(floe, topic, 0, max(o for (_, o) in more))
    ours, theirs = wait_level(floe, external, topic)
    assert positions(theirs) == positions(ours)
    assert len(positions(theirs)) == 90

    # DeleteRecords (of every record before the late ones: the table drops
    # whole files, and a flush file holds both partitions): a snapshot
    # removing them, then the older snapshots expire in both catalogs.
    start = min(o for (_, o) in more)
    a = admin(floe.bootstrap)  # must outlive its futures
    res = a.delete_records([TopicPartition(topic, 0, start), TopicPartition(topic, 1, 40)])
    for tp, fut in res.items():
        assert fut.result(30).low_watermark == (start if tp.partition == 0 else 40)
    deadline = time.time() + 30
    while time.time() < deadline:
        ours, theirs = wait_level(floe, external, topic)
        try:
            left = positions(theirs)
        except FileNotFoundError:
            continue  # expired under the reader (a 2 s retention)
        if left == sorted(more) and len(ours.metadata.snapshots) == 1:
            break
        time.sleep(0.3)
    assert positions(theirs) == sorted(more)
    assert len(theirs.metadata.snapshots) == 1, (
        "expired snapshots are removed from the entry", ours.metadata.snapshots)

    # Deleting the topic drops its entry.
    a.delete_topics([topic])[topic].result(30)
    deadline = time.time() + 30
    while time.time() < deadline and ext_catalog(external).table_exists(f"floe.{topic}"):
        time.sleep(0.2)
    assert not ext_catalog(external).table_exists(f"floe.{topic}")


def test_a_table_of_the_same_name_that_is_not_floes_is_left_alone(floe_factory, external, tmp_path):
    # Someone else's table named like the topic, registered beforehand.
    other_dir = tmp_path / "other"
    other = RestCatalog("ext", uri=external, credential=CREDENTIAL)
    other.create_namespace("floe")
    from pyiceberg.catalog.sql import SqlCatalog

    scratch = SqlCatalog("scratch", uri=f"sqlite:///{tmp_path / 'scratch.db'}",
                         warehouse=f"file://{other_dir}")
    scratch.create_namespace("floe")
    theirs = scratch.create_table("floe.taken", IcebergSchema(
        NestedField(1, "name", StringType(), required=False)))
    theirs.append(pa.table({"name": ["not floe's"]}))
    other.register_table("floe.taken", theirs.metadata_location)
    before = other.load_table("floe.taken").metadata_location

    floe = floe_factory("--iceberg-external-catalog", external,
                        "--iceberg-external-credential", CREDENTIAL)
    create_topic(floe.bootstrap, "taken", partitions=1, config=FAST)
    create_topic(floe.bootstrap, "free", partitions=1, config=FAST)
    for t in ("taken", "free"):
        placed = produce(floe.bootstrap, t, [(0, None, b"x", [], recent_ms())])
        wait_covered(floe, t, 0, max(o for (_, o) in placed))
    wait_level(floe, external, "free")
    assert floe.log_contains("another table of this name")
    after = other.load_table("floe.taken")
    assert after.metadata_location == before
    assert after.scan().to_arrow().column("name").to_pylist() == ["not floe's"]
