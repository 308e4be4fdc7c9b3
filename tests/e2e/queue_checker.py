"""The consistency checker: Jepsen's queue workload against a real floe.

Idempotent producers (librdkafka) write unique values to two topics, one
without retention and one whose retention keeps deleting the oldest
segments. While they run, a consumer group (librdkafka, committing what it
has processed) and an assign() reader (kafka-python, an independent client)
read everything, and a nemesis hurts the broker: `kill -9` or SIGTERM and a
restart, object-store errors and stalls injected through floe's
fault-injecting store (`--fault-injection`, `PUT /admin/faults`), flush
commits whose reply is lost after the metadata store made them (as when
the connection to PostgreSQL drops during COMMIT), and a compaction forced
every second on top of maintenance every second.

Then the faults stop and the whole history is checked:

- every acknowledged record at or above its partition's final log start is
  read back exactly once, at the offset it was acknowledged with, by two
  client implementations, and the partition's offsets run from the log
  start to the high watermark without a gap (`lost`, `out_of_order`);
- no value is seen at two offsets, and no offset with two values, in the
  final reads or in anything a reader saw during the run (`duplicated`,
  `offset_reused`);
- nothing was read that was never sent (`unexpected`);
- the group consumed every acknowledged record of the topic without
  retention (`group_missed`: a stuck consumer) and the committed offsets it
  was told about never went backwards (`commit_backwards`);
- the broker's own invariant check (`GET /admin/topics/{t}/check`) finds
  nothing (`index_problems`);
- the Iceberg table, read with PyIceberg through floe's catalog, holds
  each (partition, offset) once, with the log's value, and every record of
  the log (`table_duplicated`, `table_missing`, `table_wrong`).

`python queue_checker.py --cycles 100` is the long run (bench/checker.sh);
test_checker.py runs a short one in CI.
"""

import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Floe  # noqa: E402

PARTITIONS = 4
TOPICS = {
    # Every acknowledged record must stay.
    "queue": {},
    # Retention keeps deleting the oldest segments (by size and by time).
    # segment.ms: compaction merges at most 2 s of writes into one file, so
    # files age out (as Kafka deletes only rolled segments).
    "queue-retained": {"retention.bytes": "32768", "retention.ms": "10000", "segment.ms": "2000"},
}
TABLE_CONFIG = {"floe.iceberg.commit.interval.ms": "1000"}
GROUP = "queue-checker"


