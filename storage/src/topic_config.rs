//! Topic configuration: Kafka's keys, Kafka's defaults, validation.
//!
//! Only keys that were set explicitly are stored; everything else reports
//! Kafka's default, so DescribeConfigs looks as it does on Apache Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Result, StorageError};

/// Type of a config value, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true/false.
    Boolean = 1,
    /// Free text from a fixed set.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 64-bit integer.
    Long = 5,
    /// Floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
}

/// One known topic config key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// The key.
    pub name: &'static str,
    /// Kafka's default, as a string.
    pub default: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// One line of documentation.
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    default: &'static str,
    kind: ConfigType,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        default,
        kind,
        doc,
    }
}

const MAX_LONG: &str = "9223372036854775807";

/// Every topic config floe accepts, with Apache Kafka's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        "delete",
        ConfigType::List,
        "delete and/or compact: delete applies retention.ms and retention.bytes, compact keeps the latest record per key",
    ),
    def(
        "compression.type",
        "producer",
        ConfigType::String,
        "Kafka stores the producer's codec; floe stores Parquet and serves it back",
    ),
    def(
        "delete.retention.ms",
        "86400000",
        ConfigType::Long,
        "how long tombstones are kept for compacted topics",
    ),
    def(
        "file.delete.delay.ms",
        "60000",
        ConfigType::Long,
        "delay before a deleted file is removed",
    ),
    def(
        "flush.messages",
        MAX_LONG,
        ConfigType::Long,
        "accepted for compatibility; floe flushes by size and linger",
    ),
    def(
        "flush.ms",
        MAX_LONG,
        ConfigType::Long,
        "accepted for compatibility; floe flushes by size and linger",
    ),
    def(
        "max.compaction.lag.ms",
        MAX_LONG,
        ConfigType::Long,
        "the longest a record stays uncompacted (compaction runs past min.cleanable.dirty.ratio then)",
    ),
    def(
        "max.message.bytes",
        "1048588",
        ConfigType::Int,
        "largest record batch accepted, in bytes",
    ),
    def(
        "message.timestamp.type",
        "CreateTime",
        ConfigType::String,
        "CreateTime or LogAppendTime",
    ),
    def(
        "message.timestamp.difference.max.ms",
        MAX_LONG,
        ConfigType::Long,
        "deprecated in Kafka; accepted",
    ),
    def(
        "message.timestamp.before.max.ms",
        MAX_LONG,
        ConfigType::Long,
        "accepted; not enforced yet",
    ),
    def(
        "message.timestamp.after.max.ms",
        MAX_LONG,
        ConfigType::Long,
        "accepted; not enforced yet",
    ),
    def(
        "min.cleanable.dirty.ratio",
        "0.5",
        ConfigType::Double,
        "compaction runs once this share of the compactable log is uncompacted",
    ),
    def(
        "min.compaction.lag.ms",
        "0",
        ConfigType::Long,
        "the shortest a record stays uncompacted",
    ),
    def(
        "min.insync.replicas",
        "1",
        ConfigType::Int,
        "durability comes from object storage; always satisfied",
    ),
    def(
        "retention.bytes",
        "-1",
        ConfigType::Long,
        "per-partition size limit; -1 for none",
    ),
    def(
        "retention.ms",
        "604800000",
        ConfigType::Long,
        "time limit by record timestamp; -1 for none",
    ),
    def(
        "segment.bytes",
        "1073741824",
        ConfigType::Int,
        "accepted; floe segments by flush",
    ),
    def(
        "segment.ms",
        "604800000",
        ConfigType::Long,
        "the longest span of writes compaction merges into one file (retention deletes whole files)",
    ),
    def(
        "floe.validate.mode",
        "off",
        ConfigType::String,
        "off, or reject: produced values must carry a registered schema id of the topic's subject and satisfy its rules",
    ),
    def(
        "floe.validate.coerce",
        "false",
        ConfigType::Boolean,
        "true: a value without the schema registry prefix is wrapped with the latest schema of the topic's value subject",
    ),
    def(
        "floe.validate.coerce.message",
        "",
        ConfigType::String,
        "the message (full name) coerced values are; empty: the schema's first message",
    ),
    def(
        "floe.iceberg.commit.interval.ms",
        "10000",
        ConfigType::Long,
        "how often the topic's Iceberg table commits a snapshot of the segments flushed since the last one",
    ),
    def(
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
        "accepted; leadership is decided by the metadata store",
    ),
];

