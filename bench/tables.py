"""Table benchmark: freshness (produce -> row visible to PyIceberg) at the
default commit cadence, then a PyIceberg full scan and time-range scan of a
large topic, and the bytes the topic takes on disk.

Run with bench/tables.sh (it builds floe and the Python environment).
Starts its own broker in a temporary directory; prints the figures."""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.expressions import GreaterThanOrEqual

READY = re.compile(r"floe is ready kafka=(\S+) http=(\S+)")


def start_floe(binary, data_dir):
    # Maintenance (and so compaction) only at start: the bench compacts
    # when it means to measure it.
    proc = subprocess.Popen([binary, "serve", "--data-dir", str(data_dir), "--kafka-listen", "127.0.0.1:0",
                             "--http-listen", "127.0.0.1:0", "--maintenance-interval-secs", "3600"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    for line in proc.stderr:
        m = READY.search(line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), "http://" + m.group(2)
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError("floe did not start")


def create(bootstrap, topic, partitions, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1, config=config or {})])[topic].result(30)


def covered(table):
    import json
    s = table.metadata.current_snapshot()
    if s is None:
        return {}
    return {int(k): v for k, v in json.loads(s.summary.additional_properties.get("floe.kafka.offsets", "{}")).items()}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def freshness(bootstrap, cat, seconds, interval_s):
    """One record every `interval_s` for `seconds`; each record's freshness
    is the time from its send to the first catalog load whose snapshot
    holds it (the catalog is polled every 50 ms)."""
    create(bootstrap, "fresh", 1)  # default commit cadence
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    sent = {}
    visible = {}
    done = threading.Event()

    def poll():
        table = None
        while not done.is_set() or len(visible) < len(sent):
            try:
                table = cat.load_table("floe.fresh")
            except Exception:
                time.sleep(0.05)
                continue
            now = time.time()
            top = covered(table).get(0, -1)
            for off in list(sent):
                if off <= top and off not in visible:
                    visible[off] = now
            if done.is_set() and time.time() - last_send[0] > 60:
                break
            time.sleep(0.05)

    last_send = [time.time()]
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        holder = {}
        p.produce("fresh", value=b"x" * 100, on_delivery=lambda e, m, h=holder: h.setdefault("off", m.offset()))
        p.flush(10)
        sent[holder["off"]] = t0
        last_send[0] = t0
        time.sleep(max(0.0, interval_s - (time.time() - t0)))
    done.set()
    poller.join(120)
    lat = [visible[o] - sent[o] for o in sent if o in visible]
    missing = len(sent) - len(lat)
    return lat, missing


def load(bootstrap, topic, total_bytes, record_bytes, partitions, span_ms):
    """Produces `total_bytes` of text-like values whose timestamps rise
    evenly over `span_ms` ending now."""
    create(bootstrap, topic, partitions, {"floe.iceberg.commit.interval.ms": "1000"})
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "compression.type": "zstd", "acks": "all", "queue.buffering.max.kbytes": 1_048_576})
    n = total_bytes // record_bytes
    now = int(time.time() * 1000)
    start = now - span_ms
    # Text-like values: a JSON head that varies per record, then words
    # drawn at random from a 2 000-word vocabulary. 10 007 distinct tails
    # (10 MB) rotate, more than zstd's window at floe's level, so values do
    # not compress against copies of themselves.
    import random
    rng = random.Random(7)
    vocab = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
             for _ in range(2000)]
    tails = []
    for _ in range(10_007):
        words = []
        size = 0
        while size < record_bytes:
            w = rng.choice(vocab)
            words.append(w)
            size += len(w) + 1
        tails.append(b" ".join(words))
    events = [b"click", b"view", b"purchase", b"search", b"scroll", b"share"]
    t0 = time.time()
    for i in range(n):
        body = b'{"user":%d,"event":"%s","session":"%08x","text":"' % (
            i % 100_000, events[i % len(events)], (i * 2654435761) & 0xFFFFFFFF)
        value = (body + tails[i % len(tails)])[:record_bytes - 2] + b'"}'
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions, timestamp=start + span_ms * i // n)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(600) == 0
    secs = time.time() - t0
    return n, secs


