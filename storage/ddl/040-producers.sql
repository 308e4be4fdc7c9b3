-- Idempotent producers: ids with their current epoch, and per partition the
-- sequence state as of the last committed flush (the last five batches, so
-- a retried batch is answered with its original offset).

CREATE TABLE IF NOT EXISTS producers (
    producer_id     BIGINT PRIMARY KEY,
    producer_epoch  INTEGER NOT NULL,
    transactional_id TEXT,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS producer_state (
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    producer_id     BIGINT NOT NULL,
    producer_epoch  INTEGER NOT NULL,
    -- "first_seq:last_seq:base_offset" for each of the last batches, oldest first, ';'-separated
    recent_batches  TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    PRIMARY KEY (topic, partition_id, producer_id)
);
