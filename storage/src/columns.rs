//! The Kafka columns of every data file: their names and their Iceberg
//! field ids. Plain constants, so every module that needs them (the file
//! layout, typed columns, tables) depends on this one and not on each
//! other.

/// Column names, in file order.
pub mod col {
    /// Kafka partition.
    pub const PARTITION: &str = "partition";
    /// Kafka offset.
    pub const OFFSET: &str = "offset";
    /// Record timestamp (producer's CreateTime or the broker's LogAppendTime).
    pub const TIMESTAMP: &str = "timestamp";
    /// 0 CreateTime, 1 LogAppendTime.
    pub const TIMESTAMP_TYPE: &str = "timestamp_type";
    /// Record key.
    pub const KEY: &str = "key";
    /// Record headers.
    pub const HEADERS: &str = "headers";
    /// Record value.
    pub const VALUE: &str = "value";
    /// When the broker flushed the record.
    pub const APPEND_TIME: &str = "append_time";
}

/// Iceberg field ids of the Kafka columns, written into every file's
/// Parquet schema so engines map columns by id (Iceberg's rule), not name.
pub mod field_id {
    /// `partition`.
    pub const PARTITION: i32 = 1;
    /// `offset`.
    pub const OFFSET: i32 = 2;
    /// `timestamp`.
    pub const TIMESTAMP: i32 = 3;
    /// `timestamp_type`.
    pub const TIMESTAMP_TYPE: i32 = 4;
    /// `key`.
    pub const KEY: i32 = 5;
    /// `headers`.
    pub const HEADERS: i32 = 6;
    /// `value`.
    pub const VALUE: i32 = 7;
    /// `append_time`.
    pub const APPEND_TIME: i32 = 8;
    /// `headers` list element.
    pub const HEADER: i32 = 9;
    /// `headers[].key`.
    pub const HEADER_KEY: i32 = 10;
    /// `headers[].value`.
    pub const HEADER_VALUE: i32 = 11;
    /// The highest id of the raw layout.
    pub const LAST: i32 = 11;
}