/// The definition of `name`, if it is a topic config.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Topic configs Kafka 3 still accepts from older tools and ignores:
/// floe accepts them (a value that is no Kafka version is refused, as
/// Kafka does) and does not store them.
pub const IGNORED_CONFIGS: &[&str] = &["message.format.version", "message.downconversion.enable"];

/// Checks one key/value pair.
pub fn validate_config(name: &str, value: &str) -> Result<()> {
    match name {
        "message.format.version" => {
            let version = value.trim().split("-IV").next().unwrap_or_default();
            let numbers: Vec<&str> = version.split('.').collect();
            return if (2..=3).contains(&numbers.len())
                && numbers
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                Ok(())
            } else {
                Err(StorageError::InvalidConfig(format!(
                    "invalid value {value:?} for {name}: expected a Kafka version such as 3.0"
                )))
            };
        }
        "message.downconversion.enable" => {
            return value.trim().parse::<bool>().map(drop).map_err(|_| {
                StorageError::InvalidConfig(format!(
                    "invalid value {value:?} for {name}: expected true or false"
                ))
            });
        }
        _ => {}
    }
    let d = config_def(name)
        .ok_or_else(|| StorageError::InvalidConfig(format!("unknown topic config {name}")))?;
    let bad = |why: &str| {
        StorageError::InvalidConfig(format!("invalid value {value:?} for {name}: {why}"))
    };
    match d.kind {
        ConfigType::Boolean => {
            value
                .parse::<bool>()
                .map_err(|_| bad("expected true or false"))?;
        }
        ConfigType::Int => {
            let v = value
                .trim()
                .parse::<i32>()
                .map_err(|_| bad("expected a 32-bit integer"))?;
            if v < 0 && name != "retention.bytes" {
                return Err(bad("must not be negative"));
            }
        }
        ConfigType::Double if name == "min.cleanable.dirty.ratio" => {
            let v = value
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("expected a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad("must be between 0 and 1"));
            }
        }
        ConfigType::Long => {
            let v = value
                .trim()
                .parse::<i64>()
                .map_err(|_| bad("expected a 64-bit integer"))?;
            if v < -1 || (v == -1 && !matches!(name, "retention.ms" | "retention.bytes")) {
                return Err(bad("must not be negative"));
            }
        }
        ConfigType::Double => {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("expected a number"))?;
        }
        ConfigType::String | ConfigType::List => {}
    }
    match name {
        "floe.validate.mode" if !matches!(value, "off" | "reject") => {
            Err(bad("expected off or reject"))
        }
        "message.timestamp.type" if !matches!(value, "CreateTime" | "LogAppendTime") => {
            Err(bad("expected CreateTime or LogAppendTime"))
        }
        "cleanup.policy"
            if !value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact")) =>
        {
            Err(bad("expected delete and/or compact"))
        }
        "compression.type"
            if !matches!(
                value,
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ) =>
        {
            Err(bad(
                "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
            ))
        }
        _ => Ok(()),
    }
}

/// Broker configs that can be set at run time, each the cluster-wide
/// default of a topic config for every topic that does not set its own
/// (Kafka's dynamic default broker configs, KIP-226): (broker config,
/// topic config).
pub const BROKER_TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("message.max.bytes", "max.message.bytes"),
];

/// The topic config a dynamic broker config sets the default of.
pub fn topic_config_of(broker_config: &str) -> Option<&'static str> {
    BROKER_TOPIC_DEFAULTS
        .iter()
        .find(|(b, _)| *b == broker_config)
        .map(|(_, t)| *t)
}

