-- Consumer groups of the new protocol (KIP-848): the coordinator owns the
-- assignment, so it keeps the group epoch, the target assignment and what
-- each member was given. A restarted coordinator reloads all of it and
-- members carry on heartbeating with the epochs they have.

CREATE TABLE IF NOT EXISTS consumer_protocol_groups (
    group_id            TEXT PRIMARY KEY,
    group_epoch         INTEGER NOT NULL,
    assignment_epoch    INTEGER NOT NULL,
    assignor            TEXT NOT NULL,
    updated_ms          BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS consumer_protocol_members (
    group_id            TEXT NOT NULL,
    member_id           TEXT NOT NULL,
    group_instance_id   TEXT,
    rack_id             TEXT,
    member_epoch        INTEGER NOT NULL,
    client_id           TEXT NOT NULL,
    client_host         TEXT NOT NULL,
    -- The subscribed topic names, a JSON array.
    subscribed          TEXT NOT NULL,
    -- The subscribed regular expression (RE2 syntax), if any.
    subscribed_regex    TEXT,
    assignor            TEXT,
    PRIMARY KEY (group_id, member_id)
);

-- Partitions per member: `assigned` (given to the member), `owned` (what the
-- member last reported) and `target` (the assignor's goal for it).
CREATE TABLE IF NOT EXISTS consumer_protocol_partitions (
    group_id            TEXT NOT NULL,
    member_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    topic_id            TEXT NOT NULL,
    partition_id        INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id, kind, topic_id, partition_id)
);
