"""Failover benchmark: three brokers on one PostgreSQL and one object store;
an idempotent producer writes to every topic without pause while the
leader of one topic after another is killed with SIGKILL and restarted.
For each kill it measures the time from the kill to the first
acknowledgement, from a broker that is still alive, of a record of a topic
the dead broker led. At the end every acknowledged record is read back and
counted (none lost, none doubled).

Run with bench/failover.sh (it builds floe, the Python environment and a
PostgreSQL server). Prints p50/p99/max over the kills."""

import argparse
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


class Broker:
    def __init__(self, binary, broker_id, args, root):
        self.binary, self.id, self.args, self.root = binary, broker_id, args, root
        self.listen = "127.0.0.1:0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--broker-id", str(self.id), "--data-dir", str(self.root / f"b{self.id}"),
             "--kafka-listen", self.listen, "--http-listen", "127.0.0.1:0", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            m = READY.search(line)
            if m:
                self.listen = m.group(1)
                threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
                return
        raise RuntimeError(f"broker {self.id} did not start")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


def leaders(bootstrap, topics):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {t: md.topics[t].partitions[0].leader for t in topics if t in md.topics}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", required=True)
    ap.add_argument("--postgres", required=True, help="superuser URL of a PostgreSQL server")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--topics", type=int, default=6)
    ap.add_argument("--lease-ms", type=int, default=6000, help="--broker-lease-ms (floe's default: 6000)")
    a = ap.parse_args()

    db = "floe_bench_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", a.postgres, "-XAtqc", f"CREATE DATABASE {db}"], check=True)
    url = a.postgres.rsplit("/", 1)[0] + "/" + db
    root = Path(tempfile.mkdtemp(prefix="floe-failover-"))
    args = [f"--metadata={url}", f"--object-store={root / 'objects'}", f"--broker-lease-ms={a.lease_ms}"]
    brokers = {i: Broker(a.floe, i, args, root) for i in (1, 2, 3)}
    for b in brokers.values():
        b.start()
    bootstrap = ",".join(b.listen for b in brokers.values())
    topics = [f"t{i}" for i in range(a.topics)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(30)
    time.sleep(8)  # the placement spreads the topics

    acked = {t: [] for t in topics}
    first_ack = {}
    lock = threading.Lock()
    stop = threading.Event()
    failed = []

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 120000})
        n = 0

        def report(err, msg, sent):
            if err:
                failed.append(err)
                return
            with lock:
                acked[msg.topic()].append(msg.offset())
                since = first_ack.get(msg.topic())
                # The first ack of a record queued after the kill.
                if since is not None and since[1] is None and sent >= since[0]:
                    first_ack[msg.topic()] = (since[0], time.time())

        while not stop.is_set():
            sent = time.time()
            for t in topics:
                p.produce(t, value=f"{t}-{n}".encode(),
                          on_delivery=lambda err, msg, sent=sent: report(err, msg, sent))
            n += 1
            p.poll(0.005)
        p.flush(120)

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(3)
    times = []
    try:
        for k in range(a.kills):
            placed = leaders(bootstrap, topics)
            victim = placed[topics[k % len(topics)]]
            moved = [t for t, b in placed.items() if b == victim]
            killed = time.time()
            with lock:
                for t in moved:
                    first_ack[t] = (killed, None)
            brokers[victim].kill9()
            deadline = killed + 120
            while time.time() < deadline:
                with lock:
                    done = [first_ack[t][1] for t in moved if first_ack[t][1] is not None]
                if len(done) == len(moved):
                    break
                time.sleep(0.05)
            with lock:
                for t in moved:
                    first_ack.pop(t, None)
            took = max(done) - killed if len(done) == len(moved) else float("inf")
            times.append(took)
            print(f"kill {k + 1}: broker {victim} (led {len(moved)} topics): producing again after {took:.2f} s",
                  flush=True)
            brokers[victim].start()  # same listener: it takes its id back at once
            time.sleep(8)  # it takes its share back, one topic a second
    finally:
        stop.set()
        time.sleep(5)
    total = sum(len(v) for v in acked.values())
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.partition.eof": True})
    read = {}
    for t in topics:
        c.assign([TopicPartition(t, 0, 0)])
        offsets = []
        while True:
            m = c.poll(5)
            if m is None:
                break
            if m.error():
                if m.error().code() == -191:
                    break
                raise RuntimeError(m.error())
            offsets.append(m.offset())
        read[t] = offsets
    c.close()
    lost = sum(len(set(acked[t]) - set(read[t])) for t in topics)
    doubled = sum(len(read[t]) - len(set(read[t])) for t in topics)
    for b in brokers.values():
        b.kill9()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"\nfailover, {len(times)} kills, lease {a.lease_ms} ms: p50 {statistics.median(times):.2f} s, "
          f"p99 {p99:.2f} s, max {times[-1]:.2f} s")
    print(f"acknowledged {total} records: {lost} lost, {doubled} read twice, {len(failed)} delivery errors")


if __name__ == "__main__":
    main()
