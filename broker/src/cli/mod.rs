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
pub mod profile;
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

/// Where the cluster is and how to print: flags (or their environment
/// variables), else the profile's settings, else the defaults.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Brokers to start from, comma-separated host:port (the first that
    /// answers is used; leaders are found from it) [default:
    /// 127.0.0.1:9092].
    #[arg(long, env = "FLOE_BROKERS", global = true)]
    pub brokers: Option<String>,

    /// The HTTP API of a broker of the cluster (for what the Kafka
    /// protocol does not carry: table snapshots, the schema registry,
    /// users) [default: http://127.0.0.1:8080].
    #[arg(long, env = "FLOE_HTTP", global = true)]
    pub http: Option<String>,

    /// `table` for people, `json` for scripts [default: table].
    #[arg(long, value_enum, global = true)]
    pub format: Option<Format>,

    /// A profile of the profiles file (see `floe_broker::cli::profile`):
    /// its brokers, http and format apply where no flag says otherwise.
    #[arg(long, env = "FLOE_PROFILE", global = true)]
    pub profile: Option<String>,
}

/// A [`Target`] with its profile and defaults applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Comma-separated host:port.
    pub brokers: String,
    /// The HTTP API's base URL.
    pub http: String,
    /// How to print.
    pub format: Format,
}

impl Target {
    /// The settings in force: flag, else profile, else default.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        use clap::ValueEnum;
        let profile = profile::load(self.profile.as_deref())?;
        let format = match (&self.format, profile.get("format")) {
            (Some(f), _) => *f,
            (None, Some(f)) => Format::from_str(f, true)
                .map_err(|_| anyhow::anyhow!("profile format {f:?}: expected table or json"))?,
            (None, None) => Format::Table,
        };
        let pick = |flag: &Option<String>, key: &str, default: &str| {
            flag.clone()
                .or_else(|| profile.get(key).cloned())
                .unwrap_or_else(|| default.to_string())
        };
        Ok(Resolved {
            brokers: pick(&self.brokers, "brokers", "127.0.0.1:9092"),
            http: pick(&self.http, "http", "http://127.0.0.1:8080"),
            format,
        })
    }
}

impl Resolved {
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
    let target = target.resolve()?;
    let mut conn = target.connect().await?;
    topic::run(&mut conn, command, &target.http)
        .await?
        .print(target.format);
    Ok(())
}

/// Runs a group command and prints what it gives.
pub async fn group(target: &Target, command: GroupCommand) -> anyhow::Result<()> {
    let target = target.resolve()?;
    let mut conn = target.connect().await?;
    group::run(&mut conn, command).await?.print(target.format);
    Ok(())
}

/// Reads a topic and prints its records as they come.
pub async fn consume(target: &Target, args: ConsumeArgs) -> anyhow::Result<()> {
    let target = target.resolve()?;
    let mut conn = target.connect().await?;
    consume::run(&mut conn, args, target.format).await
}

/// Writes lines as records and says where they went.
pub async fn produce(target: &Target, args: ProduceArgs) -> anyhow::Result<()> {
    let target = target.resolve()?;
    let mut conn = target.connect().await?;
    produce::run(&mut conn, args).await?.print(target.format);
    Ok(())
}

/// Runs a schema command against the registry and prints what it gives.
pub async fn schema(target: &Target, command: SchemaCommand) -> anyhow::Result<()> {
    let target = target.resolve()?;
    schema::run(&target.http, command)
        .await?
        .print(target.format);
    Ok(())
}

/// Runs a user command against the HTTP API and prints what it gives.
pub async fn user(target: &Target, command: UserCommand) -> anyhow::Result<()> {
    let target = target.resolve()?;
    user::run(&target.http, command).await?.print(target.format);
    Ok(())
}

/// Runs an ACL command and prints what it gives.
pub async fn acl(target: &Target, command: AclCommand) -> anyhow::Result<()> {
    let target = target.resolve()?;
    let mut conn = target.connect().await?;
    acl::run(&mut conn, command).await?.print(target.format);
    Ok(())
}
