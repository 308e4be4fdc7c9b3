"""`/metrics` (issue 14): object-store requests by kind, produce and fetch
counts per topic, request latencies, flush sizes and table lag, in
Prometheus text format, counted from what real clients did."""

import os
import re
import time
import urllib.request

from confluent_kafka import Producer

from helpers import consume_all, create_topic


def scrape(f):
    with urllib.request.urlopen(f.http + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    series = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        series[name] = float(value)
    # Every series has a TYPE line.
    for name in {re.sub(r"(_bucket|_sum|_count)?\{.*", "", n) for n in series}:
        assert f"# TYPE {name} " in text or f"# TYPE {name.rsplit('_', 1)[0]} " in text, name
    return series


def test_metrics_count_what_clients_and_the_store_did(floe_factory):
    f = floe_factory()
    create_topic(f.bootstrap, "metered", 1, {"floe.iceberg.commit.interval.ms": "1000"})
    before = scrape(f)
    p = Producer({"bootstrap.servers": f.bootstrap, "linger.ms": 50})
    for i in range(100):
        p.produce("metered", value=b"%04d" % i + os.urandom(96))
    assert p.flush(30) == 0
    out = consume_all(f.bootstrap, "metered", 1, expected=100)
    assert len(out[0]) == 100
    m = scrape(f)
    assert m['floe_produce_records_total{topic="metered"}'] == 100
    assert m['floe_produce_bytes_total{topic="metered"}'] > 100 * 100
    assert m['floe_fetch_records_total{topic="metered"}'] >= 100
    puts = 'floe_object_store_requests_total{kind="put",class="data"}'
    assert m[puts] - before.get(puts, 0) >= 1
    put_bytes = 'floe_object_store_bytes_total{kind="put",class="data"}'
    assert m[put_bytes] - before.get(put_bytes, 0) >= 100 * 100
    assert m['floe_request_duration_seconds_count{api="Produce"}'] >= 1
    assert m['floe_request_duration_seconds_bucket{api="Produce",le="+Inf"}'] == \
        m['floe_request_duration_seconds_count{api="Produce"}']
    assert m["floe_flush_records_sum"] >= 100
    assert m["floe_flush_bytes_count"] >= 1
    assert m["floe_connections"] >= 0
    # Memory by use, each within the broker's bound; the tail caches hold
    # the records just produced.
    uses = ("buffers", "tail_cache", "read_ahead", "footers", "intake")
    for use in uses:
        used = m[f'floe_memory_bytes{{use="{use}"}}']
        assert 0 <= used <= m[f'floe_memory_limit_bytes{{use="{use}"}}'], use
    assert m['floe_memory_bytes{use="tail_cache"}'] >= 100 * 100
    assert sum(m[f'floe_memory_limit_bytes{{use="{u}"}}']
               for u in uses) == 1 << 30
    # The table takes the records in within its commit interval; the lag
    # gauge comes back to zero.
    deadline = time.time() + 20
    while time.time() < deadline:
        m = scrape(f)
        if m['floe_table_snapshot_lag_seconds{topic="metered"}'] == 0:
            break
        time.sleep(0.5)
    assert m['floe_table_snapshot_lag_seconds{topic="metered"}'] == 0
    assert m['floe_object_store_requests_total{kind="put",class="table"}'] >= 1
    # A restart brings the metrics back to zero, not the data.
    f.restart()
    m = scrape(f)
    assert m.get('floe_produce_records_total{topic="metered"}', 0) == 0