/// Checks one broker config set at run time: its name one of
/// [`BROKER_TOPIC_DEFAULTS`], its value valid for that topic config, which
/// it returns.
pub fn check_broker_config(name: &str, value: &str) -> Result<&'static str> {
    let topic = topic_config_of(name).ok_or_else(|| {
        StorageError::InvalidConfig(format!(
            "{name} is not a broker config floe can change at run time (those are {})",
            BROKER_TOPIC_DEFAULTS
                .iter()
                .map(|(b, _)| *b)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    validate_config(topic, value)
        .map_err(|_| StorageError::InvalidConfig(format!("invalid value {value:?} for {name}")))?;
    Ok(topic)
}

/// The topic defaults that broker configs set at run time make (by topic
/// config name); refused if any of them fails [`check_broker_config`].
pub fn topic_defaults(
    broker_configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    broker_configs
        .iter()
        .map(|(name, value)| Ok((check_broker_config(name, value)?.to_string(), value.clone())))
        .collect()
}

/// The effective configuration of one topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicConfig {
    /// Explicitly set keys only.
    pub overrides: BTreeMap<String, String>,
    /// Cluster-wide defaults set at run time (by topic config name), below
    /// the overrides and above Kafka's defaults.
    defaults: Arc<BTreeMap<String, String>>,
}

impl TopicConfig {
    /// Validates and wraps explicit settings.
    pub fn new(mut overrides: BTreeMap<String, String>) -> Result<Self> {
        for (k, v) in &overrides {
            validate_config(k, v)?;
        }
        overrides.retain(|k, _| !IGNORED_CONFIGS.contains(&k.as_str()));
        Ok(TopicConfig {
            overrides,
            defaults: Arc::default(),
        })
    }

    /// The same, under the cluster-wide defaults `defaults`.
    pub fn with_defaults(mut self, defaults: Arc<BTreeMap<String, String>>) -> Self {
        self.defaults = defaults;
        self
    }

    /// The cluster-wide default of `name` set at run time, if any.
    pub fn cluster_default(&self, name: &str) -> Option<&str> {
        self.defaults.get(name).map(String::as_str)
    }

    /// Effective value of `name` (override, cluster-wide default, or
    /// Kafka's default).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.overrides
            .get(name)
            .map(String::as_str)
            .or_else(|| self.cluster_default(name))
            .or_else(|| config_def(name).map(|d| d.default))
    }

    fn get_i64(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    }

    /// max.message.bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.get_i64("max.message.bytes").max(0) as usize
    }

    /// retention.ms (None for unlimited).
    pub fn retention_ms(&self) -> Option<i64> {
        Some(self.get_i64("retention.ms")).filter(|v| *v >= 0)
    }

    /// segment.ms: how long a span of writes one compacted file may hold.
    pub fn segment_ms(&self) -> i64 {
        self.get_i64("segment.ms").max(1)
    }

    /// retention.bytes (None for unlimited).
    pub fn retention_bytes(&self) -> Option<i64> {
        Some(self.get_i64("retention.bytes")).filter(|v| *v >= 0)
    }

    /// `floe.iceberg.commit.interval.ms`, at least 100 ms.
    pub fn table_commit_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.get_i64("floe.iceberg.commit.interval.ms").max(100) as u64
        )
    }

    /// Whether `floe.validate.mode` is `reject`; None when not set.
    pub fn validates(&self) -> Option<bool> {
        self.overrides
            .get("floe.validate.mode")
            .map(|m| m == "reject")
    }

    /// With `floe.validate.coerce`: the message coerced values are wrapped
    /// as (None: the schema's first). None when coercion is off.
    pub fn coerce(&self) -> Option<Option<String>> {
        (self
            .get("floe.validate.coerce")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")))
        .then(|| {
            self.get("floe.validate.coerce.message")
                .filter(|m| !m.is_empty())
                .map(str::to_string)
        })
    }

    /// True for LogAppendTime topics.
    pub fn log_append_time(&self) -> bool {
        self.get("message.timestamp.type") == Some("LogAppendTime")
    }

    fn policy(&self, policy: &str) -> bool {
        self.get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|p| p.trim() == policy))
    }

    /// True when `cleanup.policy` includes `compact`.
    pub fn compacted(&self) -> bool {
        self.policy("compact")
    }

    /// True when `cleanup.policy` includes `delete`: only then do
    /// retention.ms and retention.bytes delete records (as Kafka, a topic
    /// that is only compacted keeps every key's latest record for ever).
    pub fn deletes(&self) -> bool {
        self.policy("delete")
    }

    /// What key compaction keeps and when it runs.
    pub fn key_compaction(&self) -> KeyCompaction {
        let ratio = self
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.5);
        KeyCompaction {
            min_dirty_ratio: ratio.clamp(0.0, 1.0),
            min_lag_ms: self.get_i64("min.compaction.lag.ms").max(0),
            max_lag_ms: self.get_i64("max.compaction.lag.ms").max(0),
            delete_retention_ms: self.get_i64("delete.retention.ms").max(0),
        }
    }
}

