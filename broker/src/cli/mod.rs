//! The operator's commands of the `floe` binary (all but `serve`): they
//! talk to a running cluster over the Kafka protocol, print aligned tables
//! (or JSON with `--format json`), and exit non-zero with a message naming
//! the Kafka error when the cluster refuses.

pub mod acl;
pub mod client;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod http;
pub mod output;
pub mod produce;
pub mod schema;
pub mod topic;
pub mod user;

use clap::Args;

use acl::AclCommand;
use client::Connection;
use consume::ConsumeArgs;
use group::GroupCommand;
use output::Format;
use produce::ProduceArgs;
use schema::SchemaCommand;
use topic::TopicCommand;
use user::UserCommand;

/// Where the cluster is and how to print.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Brokers to start from, comma-separated host:port (the first that
    /// answers is used; leaders are found from it).
    #[arg(
        long,
        env = "FLOE_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,

    /// The HTTP API of a broker of the cluster (for what the Kafka
    /// protocol does not carry: table snapshots).
    #[arg(
        long,
        env = "FLOE_HTTP",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub http: String,

    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
}

impl Target {
    /// A connection to the first broker that answers.
    async fn connect(&self) -> anyhow::Result<Connection> {
        let mut last = None;
        for address in self
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Connection::open(address).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("--brokers names no broker")))
    }
}

/// Runs a topic command and prints what it gives.
pub async fn topic(target: &Target, command: TopicCommand) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    topic::run(&mut conn, command, &target.http)
        .await?
        .print(target.format);
    Ok(())
}

/// Runs a group command and prints what it gives.
pub async fn group(target: &Target, command: GroupCommand) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    group::run(&mut conn, command).await?.print(target.format);
    Ok(())
}

/// Reads a topic and prints its records as they come.
pub async fn consume(target: &Target, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    consume::run(&mut conn, args, target.format).await
}

/// Writes lines as records and says where they went.
pub async fn produce(target: &Target, args: ProduceArgs) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    produce::run(&mut conn, args).await?.print(target.format);
    Ok(())
}

/// Runs a schema command against the registry and prints what it gives.
pub async fn schema(target: &Target, command: SchemaCommand) -> anyhow::Result<()> {
    schema::run(&target.http, command)
        .await?
        .print(target.format);
    Ok(())
}

/// Runs a user command against the HTTP API and prints what it gives.
pub async fn user(target: &Target, command: UserCommand) -> anyhow::Result<()> {
    user::run(&target.http, command).await?.print(target.format);
    Ok(())
}

/// Runs an ACL command and prints what it gives.
pub async fn acl(target: &Target, command: AclCommand) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    acl::run(&mut conn, command).await?.print(target.format);
    Ok(())
}