def scans(table, n, on_disk, span, when):
    import datetime as dt
    t0 = time.time()
    rows = 0
    for batch in table.scan().to_arrow_batch_reader():
        rows += batch.num_rows
    full = time.time() - t0
    assert rows == n, (rows, n)
    files = len(list(table.scan().plan_files()))
    print(f"PyIceberg full scan, {when}: {rows} rows from {files} files in {full:.1f} s "
          f"({on_disk / 1e6 / full:.0f} MB/s of Parquet, {rows / full:.0f} rows/s)")
    cut_ms = int(time.time() * 1000) - span // 10
    cut = dt.datetime.fromtimestamp(cut_ms / 1000, tz=dt.timezone.utc).isoformat()
    t0 = time.time()
    scan = table.scan(row_filter=GreaterThanOrEqual("timestamp", cut))
    planned = len(list(scan.plan_files()))
    rows = 0
    for batch in scan.to_arrow_batch_reader():
        rows += batch.num_rows
    ranged = time.time() - t0
    print(f"PyIceberg time-range scan (last 10% of the time span), {when}: {rows} rows, "
          f"{planned} of {files} files read, in {ranged:.1f} s")


def dir_bytes(path, suffix):
    return sum(f.stat().st_size for f in Path(path).rglob("*" + suffix))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--fresh-seconds", type=float, default=60)
    ap.add_argument("--fresh-interval", type=float, default=0.25)
    ap.add_argument("--gb", type=float, default=1.0, help="size of the scanned topic, GB of values")
    ap.add_argument("--record-bytes", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--skip-freshness", action="store_true")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="floe-bench-tables-"))
    proc, bootstrap, http = start_floe(args.floe, data)
    try:
        cat = RestCatalog("floe", uri=http + "/iceberg")
        print(f"cores: {os.cpu_count()}")
        if not args.skip_freshness:
            lat, missing = freshness(bootstrap, cat, args.fresh_seconds, args.fresh_interval)
            print(f"freshness at the default cadence (10 s), {len(lat)} records: "
                  f"p50 {pct(lat, 0.5):.2f} s, p99 {pct(lat, 0.99):.2f} s, max {max(lat):.2f} s"
                  + (f", {missing} never visible" if missing else ""))

        total = int(args.gb * 1e9)
        span = 10 * 3600 * 1000
        n, secs = load(bootstrap, "scan", total, args.record_bytes, args.partitions, span)
        print(f"loaded {n} records, {n * args.record_bytes / 1e9:.2f} GB of values in {secs:.1f} s "
              f"({n * args.record_bytes / 1e6 / secs:.1f} MB/s)")
        deadline = time.time() + 600
        while True:
            table = cat.load_table("floe.scan")
            c = covered(table)
            if len(c) == args.partitions and sum(v + 1 for v in c.values()) >= n:
                break
            if time.time() > deadline:
                raise RuntimeError(f"table did not catch up: {c}")
            time.sleep(0.5)
        on_disk = dir_bytes(data / "objects", ".parquet")
        print(f"on disk: {on_disk / 1e9:.2f} GB of Parquet for {n * args.record_bytes / 1e9:.2f} GB of values "
              f"({on_disk / (n * args.record_bytes):.2f}x)")

        scans(table, n, on_disk, span, "before compaction")

        import json
        import urllib.request
        req = urllib.request.Request(f"{http}/admin/topics/scan/compact", method="POST")
        with urllib.request.urlopen(req, timeout=3600) as r:
            c = json.loads(r.read())
        print(f"compaction: {c['files_in']} files ({c['bytes_in'] / 1e6:.0f} MB) into {c['files_out']} "
              f"({c['bytes_out'] / 1e6:.0f} MB) in {c['seconds']:.1f} s: "
              f"{c['bytes_in'] / 1e6 / c['seconds']:.1f} MB/s rewritten")
        # Each rewritten run is its own metadata commit, so the table may
        # take them over several rounds: wait for all of them.
        before = len(list(table.scan().plan_files()))
        expected = before - c["files_in"] + c["files_out"]
        deadline = time.time() + 120
        while True:
            table = cat.load_table("floe.scan")
            if len(list(table.scan().plan_files())) == expected:
                break
            if time.time() > deadline:
                raise RuntimeError("the table did not take the compaction")
            time.sleep(0.5)
        scans(table, n, on_disk, span, "after compaction")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