/// The settings of key compaction (`cleanup.policy=compact`), Kafka's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyCompaction {
    /// `min.cleanable.dirty.ratio`: compaction runs once the uncompacted
    /// share of the compactable log reaches it.
    pub min_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record younger than this is left alone.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record older than this is compacted
    /// whatever the dirty ratio.
    pub max_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone (null value) is kept
    /// once it is its key's latest record.
    pub delete_retention_ms: i64,
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |why| Err(StorageError::InvalidTopicName(name.to_string(), why));
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if name == crate::meta::placement::GROUP_COORDINATOR {
        return bad("the name is floe's own");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if INTERNAL_TOPICS.contains(&name) {
        return bad("the name of one of Kafka's internal topics; floe keeps group offsets and transaction state in its metadata store");
    }
    Ok(())
}

/// Kafka's internal topics, whose names floe does not give to a topic.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// The form in which two names collide in Kafka: '.' and '_' are the same.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c =
            TopicConfig::new([("retention.ms".to_string(), "1000".to_string())].into()).unwrap();
        assert_eq!(c.retention_ms(), Some(1000));
        assert_eq!(c.max_message_bytes(), 1048588);
        assert_eq!(c.get("cleanup.policy"), Some("delete"));
        assert!(TopicConfig::new([("retention.ms".into(), "x".into())].into()).is_err());
        assert!(TopicConfig::new([("no.such".into(), "1".into())].into()).is_err());
        assert!(validate_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_config("message.timestamp.type", "Now").is_err());
        // Accepted for older tools, and not kept.
        assert!(validate_config("message.format.version", "0.10.2-IV0").is_ok());
        assert!(validate_config("message.format.version", "3.0").is_ok());
        assert!(validate_config("message.format.version", "latest").is_err());
        let cfg = TopicConfig::new(BTreeMap::from([
            ("message.format.version".to_string(), "2.8".to_string()),
            ("retention.ms".to_string(), "1000".to_string()),
        ]))
        .unwrap();
        assert_eq!(cfg.overrides.len(), 1);
        // Cluster-wide defaults sit between a topic's own values and Kafka's.
        let defaults = topic_defaults(&BTreeMap::from([
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("message.max.bytes".to_string(), "2000".to_string()),
        ]))
        .unwrap();
        let cfg = cfg.with_defaults(Arc::new(defaults));
        assert_eq!(cfg.retention_ms(), Some(1000), "its own value wins");
        assert_eq!(cfg.max_message_bytes(), 2000);
        assert_eq!(cfg.cluster_default("max.message.bytes"), Some("2000"));
        assert!(topic_defaults(&BTreeMap::from([(
            "log.retention.ms".to_string(),
            "soon".to_string()
        )]))
        .is_err());
        assert!(topic_defaults(&BTreeMap::from([(
            "broker.id".to_string(),
            "3".to_string()
        )]))
        .is_err());
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "é",
            &"x".repeat(250),
            "__consumer_offsets",
            "__transaction_state",
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
