"""Key compaction benchmark: one topic with cleanup.policy=compact, KEYS
keys updated UPDATES times each with unique random values (incompressible),
moved into the topic's table files, then compacted on request
(`POST /admin/topics/<t>/compact`). Prints, per run and as median and
spread: the bytes the compaction read and wrote, its time, MB/s rewritten
(bytes read per second), the size reduction, and the records a consumer
reads from offset 0 before and after.

Run with bench/compaction.sh (it builds floe and the Python environment).
Each run starts its own broker in a temporary directory."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

READY = re.compile(r"floe is ready kafka=(\S+) http=(\S+)")
PARTITIONS = 4


def start_floe(binary, data_dir):
    # Maintenance only at start: the bench compacts when it measures.
    proc = subprocess.Popen([binary, "serve", "--data-dir", str(data_dir), "--kafka-listen", "127.0.0.1:0",
                             "--http-listen", "127.0.0.1:0", "--maintenance-interval-secs", "3600"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = READY.search(line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), "http://" + m.group(2)
    proc.kill()
    raise RuntimeError("floe did not start")


def http(method, url):
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def produce(bootstrap, topic, records):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576})
    last = {}

    def report(err, msg):
        assert err is None, err
        last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    for i, (key, value, partition) in enumerate(records):
        while True:
            try:
                kwargs = {} if partition is None else {"partition": partition}
                p.produce(topic, key=key, value=value, on_delivery=report, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    return last


def settle(http_base, topic, last):
    """Waits until a table snapshot holds every partition's last offset."""
    for partition, offset in last.items():
        url = f"{http_base}/admin/topics/{topic}/snapshots?partition={partition}&offset={offset}"
        deadline = time.time() + 120
        while http("GET", url)[0] != 200:
            if time.time() > deadline:
                raise RuntimeError(f"partition {partition} offset {offset} not in a snapshot")
            time.sleep(0.1)


def count(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.max.bytes": 52_428_800})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    n, eof = 0, set()
    while len(eof) < PARTITIONS:
        for m in c.consume(10_000, 1.0):
            if m.error():
                eof.add(m.partition())
            else:
                n += 1
    c.close()
    return n


def one_run(binary, keys, updates, value_bytes):
    data = tempfile.mkdtemp(prefix="floe-compaction-bench-")
    proc, bootstrap, http_base = start_floe(binary, data)
    try:
        topic = "changelog"
        a = AdminClient({"bootstrap.servers": bootstrap})
        a.create_topics([NewTopic(topic, PARTITIONS, 1, config={
            "cleanup.policy": "compact", "floe.iceberg.commit.interval.ms": "1000"})])[topic].result(30)
        records = ((f"key-{k:06}".encode(), os.urandom(value_bytes), None)
                   for _ in range(updates) for k in range(keys))
        settle(http_base, topic, produce(bootstrap, topic, records))
        # The head: each partition's last segment, which compaction leaves.
        settle(http_base, topic, produce(bootstrap, topic, [(f"head-{p}".encode(), b"h", p) for p in range(PARTITIONS)]))
        before = count(bootstrap, topic)
        status, stats = http("POST", f"{http_base}/admin/topics/{topic}/compact")
        assert status == 200, status
        after = count(bootstrap, topic)
        return {**stats, "records_before": before, "records_after": after}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--value-bytes", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}; {args.keys} keys x {args.updates} updates of {args.value_bytes} random bytes, "
          f"{PARTITIONS} partitions")
    runs = []
    for i in range(args.runs):
        r = one_run(args.floe, args.keys, args.updates, args.value_bytes)
        mb_s = r["bytes_in"] / 1e6 / r["seconds"]
        runs.append((mb_s, r["bytes_in"] / max(r["bytes_out"], 1), r))
        print(f"run {i + 1}: read {r['bytes_in'] / 1e6:.1f} MB in {r['files_in']} files, wrote "
              f"{r['bytes_out'] / 1e6:.2f} MB in {r['seconds']:.2f} s: {mb_s:.1f} MB/s rewritten; "
              f"{r['bytes_in'] / max(r['bytes_out'], 1):.1f}x smaller; records from offset 0: "
              f"{r['records_before']} -> {r['records_after']}")
    rates = sorted(x[0] for x in runs)
    ratios = sorted(x[1] for x in runs)
    print(f"MB/s rewritten: median {statistics.median(rates):.1f} (runs {', '.join(f'{x:.1f}' for x in rates)})")
    print(f"size reduction: median {statistics.median(ratios):.1f}x (runs {', '.join(f'{x:.1f}' for x in ratios)})")


if __name__ == "__main__":
    main()
