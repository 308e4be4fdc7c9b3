"""The s3:// object store against a real S3-compatible server (s3rver,
installed by scripts/test.sh): produce, restart, read back from Parquet over
S3, and find the files in the bucket."""

import os
import time
from pathlib import Path

from confluent_kafka import Producer

from helpers import consume_all, create_topic


def test_topics_live_in_an_s3_bucket(s3, floe_factory):
    endpoint, root = s3
    f = floe_factory("--object-store", "s3://lake/warehouse/floe")
    create_topic(f.bootstrap, "events", 2, {"floe.iceberg.commit.interval.ms": "1000"})
    p = Producer({"bootstrap.servers": f.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(5000):
        p.produce("events", key=str(i).encode(), value=os.urandom(100) + str(i).encode(), partition=i % 2)
    assert p.flush(60) == 0
    f.restart()
    got = consume_all(f.bootstrap, "events", 2, expected=5000)
    assert sorted(int(m.key()) for msgs in got.values() for m in msgs) == list(range(5000))
    # Small flushes share the intake; the table commit moves the topic's
    # rows into its own Parquet files and empties the intake.
    bucket = Path(root, "lake", "warehouse", "floe")
    deadline = time.time() + 30
    while list((bucket / "intake").rglob("*._S3rver_object")):
        assert time.time() < deadline, "the intake was never emptied"
        time.sleep(0.2)
    objects = list((bucket / "topics").rglob("*.parquet._S3rver_object"))
    assert objects, "Parquet files are in the bucket under the prefix"
    got = consume_all(f.bootstrap, "events", 2, expected=5000)
    assert sorted(int(m.key()) for msgs in got.values() for m in msgs) == list(range(5000))
    assert not (f.data_dir / "objects").exists(), "nothing went to the local directory"
    assert "flush_linger_ms=200" in f.log_text(), "S3 stores default to the cost-latency linger"


def test_pyiceberg_reads_a_table_from_the_bucket(s3, floe_factory):
    import json
    import urllib.request

    from pyiceberg.catalog.rest import RestCatalog

    endpoint, _ = s3
    f = floe_factory("--object-store", "s3://lake/warehouse/floe")
    create_topic(f.bootstrap, "clicks", 1, {"floe.iceberg.commit.interval.ms": "300"})
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 5})
    for i in range(500):
        p.produce("clicks", value=f"click-{i}".encode())
    assert p.flush(60) == 0
    url = f"{f.http}/admin/topics/clicks/snapshots?partition=0&offset=499"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                json.loads(r.read())
            break
        except urllib.error.HTTPError:
            assert time.time() < deadline, "no snapshot holds the records"
            time.sleep(0.2)
    # The catalog hands out the endpoint; credentials are the reader's own.
    cat = RestCatalog("floe", uri=f.http + "/iceberg",
                      **{"s3.access-key-id": "S3RVER", "s3.secret-access-key": "S3RVER"})
    table = cat.load_table("floe.clicks")
    assert table.metadata.location.startswith("s3://lake/warehouse/floe/topics/clicks-")
    values = sorted(table.scan().to_arrow().column("value").to_pylist())
    assert values == sorted(f"click-{i}".encode() for i in range(500))


def test_a_stateless_broker_on_postgres_and_s3_is_replaced_on_another_machine(s3, floe_factory, tmp_path, postgres):
    """Everything lives in PostgreSQL and the bucket: a broker killed with
    -9 is replaced by one with an empty data directory and another
    listener (another machine), which serves every acknowledged record and
    the table."""
    from pyiceberg.catalog.rest import RestCatalog

    args = ("--object-store", "s3://lake/warehouse/floe", f"--metadata={postgres}", "--broker-lease-ms=2000",
            "--flush-linger-ms=20")
    f = floe_factory(*args, data_dir=tmp_path / "machine-a")
    create_topic(f.bootstrap, "payments", 3, {"floe.iceberg.commit.interval.ms": "500"})
    errors = []
    p = Producer({"bootstrap.servers": f.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(3000):
        p.produce("payments", key=str(i).encode(), value=os.urandom(64) + str(i).encode(), partition=i % 3,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(60) == 0 and not errors
    f.kill9()
    g = floe_factory(*args, data_dir=tmp_path / "machine-b")
    assert g.bootstrap != f.bootstrap
    got = consume_all(g.bootstrap, "payments", 3, expected=3000)
    assert sorted(int(m.key()) for msgs in got.values() for m in msgs) == list(range(3000))
    for msgs in got.values():
        assert [m.offset() for m in msgs] == list(range(len(msgs)))
    cat = RestCatalog("floe", uri=g.http + "/iceberg",
                      **{"s3.access-key-id": "S3RVER", "s3.secret-access-key": "S3RVER"})
    deadline = time.time() + 30
    while True:
        rows = cat.load_table("floe.payments").scan().to_arrow().num_rows
        if rows == 3000:
            break
        assert rows < 3000 and time.time() < deadline, f"the table holds {rows} rows"
        time.sleep(0.5)
    assert not (tmp_path / "machine-b" / "objects").exists()
