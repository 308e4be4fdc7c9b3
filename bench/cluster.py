"""Throughput of three brokers against one: the same topics, records and
clients, on one PostgreSQL and one object store (a local directory, or
Garage with --s3). Producers (acks=all, idempotent) write --records
records of --record-bytes unique random bytes spread over --topics topics
of 4 partitions; then consumers read everything back from the start.
Each configuration runs --runs times; prints MB/s per run, the median and
the spread.

On one machine the brokers share its cores with each other and with the
clients: this measures what several brokers cost (placement rounds,
leases, routing, one metadata store shared), not how they scale.

Run with bench/cluster.sh (it builds floe, the Python environment, a
PostgreSQL server and, with --s3, Garage). FLOE_BENCH_BROKERS=3 runs one
configuration only; FLOE_BENCH_KEEP=1 keeps each run's directory with the
brokers' logs (b1.log, ...)."""

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

READY = re.compile(r"floe is ready kafka=(\S+) http=(\S+)")
PARTITIONS = 4


def start_broker(binary, broker_id, args, root):
    proc = subprocess.Popen(
        [binary, "serve", "--broker-id", str(broker_id), "--data-dir", str(root / f"b{broker_id}"),
         "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = READY.search(line)
        if m:
            log = open(root / f"b{broker_id}.log", "w")
            threading.Thread(target=lambda: [log.write(x) for x in proc.stderr], daemon=True).start()
            return proc, m.group(1), m.group(2)
    raise RuntimeError(f"broker {broker_id} did not start")


def produce(conf, topics, records, size, worker, out):
    """One producer process: `records` records, each value unique (the
    worker, a counter, then random bytes). `conf`: the client's connection
    settings (bootstrap.servers, security)."""
    p = Producer({**conf, "enable.idempotence": True, "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.kbytes": 262_144, "compression.type": "none"})
    noise = os.urandom(size * 1024)
    errors = [0]

    def report(err, _msg):
        if err:
            errors[0] += 1

    start = time.time()
    for i in range(records):
        at = (i * 7919) % (len(noise) - size)
        value = f"{worker}:{i}:".encode() + noise[at:at + size - 24]
        while True:
            try:
                p.produce(topics[i % len(topics)], value=value, partition=(i // len(topics)) % PARTITIONS,
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(300)
    out.put((start, time.time(), errors[0]))


def consume(conf, topics, expected, out):
    c = Consumer({**conf, "group.id": "bench-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800})
    c.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
    start, got, size = time.time(), 0, 0
    deadline = start + 300
    while got < expected and time.time() < deadline:
        for m in c.consume(10_000, 0.5):
            if not m.error():
                got += 1
                size += len(m.value())
    out.put((start, time.time(), got, size))
    c.close()


def measure(conf, topics, a):
    """Produces a.records records with a.producers processes, then reads
    them all back with one consumer; (produce MB/s, fetch MB/s, delivery
    errors, every record read)."""
    out = multiprocessing.Queue()
    per = a.records // a.producers
    workers = [multiprocessing.Process(target=produce, args=(conf, topics, per, a.record_bytes, w, out))
               for w in range(a.producers)]
    for w in workers:
        w.start()
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    errors = sum(r[2] for r in results)
    produce_s = max(r[1] for r in results) - min(r[0] for r in results)
    total = per * a.producers
    produce_mb = total * a.record_bytes / produce_s / 1e6
    reader = multiprocessing.Process(target=consume, args=(conf, topics, total, out))
    reader.start()
    start, end, got, size = out.get(timeout=600)
    reader.join()
    fetch_mb = size / (end - start) / 1e6
    return produce_mb, fetch_mb, errors, got == total


def report(label, rows):
    """Prints the median and the runs of each figure."""
    for name, col in (("produce", 0), ("fetch", 1)):
        vals = [r[col] for r in rows]
        print(f"{label} {name:<7} MB/s: median {statistics.median(vals):6.1f}  "
              f"runs {', '.join(f'{v:.1f}' for v in vals)}")
    bad = [r for r in rows if r[2] or not r[3]]
    if bad:
        print(f"  {len(bad)} run(s) with delivery errors or records missing: {bad}")


def run_once(a, brokers_n, pg_url):
    db = "floe_bench_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", pg_url, "-XAtqc", f"CREATE DATABASE {db}"], check=True)
    url = pg_url.rsplit("/", 1)[0] + "/" + db
    root = Path(tempfile.mkdtemp(prefix="floe-cluster-bench-"))
    store = f"s3://lake/{db}" if a.s3 else str(root / "objects")
    args = [f"--metadata={url}", f"--object-store={store}"]
    procs = []
    try:
        listeners = []
        for i in range(1, brokers_n + 1):
            proc, listen, _ = start_broker(a.floe, i, args, root)
            procs.append(proc)
            listeners.append(listen)
        bootstrap = ",".join(listeners)
        topics = [f"t{i}" for i in range(a.topics)]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
            f.result(30)
        # The placement spreads the topics (a move per second per broker):
        # measured once it has settled (no leader changed for 3 s).
        deadline, last, since = time.time() + 60, None, time.time()
        while time.time() < deadline:
            md = admin.list_topics(timeout=10)
            now = {t: md.topics[t].partitions[0].leader for t in topics if t in md.topics}
            if now != last or len(now) < len(topics) or -1 in now.values():
                last, since = now, time.time()
            elif time.time() - since >= 3:
                break
            time.sleep(0.2)
        return measure({"bootstrap.servers": bootstrap}, topics, a)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if not os.environ.get("FLOE_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(root)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--postgres", required=True, help="superuser URL of a PostgreSQL server")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--topics", type=int, default=6)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="the object store is Garage (AWS_* set by cluster.sh)")
    a = ap.parse_args()
    print(f"cluster throughput: {os.cpu_count()} cores, {a.records} records x {a.record_bytes} B (unique random), "
          f"{a.topics} topics x {PARTITIONS} partitions, {a.producers} producers, "
          f"{'Garage' if a.s3 else 'local-directory'} object store, PostgreSQL metadata")
    for n in [int(x) for x in os.environ.get("FLOE_BENCH_BROKERS", "1,3").split(",")]:
        rows = [run_once(a, n, a.postgres) for _ in range(a.runs)]
        report(f"{n} broker{'s' if n > 1 else ' '}", rows)


if __name__ == "__main__":
    main()
