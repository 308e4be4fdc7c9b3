-- Typed columns of schema topics. `topic_columns` holds, per topic, the
-- message its values (and keys) are stored as and the Iceberg field id of
-- every column path ever written (JSON), so ids stay stable across schema
-- versions. `column_layouts` holds what a data file needs to turn its typed
-- columns back into the producers' bytes (the descriptors of the schema
-- that shaped them, and the wire prefix of each schema id), keyed by a hash
-- of that content which the file names in its metadata. Layouts are shared
-- and never deleted: a file written with one may be read at any time, and
-- the registry may have deleted the schema since.

CREATE TABLE IF NOT EXISTS topic_columns (
    topic  TEXT PRIMARY KEY,
    body   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS column_layouts (
    layout  TEXT PRIMARY KEY,
    body    BLOB NOT NULL
);
