-- Consumer groups (classic protocol): the group as of its last completed
-- rebalance, its members with their subscriptions and assignments, and
-- committed offsets. A restarted coordinator reloads all of it; members keep
-- their generation and only need to heartbeat in time.

CREATE TABLE IF NOT EXISTS consumer_groups (
    group_id        TEXT PRIMARY KEY,
    protocol_type   TEXT,
    protocol_name   TEXT,
    generation_id   INTEGER NOT NULL,
    leader_id       TEXT,
    state           TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS group_members (
    group_id            TEXT NOT NULL,
    member_id           TEXT NOT NULL,
    group_instance_id   TEXT,
    client_id           TEXT NOT NULL,
    client_host         TEXT NOT NULL,
    session_timeout_ms  INTEGER NOT NULL,
    rebalance_timeout_ms INTEGER NOT NULL,
    subscription        BYTEA,
    assignment          BYTEA,
    join_order          INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
);

CREATE TABLE IF NOT EXISTS group_offsets (
    group_id        TEXT NOT NULL,
    topic           TEXT NOT NULL,
    partition_id    INTEGER NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch    INTEGER NOT NULL,
    metadata        TEXT,
    commit_time_ms  BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);
