-- Kafka transactions (KIP-98).
--
-- `transactions`: the coordinator's state of each transactional id, so a
-- restart (or the next coordinator) finishes what was prepared. The
-- partitions and the offsets a transaction commits for groups are JSON.
-- `previous_producer_*` is the producer a transactions-v2 EndTxn came
-- from before it bumped the epoch (-1 when none), so a retry of that
-- EndTxn is told apart from a fenced producer (KIP-890).
--
-- `open_transactions`: per partition, each producer's transaction still
-- open there, with the offset ranges of its batches (JSON pairs): the
-- first one bounds the partition's last stable offset.
--
-- `transaction_markers`: per partition, each transaction's end, at the
-- offset of its control record, with the ranges it covered: how reads
-- rebuild control batches and drop aborted records for read_committed.

CREATE TABLE IF NOT EXISTS transactions (
    transactional_id TEXT PRIMARY KEY,
    producer_id      BIGINT NOT NULL,
    producer_epoch   INTEGER NOT NULL,
    state            TEXT NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    partitions       TEXT NOT NULL,
    group_offsets    TEXT NOT NULL,
    started_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    previous_producer_id    BIGINT NOT NULL DEFAULT -1,
    previous_producer_epoch INTEGER NOT NULL DEFAULT -1
);

CREATE TABLE IF NOT EXISTS open_transactions (
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    producer_id     BIGINT NOT NULL,
    producer_epoch  INTEGER NOT NULL,
    ranges          TEXT NOT NULL,
    PRIMARY KEY (topic, partition_id, producer_id)
);

CREATE TABLE IF NOT EXISTS transaction_markers (
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    marker_offset   BIGINT NOT NULL,
    producer_id     BIGINT NOT NULL,
    producer_epoch  INTEGER NOT NULL,
    committed       INTEGER NOT NULL,
    ranges          TEXT NOT NULL,
    PRIMARY KEY (topic, partition_id, marker_offset)
);
