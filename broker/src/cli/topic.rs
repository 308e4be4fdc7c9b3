//! `floe topic ...`: list, create, describe, alter-config, add-partitions
//! and delete topics over the Kafka protocol, as `rpk topic` does.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::Subcommand;
use floe_protocol::configs::{OP_DELETE, OP_SET, RESOURCE_TOPIC, SOURCE_DYNAMIC_TOPIC};
use kafka_protocol::messages::{
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    describe_log_dirs_request::DescribableLogDirTopic,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, IncrementalAlterConfigsRequest, MetadataResponse,
};
use serde_json::{json, Value};

use super::client::Connection;
use super::cluster::{self, check, metadata, s, topic_name, EARLIEST, LATEST};
use super::output::{error_name, Output};

/// How long the broker may take over a create or delete.
const TIMEOUT_MS: i32 = 30_000;

/// The topic subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Every topic with its partition count.
    List,
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// A topic config, `key=value` (repeatable), e.g. `-c retention.ms=86400000`.
        #[arg(short = 'c', long = "config")]
        configs: Vec<String>,
    },
    /// A topic's partitions (leader, epoch, offsets) and its configs set.
    Describe {
        /// The topic's name.
        name: String,
    },
    /// Set (`--set key=value`) or remove (`--delete key`) topic configs.
    AlterConfig {
        /// The topic's name.
        name: String,
        /// A config to set, `key=value` (repeatable).
        #[arg(long = "set")]
        set: Vec<String>,
        /// A config to remove, back to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Raise a topic's partition count to `--total`.
    AddPartitions {
        /// The topic's name.
        name: String,
        /// The partition count after the change.
        #[arg(long)]
        total: i32,
    },
    /// Delete topics and their data.
    Delete {
        /// The topics' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `key=value` pairs.
fn pairs(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{kv:?} is not key=value"),
        })
        .collect()
}

/// Runs one topic command against `conn`'s cluster.
pub async fn run(
    conn: &mut Connection,
    command: TopicCommand,
    http: &str,
) -> anyhow::Result<Output> {
    match command {
        TopicCommand::List => list(conn).await,
        TopicCommand::Create {
            name,
            partitions,
            configs,
        } => create(conn, &name, partitions, &pairs(&configs)?).await,
        TopicCommand::Describe { name } => describe(conn, &name, http).await,
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(conn, &name, &pairs(&set)?, &delete).await
        }
        TopicCommand::AddPartitions { name, total } => add_partitions(conn, &name, total).await,
        TopicCommand::Delete { names } => delete(conn, &names).await,
    }
}

async fn list(conn: &mut Connection) -> anyhow::Result<Output> {
    let md = metadata(conn, None).await?;
    let mut topics: Vec<(String, usize)> = md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| Some((t.name.as_ref()?.0.to_string(), t.partitions.len())))
        .collect();
    topics.sort();
    Ok(Output {
        headers: vec!["NAME", "PARTITIONS"],
        rows: topics
            .iter()
            .map(|(n, p)| vec![n.clone(), p.to_string()])
            .collect(),
        notes: Vec::new(),
        json: json!(topics
            .iter()
            .map(|(n, p)| json!({"name": n, "partitions": p}))
            .collect::<Vec<_>>()),
    })
}

async fn create(
    conn: &mut Connection,
    name: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> anyhow::Result<Output> {
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT_MS);
    let response = conn.call(request, 7).await?;
    let r = response
        .topics
        .first()
        .context("the broker answered for no topic")?;
    check(
        &format!("creating {name}"),
        r.error_code,
        r.error_message.as_ref(),
    )?;
    Ok(done(name, "created"))
}

fn done(name: &str, what: &str) -> Output {
    Output {
        headers: vec!["TOPIC", "STATUS"],
        rows: vec![vec![name.to_string(), what.to_string()]],
        notes: Vec::new(),
        json: json!({"topic": name, "status": what}),
    }
}

