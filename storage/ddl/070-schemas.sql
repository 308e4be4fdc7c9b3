-- The schema registry (Confluent's data model) and purpose grants.
-- A schema is stored once and has one id, whichever subjects use it; a
-- subject is a list of versions pointing at schemas. Soft-deleted versions
-- keep their rows with `deleted` set; permanent deletes remove them.

CREATE TABLE IF NOT EXISTS schemas (
    id              INTEGER PRIMARY KEY,
    schema_type     TEXT NOT NULL,
    schema          TEXT NOT NULL,
    -- The references, a JSON array of {name, subject, version}.
    refs            TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS subject_versions (
    subject         TEXT NOT NULL,
    version         INTEGER NOT NULL,
    schema_id       INTEGER NOT NULL REFERENCES schemas (id),
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (subject, version)
);

-- Compatibility levels; the empty subject is the global level.
CREATE TABLE IF NOT EXISTS registry_configs (
    subject         TEXT PRIMARY KEY,
    compatibility   TEXT NOT NULL
);

-- Which purposes a principal may state when it consumes.
CREATE TABLE IF NOT EXISTS purpose_grants (
    principal       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    PRIMARY KEY (principal, purpose)
);
