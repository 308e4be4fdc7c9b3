"""Every topic is an Iceberg table: PyIceberg through floe's REST catalog,
DuckDB and pyarrow on the data files, offset <-> snapshot lookups,
time-range pruning, and DeleteRecords removing rows from the table."""

import datetime as dt
import json
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer, TopicPartition
from kafka import KafkaProducer
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.expressions import GreaterThanOrEqual

from helpers import admin, consume_all, create_topic, recent_ms

FAST = {"floe.iceberg.commit.interval.ms": "300"}


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def catalog(floe):
    return RestCatalog("floe", uri=floe.http + "/iceberg")


def produce(bootstrap, topic, records):
    """records: (partition, key, value, headers, timestamp_ms). Returns
    {(partition, offset): record} from the delivery reports."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    placed = {}

    def report(err, msg, rec):
        assert err is None, err
        placed[(msg.partition(), msg.offset())] = rec

    for rec in records:
        part, key, value, headers, ts = rec
        p.produce(topic, value=value, key=key, partition=part, headers=headers,
                  timestamp=ts, on_delivery=lambda e, m, rec=rec: report(e, m, rec))
    assert p.flush(30) == 0
    return placed


def wait_covered(floe, topic, partition, offset, timeout=30):
    """Waits until a snapshot holds `offset` of `partition`; returns it."""
    url = f"{floe.http}/admin/topics/{topic}/snapshots?partition={partition}&offset={offset}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if status_of(url) == 200:
            return get_json(url)
        time.sleep(0.1)
    raise AssertionError(f"no snapshot covered {topic}/{partition}@{offset} in {timeout}s")


def rows_by_position(table):
    d = table.to_pydict()
    return {
        (d["partition"][i], d["offset"][i]): (d["key"][i], d["value"][i], d["timestamp"][i], d["headers"][i])
        for i in range(table.num_rows)
    }


def local_path(uri):
    assert uri.startswith("file://"), uri
    return urlparse(uri).path


def test_pyiceberg_duckdb_and_pyarrow_read_the_topic(floe):
    topic = "orders"
    create_topic(floe.bootstrap, topic, partitions=3, config=FAST)
    base = recent_ms(60_000)
    recs = [
        (i % 3, f"k{i}".encode() if i % 7 else None, f"value-{i}".encode() if i % 11 else None,
         [("h", f"{i}".encode())] if i % 2 else [], base + i)
        for i in range(300)
    ]
    placed = produce(floe.bootstrap, topic, recs)
    # An independent client writes to the same table.
    kp = KafkaProducer(bootstrap_servers=floe.bootstrap, acks="all")
    futures = [kp.send(topic, key=b"kp", value=f"kp-{i}".encode(), partition=1,
                       timestamp_ms=base + 1000 + i) for i in range(20)]
    for i, f in enumerate(futures):
        md = f.get(30)
        placed[(md.partition, md.offset)] = (1, b"kp", f"kp-{i}".encode(), [], base + 1000 + i)
    kp.close()
    for p in range(3):
        last = max(o for (q, o) in placed if q == p)
        wait_covered(floe, topic, p, last)

    cat = catalog(floe)
    assert ("floe",) in cat.list_namespaces()
    assert ("floe", topic) in cat.list_tables("floe")
    table = cat.load_table(f"floe.{topic}")
    schema = {f.name: str(f.field_type) for f in table.schema().fields}
    assert schema["partition"] == "int" and schema["offset"] == "long"
    assert schema["timestamp"] == "timestamptz" and schema["append_time"] == "timestamptz"
    assert schema["key"] == "binary" and schema["value"] == "binary"
    assert [f.name for f in table.spec().fields] == ["append_time_day"]
    assert [f.source_id for f in table.sort_order().fields] == [1, 2]

    got = rows_by_position(table.scan().to_arrow())
    assert set(got) == set(placed)
    for pos, (part, key, value, headers, ts) in placed.items():
        gkey, gvalue, gts, gheaders = got[pos]
        assert (gkey, gvalue) == (key, value), pos
        assert int(gts.timestamp() * 1000) == ts, pos
        assert [(h["key"], h["value"]) for h in gheaders] == headers, pos

    # The same rows straight from the data files, with DuckDB and pyarrow.
    files = [local_path(t.file.file_path) for t in table.scan().plan_files()]
    assert files and all(Path(f).exists() for f in files)
    direct = pq.read_table(files, columns=["partition", "offset", "key", "value"]).to_pydict()
    assert {(direct["partition"][i], direct["offset"][i]): (direct["key"][i], direct["value"][i])
            for i in range(len(direct["offset"]))} == {k: (v[1], v[2]) for k, v in placed.items()}
    con = duckdb.connect()
    n, distinct, max_off = con.execute(
        "SELECT count(*), count(DISTINCT (partition, \"offset\")), max(\"offset\") FROM read_parquet(?)",
        [files],
    ).fetchone()
    assert n == distinct == len(placed)
    assert max_off == max(o for (_, o) in placed)


def test_time_range_scan_skips_files(floe):
    topic = "events"
    create_topic(floe.bootstrap, topic, partitions=1, config=FAST)
    old, new = recent_ms(3_000_000), recent_ms(1_000)
    first = produce(floe.bootstrap, topic, [(0, None, f"old-{i}".encode(), [], old + i) for i in range(50)])
    wait_covered(floe, topic, 0, max(o for (_, o) in first))
    second = produce(floe.bootstrap, topic, [(0, None, f"new-{i}".encode(), [], new + i) for i in range(50)])
    wait_covered(floe, topic, 0, max(o for (_, o) in second))

    table = catalog(floe).load_table(f"floe.{topic}")
    all_files = list(table.scan().plan_files())
    cut = dt.datetime.fromtimestamp(new / 1000, tz=dt.timezone.utc).isoformat()
    scan = table.scan(row_filter=GreaterThanOrEqual("timestamp", cut))
    planned = list(scan.plan_files())
    assert len(all_files) >= 2
    assert 0 < len(planned) < len(all_files), "the time filter pruned no file"
    values = sorted(scan.to_arrow().column("value").to_pylist())
    assert values == sorted(f"new-{i}".encode() for i in range(50))


def test_offset_snapshot_lookups(floe):
    topic = "lookups"
    create_topic(floe.bootstrap, topic, partitions=2, config=FAST)
    first = produce(floe.bootstrap, topic, [(i % 2, None, b"a", [], recent_ms()) for i in range(10)])
    s1 = wait_covered(floe, topic, 1, max(o for (p, o) in first if p == 1))
    second = produce(floe.bootstrap, topic, [(0, None, b"b", [], recent_ms()) for _ in range(10)])
    last0 = max(o for (p, o) in second if p == 0)
    s2 = wait_covered(floe, topic, 0, last0)
    assert s2["snapshot_id"] != s1["snapshot_id"]
    assert s2["offsets"]["0"] >= last0 and s1["offsets"]["0"] < last0
    # The reverse: what a snapshot holds.
    back = get_json(f"{floe.http}/admin/topics/{topic}/snapshots/{s1['snapshot_id']}")
    assert back == s1
    # The first snapshot covering an offset of the first batch is no later than s1.
    early = wait_covered(floe, topic, 0, 0)
    assert early["timestamp_ms"] <= s1["timestamp_ms"]
    listed = get_json(f"{floe.http}/admin/topics/{topic}/snapshots")["snapshots"]
    assert [s["snapshot_id"] for s in listed][-1] == s2["snapshot_id"] or len(listed) > 2
    # The table at s1 holds exactly the offsets s1 says, and not the second batch.
    table = catalog(floe).load_table(f"floe.{topic}")
    at_s1 = table.scan(snapshot_id=s1["snapshot_id"]).to_arrow().to_pydict()
    for p in (0, 1):
        offs = [o for q, o in zip(at_s1["partition"], at_s1["offset"]) if q == p]
        assert max(offs) == s1["offsets"][str(p)]
    assert status_of(f"{floe.http}/admin/topics/{topic}/snapshots?partition=0&offset={last0 + 1}") == 404
    assert status_of(f"{floe.http}/admin/topics/{topic}/snapshots/12345") == 404
    assert status_of(f"{floe.http}/admin/topics/nope/snapshots") == 404


def test_delete_records_removes_rows_from_the_table(floe_factory):
    floe = floe_factory("--iceberg-snapshot-retention-secs", "1")
    topic = "trimmed"
    create_topic(floe.bootstrap, topic, partitions=1, config=FAST)
    first = produce(floe.bootstrap, topic, [(0, None, f"gone-{i}".encode(), [], recent_ms()) for i in range(30)])
    wait_covered(floe, topic, 0, max(o for (_, o) in first))
    table = catalog(floe).load_table(f"floe.{topic}")
    first_files = {local_path(t.file.file_path) for t in table.scan().plan_files()}
    second = produce(floe.bootstrap, topic, [(0, None, f"kept-{i}".encode(), [], recent_ms()) for i in range(30)])
    start = min(o for (_, o) in second)
    wait_covered(floe, topic, 0, max(o for (_, o) in second))

    a = admin(floe.bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, start)])
    for fut in res.values():
        assert fut.result(30).low_watermark == start

    deadline = time.time() + 30
    while time.time() < deadline:
        table = catalog(floe).load_table(f"floe.{topic}")
        values = table.scan().to_arrow().column("value").to_pylist()
        if not any(v.startswith(b"gone-") for v in values):
            break
        time.sleep(0.2)
    assert sorted(values) == sorted(f"kept-{i}".encode() for i in range(30))
    assert table.current_snapshot().summary.operation.value == "delete"
    # Once no snapshot refers to them, the files go from the object store.
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f).exists() for f in first_files):
        time.sleep(0.2)
    assert not any(Path(f).exists() for f in first_files)


def test_catalog_is_read_only_and_answers_unknown_names(floe):
    create_topic(floe.bootstrap, "present", partitions=1)
    cat = catalog(floe)
    assert status_of(f"{floe.http}/iceberg/v1/namespaces/elsewhere/tables") == 404
    assert status_of(f"{floe.http}/iceberg/v1/namespaces/floe/tables/absent") == 404
    # A topic without data is an empty table.
    table = cat.load_table("floe.present")
    assert table.scan().to_arrow().num_rows == 0
    req = urllib.request.Request(f"{floe.http}/iceberg/v1/namespaces/floe/tables", method="POST",
                                 data=b"{}", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 406
    assert json.loads(e.value.read())["error"]["type"] == "UnsupportedOperationException"
    # What the catalog serves, for clients that ask (Java's, since 1.7).
    endpoints = get_json(f"{floe.http}/iceberg/v1/config")["endpoints"]
    assert "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}" in endpoints
    assert not any(e.startswith(("POST", "DELETE")) and not e.endswith("/metrics") for e in endpoints)
    # Scan reports are taken (and dropped); there are no views.
    report = urllib.request.Request(
        f"{floe.http}/iceberg/v1/namespaces/floe/tables/present/metrics", method="POST",
        data=json.dumps({"report-type": "scan-report", "table-name": "floe.present"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(report, timeout=10) as r:
        assert r.status == 204
    assert get_json(f"{floe.http}/iceberg/v1/namespaces/floe/views") == {"identifiers": []}
    assert status_of(f"{floe.http}/iceberg/v1/namespaces/elsewhere/views") == 404


def test_compaction_under_produce_and_consume_changes_nothing_readers_see(floe_factory):
    import threading

    from confluent_kafka import Consumer

    from helpers import consume_all

    floe = floe_factory("--maintenance-interval-secs", "1", "--compaction-target-bytes", "400000",
                        "--iceberg-snapshot-retention-secs", "3")
    topic = "compacted"
    create_topic(floe.bootstrap, topic, partitions=3, config=FAST)
    placed = {}
    stop = threading.Event()
    seen = {}

    def consume():
        c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "compaction-reader",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        c.assign([TopicPartition(topic, p, 0) for p in range(3)])
        try:
            while not stop.is_set():
                for m in c.consume(1000, 0.2):
                    assert m.error() is None, m.error()
                    assert (m.partition(), m.offset()) not in seen, "delivered twice"
                    seen[(m.partition(), m.offset())] = (m.key(), m.value())
        finally:
            c.close()

    reader = threading.Thread(target=consume)
    reader.start()
    try:
        # Many small flushes, while compaction rewrites the earlier ones.
        for round_ in range(60):
            batch = [(i % 3, f"k{round_}-{i}".encode(), (f"v{round_}-{i}-" + "x" * (i % 50)).encode(), [],
                      recent_ms()) for i in range(30)]
            placed.update(produce(floe.bootstrap, topic, batch))
            time.sleep(0.05)
        deadline = time.time() + 60
        while time.time() < deadline:
            ops = [s["operation"] for s in get_json(f"{floe.http}/admin/topics/{topic}/snapshots")["snapshots"]]
            if "replace" in ops and len(seen) >= len(placed):
                break
            time.sleep(0.3)
        assert "replace" in ops, f"no compaction snapshot: {ops}"
        assert floe.log_contains("compacted")
    finally:
        stop.set()
        reader.join(30)
    assert {k: v for k, v in seen.items()} == {k: (r[1], r[2]) for k, r in placed.items()}

    # The table: every record once, in fewer files than flushes.
    for p in range(3):
        wait_covered(floe, topic, p, max(o for (q, o) in placed if q == p))
    deadline = time.time() + 30
    while True:
        table = catalog(floe).load_table(f"floe.{topic}")
        rows = table.scan().to_arrow()
        files = list(table.scan().plan_files())
        if rows.num_rows == len(placed) or time.time() > deadline:
            break
        time.sleep(0.3)
    got = rows_by_position(rows)
    assert rows.num_rows == len(got) == len(placed)
    assert {k: (v[0], v[1]) for k, v in got.items()} == {k: (r[1], r[2]) for k, r in placed.items()}
    assert len(files) < 60, f"{len(files)} files for 60 flushes"

    # From Parquet after a restart (no tail cache): byte for byte.
    floe.restart()
    again = consume_all(floe.bootstrap, topic, 3, expected=len(placed))
    assert {(m.partition(), m.offset()): (m.key(), m.value()) for ms in again.values() for m in ms} == \
        {k: (r[1], r[2]) for k, r in placed.items()}


def test_delete_records_through_the_middle_of_a_file_removes_just_those_rows_from_the_table(floe_factory):
    """Files hold several partitions and the table drops only whole files:
    a log start inside a file has the file rewritten without the rows below
    it, in the log and in the table, and it stays so across kill -9."""
    from kafka.admin import KafkaAdminClient
    from kafka.structs import TopicPartition as KafkaTopicPartition

    f = floe_factory("--iceberg-snapshot-retention-secs", "1")
    topic = "cut"
    create_topic(f.bootstrap, topic, partitions=2, config=FAST)
    # One produce request per partition: each partition's rows are one run
    # of one file.
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 200, "batch.num.messages": 1000})
    for i in range(400):
        p.produce(topic, value=f"{i % 2}-{i // 2}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    wait_covered(f, topic, 0, 199)
    wait_covered(f, topic, 1, 199)

    # librdkafka cuts partition 0 at 120, kafka-python partition 1 at 30.
    a = admin(f.bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, 120)])
    assert [fut.result(30).low_watermark for fut in res.values()] == [120]
    ka = KafkaAdminClient(bootstrap_servers=f.bootstrap)
    done = ka.delete_records({KafkaTopicPartition(topic, 1): 30})
    ka.close()
    assert [v["low_watermark"] for v in done.values()] == [30]

    expected = sorted([f"0-{i}" for i in range(120, 200)] + [f"1-{i}" for i in range(30, 200)])

    def table_values():
        return sorted(v.decode() for v in catalog(f).load_table(f"floe.{topic}").scan().to_arrow()
                      .column("value").to_pylist())

    deadline = time.time() + 30
    while table_values() != expected:
        assert time.time() < deadline, f"the table still shows {len(table_values()) - len(expected)} deleted rows"
        time.sleep(0.3)
    assert catalog(f).load_table(f"floe.{topic}").current_snapshot().summary.operation.value == "overwrite"

    def kafka_values():
        got = consume_all(f.bootstrap, topic, 2, expected=len(expected), start=-2)
        return sorted(m.value().decode() for msgs in got.values() for m in msgs)

    assert kafka_values() == expected
    f.restart(kill=True)
    assert kafka_values() == expected
    assert table_values() == expected