async fn describe(conn: &mut Connection, name: &str, http: &str) -> anyhow::Result<Output> {
    let md = cluster::topic_metadata(conn, name, "describing").await?;
    let t = &md.topics[0];
    let partitions: Vec<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (name.to_string(), p.partition_index))
        .collect();
    let starts = cluster::offsets(conn, &partitions, EARLIEST).await?;
    let ends = cluster::offsets(conn, &partitions, LATEST).await?;
    let sizes = sizes(conn, &md, name).await?;
    // The table's side comes over HTTP; without it the rest still shows.
    let (table, table_note) = match super::http::latest_snapshot(http, name).await {
        Ok(Some(s)) => {
            let age = (now_ms() - s.timestamp_ms).max(0) as f64 / 1000.0;
            let note = format!(
                "table: snapshot {} ({}), committed {age:.1} s ago",
                s.snapshot_id, s.operation
            );
            (Some(s), note)
        }
        Ok(None) => (None, "table: no snapshot yet".to_string()),
        Err(e) => (None, format!("table: unknown ({e:#})")),
    };
    let configs = set_configs(conn, name).await?;
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let offset = |p: i32, ts: i64| {
        let offsets = if ts == EARLIEST { &starts } else { &ends };
        offsets.get(&(name.to_string(), p)).copied()
    };
    let show = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
    let mut rows = Vec::new();
    let mut json_partitions = Vec::new();
    for p in &partitions {
        let (start, end) = (
            offset(p.partition_index, EARLIEST),
            offset(p.partition_index, LATEST),
        );
        let size = sizes.get(&p.partition_index).copied();
        // Records the table's latest snapshot does not hold yet.
        let lag = match (&table, start, end) {
            (Some(s), Some(start), Some(end)) => {
                let held = s
                    .offsets
                    .get(&p.partition_index)
                    .map_or(start, |o| o + 1)
                    .max(start);
                Some((end - held).max(0))
            }
            _ => None,
        };
        rows.push(vec![
            p.partition_index.to_string(),
            p.leader_id.0.to_string(),
            p.leader_epoch.to_string(),
            show(start),
            show(end),
            show(size),
            show(lag),
        ]);
        json_partitions.push(json!({
            "partition": p.partition_index,
            "leader": p.leader_id.0,
            "leader_epoch": p.leader_epoch,
            "log_start_offset": start,
            "high_watermark": end,
            "size_bytes": size,
            "table_lag": lag,
        }));
    }
    let mut notes = vec![table_note];
    notes.extend(configs.iter().map(|(k, v)| format!("{k}={v}")));
    Ok(Output {
        headers: vec![
            "PARTITION",
            "LEADER",
            "EPOCH",
            "LOG-START",
            "HIGH-WATERMARK",
            "SIZE",
            "TABLE-LAG",
        ],
        rows,
        notes,
        json: json!({
            "name": name,
            "topic_id": t.topic_id.to_string(),
            "partitions": json_partitions,
            "table": table.map(|s| json!({
                "snapshot_id": s.snapshot_id,
                "timestamp_ms": s.timestamp_ms,
                "operation": s.operation,
            })),
            "configs": configs.into_iter().collect::<BTreeMap<_, _>>(),
        }),
    })
}

/// Each partition's stored bytes, from DescribeLogDirs on the brokers
/// that lead the topic's partitions.
async fn sizes(
    conn: &mut Connection,
    md: &MetadataResponse,
    name: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let addresses = cluster::addresses(md);
    let mut leaders: Vec<i32> = md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.leader_id.0))
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let mut out = BTreeMap::new();
    for leader in leaders {
        let Some(address) = addresses.get(&leader) else {
            continue;
        };
        let mut other = cluster::other(conn, address).await?;
        let c = other.as_mut().unwrap_or(&mut *conn);
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(
                    md.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .filter(|p| p.leader_id.0 == leader)
                        .map(|p| p.partition_index)
                        .collect(),
                ),
        ]));
        let response = c.call(request, 4).await?;
        for dir in &response.results {
            for t in dir.topics.iter().filter(|t| t.name.0.as_str() == name) {
                for p in &t.partitions {
                    out.insert(p.partition_index, p.partition_size);
                }
            }
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The configs set on the topic itself (not defaults).
async fn set_configs(conn: &mut Connection, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(name))
            // None asks for every config; an empty list would ask for none.
            .with_configuration_keys(None)]);
    let response = conn.call(request, 4).await?;
    let mut out = Vec::new();
    for r in &response.results {
        check(
            &format!("describing {name}'s configs"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
        for c in &r.configs {
            if c.config_source == SOURCE_DYNAMIC_TOPIC {
                let value = match (c.is_sensitive, &c.value) {
                    (true, _) => "(sensitive)".to_string(),
                    (false, Some(v)) => v.to_string(),
                    (false, None) => String::new(),
                };
                out.push((c.name.to_string(), value));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn alter_config(
    conn: &mut Connection,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<Output> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set key=value or --delete key");
    }
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(OP_SET)
                .with_value(Some(s(v)))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(s(k))
            .with_config_operation(OP_DELETE)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let response = conn.call(request, 1).await?;
    for r in &response.responses {
        check(
            &format!("altering {name}'s configs"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(done(name, "configs altered"))
}

async fn add_partitions(conn: &mut Connection, name: &str, total: i32) -> anyhow::Result<Output> {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(total)])
        .with_timeout_ms(TIMEOUT_MS);
    let response = conn.call(request, 3).await?;
    for r in &response.results {
        check(
            &format!("adding partitions to {name}"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(done(name, &format!("{total} partitions")))
}

async fn delete(conn: &mut Connection, names: &[String]) -> anyhow::Result<Output> {
    // v6 names topics in `topics` (every Kafka since 2.8, and floe).
    let request = DeleteTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect(),
        )
        .with_timeout_ms(TIMEOUT_MS);
    let response = conn.call(request, 6).await?;
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for r in &response.responses {
        let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let status = match r.error_code {
            0 => "deleted".to_string(),
            code => {
                failed.push(format!("{name}: {}", error_name(code)));
                error_name(code)
            }
        };
        rows.push(vec![name.clone(), status.clone()]);
        results.push(json!({"topic": name, "status": status}));
    }
    if !failed.is_empty() {
        bail!("deleting topics: {}", failed.join("; "));
    }
    Ok(Output {
        headers: vec!["TOPIC", "STATUS"],
        rows,
        notes: Vec::new(),
        json: Value::Array(results),
    })
}
