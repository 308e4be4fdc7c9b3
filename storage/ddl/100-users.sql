-- Users' SCRAM credentials (SCRAM-SHA-256 and SCRAM-SHA-512, one row per
-- mechanism): never the password, only what RFC 5802 has a server keep.
-- PLAIN logins are checked against them too.

CREATE TABLE IF NOT EXISTS scram_credentials (
    user_name       TEXT NOT NULL,
    mechanism       TEXT NOT NULL,
    salt            BLOB NOT NULL,
    iterations      INTEGER NOT NULL,
    stored_key      BLOB NOT NULL,
    server_key      BLOB NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);
