"""A consume-transform-produce application with exactly-once semantics, as
Kafka's transactional clients write them: read `input` in a consumer group
(read_committed), write each value upper-cased to `output`, and commit the
group's offsets in the same transaction. Run by test_transactions.py, which
kills it (and the broker) with SIGKILL at random moments.

usage: eos_app.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID EXPECTED PER_TRANSACTION PROGRESS

PROGRESS is a file where it writes how many transactions it committed.

Exits 0 once the group's committed offsets cover EXPECTED input records."""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main():
    bootstrap, source, sink, group, txid, expected, per_txn, progress = sys.argv[1:9]
    expected, per_txn = int(expected), int(per_txn)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        # A restarted run takes the killed one's place in the group at
        # once (static membership) instead of waiting out its session.
        "group.instance.id": txid,
        "session.timeout.ms": 6000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 100,
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txid,
        "transaction.timeout.ms": 10000,
        "linger.ms": 5,
    })
    producer.init_transactions(60)
    consumer.subscribe([source])
    done_since = None
    commits = 0
    while True:
        msgs = consumer.consume(per_txn, 0.5)
        msgs = [m for m in msgs if not m.error()]
        if msgs:
            producer.begin_transaction()
            for m in msgs:
                producer.produce(sink, key=m.key(), value=m.value().upper())
            offsets = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
            try:
                producer.commit_transaction(60)
                commits += 1
                with open(progress, "w") as f:
                    f.write(str(commits))
            except KafkaException as e:
                if e.args[0].txn_requires_abort():
                    producer.abort_transaction(60)
                    # Back to what the group committed.
                    committed = consumer.committed(consumer.assignment(), 30)
                    for tp in committed:
                        consumer.seek(TopicPartition(tp.topic, tp.partition,
                                                     tp.offset if tp.offset >= 0 else 0))
                    continue
                raise
        committed = consumer.committed(consumer.assignment(), 30) if consumer.assignment() else []
        total = sum(max(tp.offset, 0) for tp in committed)
        if committed and total >= expected:
            done_since = done_since or time.time()
            if time.time() - done_since > 1:
                break
    consumer.close()


if __name__ == "__main__":
    main()
