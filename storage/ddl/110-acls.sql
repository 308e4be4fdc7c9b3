-- Access control lists, as Kafka's CreateAcls states them: each column is
-- Kafka's code or string (resource type 2 topic, 3 group, 4 cluster, 5
-- transactional id; pattern 3 literal, 4 prefixed; operation 2 all, 3
-- read, ...; permission 2 deny, 3 allow). Every broker enforces the same
-- rows; `cluster` holds a change token for them ('acls.change').

CREATE TABLE IF NOT EXISTS acls (
    resource_type   INTEGER NOT NULL,
    resource_name   TEXT NOT NULL,
    pattern_type    INTEGER NOT NULL,
    principal       TEXT NOT NULL,
    host            TEXT NOT NULL,
    operation       INTEGER NOT NULL,
    permission      INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
);
