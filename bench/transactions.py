"""Transactions benchmark (see transactions.sh). Values are unique random
bytes, so Parquet cannot shrink them. Prints, per run and as medians:
produce MB/s for idempotent produce and for transactions of 100 and 10 000
records, and read_committed end-to-end latency p50/p99."""

import argparse
import os
import statistics
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compaction import start_floe


def create(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def throughput(bootstrap, topic, records, value_bytes, per_txn):
    """MB/s of produce: idempotent when per_txn is 0, else in transactions
    of per_txn records."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
            "queue.buffering.max.messages": 1_000_000}
    if per_txn:
        conf["transactional.id"] = f"bench-{topic}"
    p = Producer(conf)
    if per_txn:
        p.init_transactions(30)
    values = [os.urandom(value_bytes) for _ in range(1000)]
    start = time.time()
    for i in range(records):
        if per_txn and i % per_txn == 0:
            p.begin_transaction()
        # Unique per record: a counter in front of random bytes.
        p.produce(topic, value=i.to_bytes(8, "big") + values[i % 1000])
        if i % 10_000 == 0:
            p.poll(0)
        if per_txn and (i + 1) % per_txn == 0:
            p.commit_transaction(60)
    if per_txn and records % per_txn:
        p.commit_transaction(60)
    p.flush(60)
    return records * (value_bytes + 8) / (time.time() - start) / 1e6


def latency(bootstrap, topic, samples):
    """Seconds from produce to a read_committed consumer's read, for one
    record per transaction."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat", "isolation.level": "read_committed",
                  "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "bench-latency", "linger.ms": 0})
    p.init_transactions(30)
    out = []
    for i in range(samples):
        sent = time.time()
        p.begin_transaction()
        p.produce(topic, value=str(i).encode(), partition=0)
        p.commit_transaction(30)
        while True:
            m = c.poll(5)
            if m is not None and not m.error() and m.value() == str(i).encode():
                out.append(time.time() - sent)
                break
    c.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--value-bytes", type=int, default=1024)
    ap.add_argument("--latency-samples", type=int, default=200)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, {args.records} records of {args.value_bytes} B per measure")
    results = {"idempotent": [], "txn 100": [], "txn 10000": [], "p50 ms": [], "p99 ms": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            proc, bootstrap, _ = start_floe(args.floe, d)
            try:
                for name, per_txn in (("idempotent", 0), ("txn 100", 100), ("txn 10000", 10_000)):
                    topic = f"t{per_txn}"
                    create(bootstrap, topic, 4)
                    results[name].append(throughput(bootstrap, topic, args.records, args.value_bytes, per_txn))
                create(bootstrap, "lat", 1)
                lat = sorted(latency(bootstrap, "lat", args.latency_samples))
                results["p50 ms"].append(lat[len(lat) // 2] * 1e3)
                results["p99 ms"].append(lat[int(len(lat) * 0.99) - 1] * 1e3)
            finally:
                proc.kill()
                proc.wait()
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()))
    print("median (runs): " + "; ".join(
        f"{k} {statistics.median(v):.1f} ({', '.join(f'{x:.1f}' for x in v)})" for k, v in results.items()))
    print("MB/s for the produce figures; ms for the latency of a read_committed consumer")


if __name__ == "__main__":
    main()