def http(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


class History:
    """Everything that happened, from the clients' side."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}  # value -> (topic, partition)
        self.acked = {}  # value -> (topic, partition, offset)
        self.failed = {}  # value -> error text (indeterminate: may or may not be written)
        self.seen = defaultdict(dict)  # (topic, partition) -> {offset: value}, all readers
        self.conflicts = []  # (what, detail)
        self.group_seen = set()  # values the group consumed
        self.commits = defaultdict(list)  # (topic, partition) -> committed offsets observed
        self.read_errors = defaultdict(int)

    def saw(self, topic, partition, offset, value):
        with self.lock:
            seen = self.seen[(topic, partition)]
            old = seen.get(offset)
            if old is not None and old != value:
                self.conflicts.append(("offset_reused", f"{topic}/{partition}@{offset}: {old!r} then {value!r}"))
            seen[offset] = value


class Workload:
    def __init__(self, floe, history, rate):
        self.floe = floe
        self.h = history
        self.rate = rate
        self.stop = threading.Event()
        self.stop_producing = threading.Event()
        self.threads = []

    def start(self):
        for target in (self.produce, self.group_member, self.group_member, self.assign_reader, self.poll_commits):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)

    # Producers ----------------------------------------------------------

    def produce(self):
        p = Producer({
            "bootstrap.servers": self.floe.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 300_000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        })

        def report(err, msg, value):
            with self.h.lock:
                if err:
                    self.h.failed[value] = str(err)
                else:
                    self.h.acked[value] = (msg.topic(), msg.partition(), msg.offset())

        seq = 0
        topics = list(TOPICS)
        next_at = time.time()
        while not self.stop_producing.is_set():
            topic = topics[seq % len(topics)]
            partition = (seq // len(topics)) % PARTITIONS
            value = f"v{seq}-{random.getrandbits(48):012x}"
            with self.h.lock:
                self.h.sent[value] = (topic, partition)
            while True:
                try:
                    p.produce(topic, value=value.encode(), key=str(seq).encode(), partition=partition,
                              on_delivery=lambda e, m, v=value: report(e, m, v))
                    break
                except BufferError:
                    p.poll(0.05)
            seq += 1
            p.poll(0)
            next_at += 1.0 / self.rate
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
        remaining = p.flush(330)
        if remaining:
            self.h.conflicts.append(("producer", f"{remaining} records neither acknowledged nor failed"))

    # Readers ------------------------------------------------------------

    def group_member(self):
        c = Consumer({
            "bootstrap.servers": self.floe.bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 200,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        })
        c.subscribe(list(TOPICS))
        last_commit = time.time()
        try:
            while not self.stop.is_set():
                for m in c.consume(500, 0.5):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            with self.h.lock:
                                self.h.read_errors[m.error().name()] += 1
                        continue
                    value = m.value().decode()
                    self.h.saw(m.topic(), m.partition(), m.offset(), value)
                    with self.h.lock:
                        self.h.group_seen.add(value)
                if time.time() - last_commit > 0.3:
                    last_commit = time.time()
                    try:
                        c.commit(asynchronous=False)
                    except Exception:  # no offsets yet, a rebalance, a broker down: try again
                        pass
        finally:
            try:
                c.commit(asynchronous=False)
            except Exception:
                pass
            c.close()

    def assign_reader(self):
        """kafka-python, assign() and seek, no group: the independent client."""
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition as KTP
        while not self.stop.is_set():
            try:
                c = KafkaConsumer(bootstrap_servers=self.floe.bootstrap, enable_auto_commit=False,
                                  auto_offset_reset="earliest", fetch_max_wait_ms=200,
                                  request_timeout_ms=20_000, reconnect_backoff_max_ms=500)
                parts = [KTP(t, p) for t in TOPICS for p in range(PARTITIONS)]
                c.assign(parts)
                positions = getattr(self, "_positions", {})
                for tp in parts:
                    if tp in positions:
                        c.seek(tp, positions[tp])
                    else:
                        c.seek_to_beginning(tp)
                while not self.stop.is_set():
                    for tp, msgs in c.poll(timeout_ms=500, max_records=2000).items():
                        for m in msgs:
                            self.h.saw(m.topic, m.partition, m.offset, m.value.decode())
                            positions[tp] = m.offset + 1
                self._positions = positions
                c.close()
            except Exception as e:  # the broker went away mid-request: start over where we were
                with self.h.lock:
                    self.h.read_errors[f"kafka-python {type(e).__name__}"] += 1
                time.sleep(0.5)

    def poll_commits(self):
        while not self.stop.is_set():
            time.sleep(0.5)
            try:
                a = AdminClient({"bootstrap.servers": self.floe.bootstrap})
                from confluent_kafka import ConsumerGroupTopicPartitions
                futs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)], request_timeout=5)
                for tp in futs[GROUP].result(10).topic_partitions:
                    if tp.offset >= 0 and not tp.error:
                        with self.h.lock:
                            self.h.commits[(tp.topic, tp.partition)].append(tp.offset)
            except Exception:
                pass

    def finish(self, timeout=330):
        self.stop_producing.set()
        self.threads[0].join(timeout)

    def stop_readers(self):
        self.stop.set()
        for t in self.threads[1:]:
            t.join(30)


class Nemesis:
    def __init__(self, floe, ops):
        self.floe = floe
        self.ops = ops
        self.counts = defaultdict(int)
        self.stop = threading.Event()
        self.rates = {}
        self.injected = defaultdict(int)

    def faults(self, rates):
        self.rates = rates
        try:
            http("PUT", self.floe.http + "/admin/faults", rates, timeout=5)
        except (urllib.error.URLError, OSError):
            pass

    def collect_injected(self):
        """Adds what this broker process injected (its counts die with it)."""
        try:
            for k, n in http("GET", self.floe.http + "/admin/faults", timeout=5)["injected"].items():
                self.injected[k] += n
        except (urllib.error.URLError, OSError):
            pass

    def restart(self, kill):
        self.collect_injected()
        self.floe.restart(kill=kill)
        # A new process starts without faults: the nemesis's stay on.
        self.faults(self.rates)

    def cycle(self, i):
        op = self.ops[i % len(self.ops)]
        self.counts[op] += 1
        if op == "kill9":
            self.restart(kill=True)
        elif op == "term":
            self.restart(kill=False)
        elif op == "store-errors":
            self.faults({"put_error": 0.05, "get_error": 0.05, "delete_error": 0.2, "list_error": 0.2})
        elif op == "store-stalls":
            self.faults({"stall": 0.2, "stall_ms": 700})
        elif op == "commit-replies-lost":
            self.faults({"commit_reply_lost": 0.3})
        elif op == "heal":
            self.faults({})

    def force_compaction(self):
        while not self.stop.is_set():
            time.sleep(1)
            for t in TOPICS:
                try:
                    http("POST", f"{self.floe.http}/admin/topics/{t}/compact", timeout=20)
                    self.counts["compactions"] += 1
                except (urllib.error.URLError, OSError, ValueError):
                    pass


def read_everything(floe, topic):
    """Every partition from its log start to its high watermark, with
    librdkafka; returns ({partition: [(offset, value)]}, {p: (start, hw)})."""
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "queue-final", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    bounds = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in range(PARTITIONS)}
    c.assign([TopicPartition(topic, p, bounds[p][0]) for p in range(PARTITIONS)])
    out = {p: [] for p in range(PARTITIONS)}
    done = {p for p in range(PARTITIONS) if bounds[p][0] >= bounds[p][1]}
    deadline = time.time() + 300
    while len(done) < PARTITIONS and time.time() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(f"  final read {topic}: {m.error()}", flush=True)
                continue
            out[m.partition()].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= bounds[m.partition()][1]:
                done.add(m.partition())
    c.close()
    return out, bounds


def read_everything_kafka_python(floe, topic, bounds):
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=floe.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    parts = [KTP(topic, p) for p in range(PARTITIONS)]
    c.assign(parts)
    for tp in parts:
        c.seek(tp, bounds[tp.partition][0])
    out = {p: [] for p in range(PARTITIONS)}
    deadline = time.time() + 300
    while time.time() < deadline and any(
            (out[p][-1][0] + 1 if out[p] else bounds[p][0]) < bounds[p][1] for p in range(PARTITIONS)):
        for tp, msgs in c.poll(timeout_ms=1000, max_records=10000).items():
            out[tp.partition].extend((m.offset, m.value.decode()) for m in msgs)
    c.close()
    return out


def table_rows(floe, topic, bounds, timeout=120):
    """(partition, offset) -> [values] of the table's current snapshot, once
    a snapshot holds every partition's last offset."""
    from pyiceberg.catalog.rest import RestCatalog
    for p, (start, hw) in bounds.items():
        if hw == 0:
            continue
        url = f"{floe.http}/admin/topics/{topic}/snapshots?partition={p}&offset={hw - 1}"
        deadline = time.time() + timeout
        while True:
            try:
                http("GET", url, timeout=10)
                break
            except urllib.error.HTTPError:
                if time.time() > deadline:
                    raise AssertionError(f"no snapshot of {topic} holds {p}@{hw - 1} after {timeout}s")
                time.sleep(0.2)
    table = RestCatalog("floe", uri=floe.http + "/iceberg").load_table(f"floe.{topic}")
    d = table.scan(selected_fields=("partition", "offset", "value")).to_arrow().to_pydict()
    rows = defaultdict(list)
    for p, o, v in zip(d["partition"], d["offset"], d["value"]):
        rows[(p, o)].append(v.decode())
    return rows


def check(floe, h, group_lag_timeout=120):
    result = defaultdict(int)
    examples = defaultdict(list)

    def bad(kind, detail):
        result[kind] += 1
        if len(examples[kind]) < 5:
            examples[kind].append(detail)

    for what, detail in h.conflicts:
        bad(what, detail)
    for topic in TOPICS:
        final, bounds = read_everything(floe, topic)
        final_kp = read_everything_kafka_python(floe, topic, bounds)
        for p in range(PARTITIONS):
            start, hw = bounds[p]
            got = final[p]
            if [o for o, _ in got] != list(range(start, hw)):
                offsets = [o for o, _ in got]
                holes = sorted(set(range(start, hw)) - set(offsets))
                bad("out_of_order", f"{topic}/{p}: {len(got)} records for [{start}, {hw}), "
                                    f"{len(holes)} offsets missing (first {holes[:3]}), "
                                    f"sorted={offsets == sorted(offsets)}")
            if final_kp[p] != got:
                bad("clients_disagree", f"{topic}/{p}: kafka-python read {len(final_kp[p])} records, librdkafka {len(got)}")
            for o, v in got:
                h.saw(topic, p, o, v)
            result["records_read"] += len(got)
            result["log_start_moved"] += start > 0
        at = {(p, o): v for p in range(PARTITIONS) for o, v in final[p]}
        by_value = defaultdict(list)
        for (p, o), v in at.items():
            by_value[v].append((p, o))
        for v, places in by_value.items():
            if len(places) > 1:
                bad("duplicated", f"{topic}: {v} at {sorted(places)}")
            if v not in h.sent:
                bad("unexpected", f"{topic}: {v} at {places} was never sent")
            elif v not in h.acked and v not in h.failed:
                bad("unexpected", f"{topic}: {v} at {places} was neither acknowledged nor failed")
        for v, (t, p, o) in h.acked.items():
            if t != topic:
                continue
            if h.sent[v] != (t, p):
                bad("misplaced", f"{v} acknowledged on {t}/{p}, sent to {h.sent[v]}")
            start, hw = bounds[p]
            if o < start:
                result["acked_below_log_start"] += 1
                continue
            if at.get((p, o)) != v:
                bad("lost", f"{topic}/{p}@{o}: acknowledged {v}, read {at.get((p, o))!r}")
            else:
                result["acked_read_back"] += 1
        problems = http("GET", f"{floe.http}/admin/topics/{topic}/check", timeout=120)
        for m in problems["problems"]:
            bad("index_problems", f"{topic}: {m}")
        # The table: each row once, the log's value, every log record there.
        rows = table_rows(floe, topic, bounds)
        for (p, o), vs in rows.items():
            if len(vs) > 1:
                bad("table_duplicated", f"{topic}/{p}@{o} {len(vs)} times")
            want = at.get((p, o))
            if want is not None and vs[0] != want:
                bad("table_wrong", f"{topic}/{p}@{o}: table {vs[0]!r}, log {want!r}")
            if want is None:
                start, hw = bounds[p]
                if o >= start:
                    bad("table_extra", f"{topic}/{p}@{o} in the table, not in the log")
                else:
                    # Retention drops table rows by whole file (known, see
                    # the README); those rows must still be the right ones.
                    acked = next((v for v in vs if h.acked.get(v, (None,) * 3)[1:] == (p, o)), None)
                    if acked is None:
                        bad("table_wrong", f"{topic}/{p}@{o}: table {vs[0]!r} below the log start, never acknowledged there")
                    result["table_rows_below_log_start"] += 1
        for (p, o) in at:
            if (p, o) not in rows:
                bad("table_missing", f"{topic}/{p}@{o}")
        result["table_rows"] += len(rows)

    # Reads during the run: one value per offset (checked as they came),
    # and one offset per value.
    for (topic, p), seen in h.seen.items():
        where = defaultdict(list)
        for o, v in seen.items():
            where[v].append(o)
        for v, offsets in where.items():
            if len(offsets) > 1:
                bad("duplicated", f"{topic}/{p}: {v} seen at offsets {sorted(offsets)}")
    # The group caught up with everything in the topic without retention.
    for v, (t, p, o) in h.acked.items():
        if t == "queue" and v not in h.group_seen:
            bad("group_missed", f"{t}/{p}@{o} {v}")
    for (t, p), offsets in h.commits.items():
        for a, b in zip(offsets, offsets[1:]):
            if b < a:
                bad("commit_backwards", f"{t}/{p}: committed {a} then {b}")
                break
    result["acked"] = len(h.acked)
    result["failed_indeterminate"] = len(h.failed)
    return result, examples


VIOLATIONS = ["lost", "duplicated", "out_of_order", "offset_reused", "unexpected", "misplaced", "clients_disagree",
              "group_missed", "commit_backwards", "index_problems", "table_duplicated", "table_missing",
              "table_wrong", "table_extra", "producer"]


def wait_group_caught_up(floe, h, timeout):
    """Waits until the group has consumed every acknowledged record of the
    topic without retention (a stuck consumer never does)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with h.lock:
            missing = sum(1 for v, (t, _, _) in h.acked.items() if t == "queue" and v not in h.group_seen)
        if missing == 0:
            return
        time.sleep(0.5)


def run(data_dir, cycles, ops, rate, cycle_secs, seed, extra_args=()):
    floe = Floe(Path(data_dir), [
        "--fault-injection",
        "--maintenance-interval-secs", "1",
        "--compaction-target-bytes", str(256 * 1024),
        "--iceberg-snapshot-retention-secs", "5",
        "--orphan-grace-secs", "30",
        "--group-initial-rebalance-delay-ms", "200",
        *extra_args,
    ])
    floe.start()
    started = time.time()
    try:
        a = AdminClient({"bootstrap.servers": floe.bootstrap})
        futs = a.create_topics([NewTopic(t, PARTITIONS, 1, config={**TABLE_CONFIG, **c}) for t, c in TOPICS.items()])
        for f in futs.values():
            f.result(30)
        h = History()
        w = Workload(floe, h, rate)
        w.start()
        nemesis = Nemesis(floe, ops)
        compactor = threading.Thread(target=nemesis.force_compaction, daemon=True)
        compactor.start()
        rng = random.Random(seed)
        for i in range(cycles):
            time.sleep(rng.uniform(0.5, 1.5) * cycle_secs)
            nemesis.cycle(i)
            print(f"  cycle {i + 1}/{cycles}: {dict(nemesis.counts)} acked={len(h.acked)}", flush=True)
        # The faults stop; retention too, so that the final reads see a
        # log that holds still.
        nemesis.faults({})
        for t, c in TOPICS.items():
            if c:
                http("PATCH", f"{floe.http}/admin/topics/{t}/configs", {k: None for k in c})
        time.sleep(cycle_secs)
        w.finish()
        produce_secs = time.time() - started
        wait_group_caught_up(floe, h, 120)
        w.stop_readers()
        nemesis.stop.set()
        compactor.join(30)
        result, examples = check(floe, h)
        nemesis.collect_injected()
        faults = dict(nemesis.injected)
        return {
            "cycles": cycles,
            "nemesis": dict(nemesis.counts),
            "faults_injected": faults,
            "seconds": round(time.time() - started, 1),
            "produce_seconds": round(produce_secs, 1),
            "acked_per_second": round(result["acked"] / produce_secs, 1),
            "read_errors_during_run": dict(h.read_errors),
            **dict(result),
        }, examples
    finally:
        floe.kill9()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--ops", default="kill9", help="comma-separated nemesis ops: kill9, term, store-errors, "
                                                   "store-stalls, commit-replies-lost, heal")
    ap.add_argument("--rate", type=float, default=500, help="records per second produced")
    ap.add_argument("--cycle-secs", type=float, default=3.0, help="mean time between nemesis ops")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    import tempfile
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir or tmp) / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        print(f"queue checker: {args.cycles} cycles of {args.ops}, {args.rate:g} records/s, seed {seed}", flush=True)
        summary, examples = run(data, args.cycles, args.ops.split(","), args.rate, args.cycle_secs, seed)
    print(json.dumps(summary, indent=2))
    failed = {k: summary.get(k, 0) for k in VIOLATIONS if summary.get(k, 0)}
    for k in failed:
        print(f"{k}: {failed[k]}; for example {examples[k]}")
    print("PASS" if not failed else "FAIL")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
