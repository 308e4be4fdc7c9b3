//! Command line and environment configuration.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// floe: a Kafka-protocol broker whose topics are Parquet files on object
/// storage with Iceberg metadata.
#[derive(Debug, Parser)]
#[command(name = "floe", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a broker. With no flags: Kafka on 127.0.0.1:9092, HTTP on
    /// 127.0.0.1:8080, data and metadata in ./floe-data.
    Serve(Box<ServeArgs>),
    /// List, create, describe, alter and delete topics of a running
    /// cluster.
    Topic {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::topic::TopicCommand,
    },
    /// List, describe, show the lag of, reset and delete consumer groups
    /// of a running cluster.
    Group {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::group::GroupCommand,
    },
    /// Print a topic's records: from the start, the end, an offset or a
    /// time; `-n` of them, or following new ones.
    Consume {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to read.
        #[command(flatten)]
        args: crate::cli::consume::ConsumeArgs,
    },
    /// Write each line of standard input (or --file) to a topic as a
    /// record.
    Produce {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to write.
        #[command(flatten)]
        args: crate::cli::produce::ProduceArgs,
    },
    /// Register `.proto` files (with their imports), list, show, check
    /// and delete schemas in the registry of a running cluster.
    Schema {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::schema::SchemaCommand,
    },
    /// List, create (or set the password of) and delete the users of
    /// SASL logins.
    User {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::user::UserCommand,
    },
    /// Create, list and delete Kafka ACLs.
    Acl {
        /// The cluster.
        #[command(flatten)]
        target: crate::cli::Target,
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::acl::AclCommand,
    },
    /// Print a completion script for a shell, e.g. `floe completion bash >
    /// /etc/bash_completion.d/floe` or `source <(floe completion zsh)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Settings of `floe serve`. Every flag also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the Kafka listener binds.
    #[arg(long, env = "FLOE_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: String,

    /// Address the HTTP API (health, admin) binds.
    #[arg(long, env = "FLOE_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: String,

    /// The Kafka listener's security protocol, as Kafka names them:
    /// PLAINTEXT (nobody is asked; every client is the `anonymous`
    /// principal), SSL (TLS with --tls-cert and --tls-key), SASL_PLAINTEXT
    /// (SASL logins with the mechanisms of --sasl-mechanisms, against the
    /// users' SCRAM credentials in the metadata store) or SASL_SSL (both).
    #[arg(long, env = "FLOE_KAFKA_SECURITY_PROTOCOL", default_value = "PLAINTEXT",
        value_parser = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])]
    pub kafka_security_protocol: String,

    /// The Kafka listener's TLS certificate chain (PEM), for SSL and
    /// SASL_SSL; read again when it changes.
    #[arg(long, env = "FLOE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FLOE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that sign the clients' certificates, read
    /// again when the file changes: with it, SSL and SASL_SSL listeners
    /// require a client certificate (mTLS), whose subject (`CN=alice,O=corp`,
    /// or what --ssl-principal-mapping-rules makes of it) is the principal
    /// on SSL; with --http-tls, an HTTPS client may present one, and is
    /// then that principal unless its request carries credentials.
    #[arg(long, env = "FLOE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Kafka's `ssl.principal.mapping.rules`: how a client certificate's
    /// subject becomes the principal, `RULE:pattern/replacement/[LU]`
    /// entries tried in order (the first matching the whole subject
    /// applies) and `DEFAULT` (the subject unchanged); a certificate no
    /// rule applies to is refused. `RULE:^CN=([^,]+),O=corp$/$1/L,DEFAULT`.
    #[arg(
        long,
        env = "FLOE_SSL_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    pub ssl_principal_mapping_rules: String,

    /// SASL mechanisms the Kafka listener offers, comma-separated, of
    /// SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (PLAIN sends the password
    /// itself: offer it only where the network is trusted) and
    /// OAUTHBEARER (offered anyway when --oauth-jwks is set).
    #[arg(
        long,
        env = "FLOE_SASL_MECHANISMS",
        default_value = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    )]
    pub sasl_mechanisms: String,

    /// Serve the HTTP API over TLS (HTTPS) with the certificate and key of
    /// --tls-cert and --tls-key (read again when they change).
    #[arg(long, env = "FLOE_HTTP_TLS", action = ArgAction::Set, default_value_t = false,
        num_args = 0..=1, default_missing_value = "true")]
    pub http_tls: bool,

    /// How the HTTP API authenticates its callers: `none` (everyone is
    /// `anonymous`), or `required`: every route but /health and the token
    /// endpoint asks for HTTP basic credentials (a user's password) or a
    /// bearer token (issued at /iceberg/v1/oauth/tokens, or a JWT signed
    /// by a key of --oauth-jwks).
    #[arg(long, env = "FLOE_HTTP_AUTHENTICATION", default_value = "none",
        value_parser = ["none", "required"])]
    pub http_authentication: String,

    /// A user created at startup unless it exists, as `name:password`
    /// (both SCRAM mechanisms): the first administrator of a broker whose
    /// logins are required everywhere (Kafka's `kafka-storage format
    /// --add-scram`). Pass it in the environment rather than on the
    /// command line, where other local users can read it.
    #[arg(long, env = "FLOE_INITIAL_USER", hide_env_values = true)]
    pub initial_user: Option<String>,

    /// Enforce ACLs (Kafka's `authorizer.class.name`): every request is
    /// checked against the access control lists in the metadata store,
    /// managed with CreateAcls / DescribeAcls / DeleteAcls. Without it
    /// every principal may do everything and the ACL APIs answer
    /// SECURITY_DISABLED.
    #[arg(long, env = "FLOE_ACLS", action = ArgAction::Set, default_value_t = false,
        num_args = 0..=1, default_missing_value = "true")]
    pub acls: bool,

    /// Principals allowed everything whatever the ACLs say, Kafka's
    /// `super.users` (`User:admin;User:CN=ops,O=corp`).
    #[arg(long, env = "FLOE_SUPER_USERS", default_value = "")]
    pub super_users: String,

    /// Kafka's `allow.everyone.if.no.acl.found`: with --acls, a resource
    /// that no ACL names is open to every principal (by default it is
    /// closed to all but the super users, as in Kafka).
    #[arg(long, env = "FLOE_ALLOW_EVERYONE_IF_NO_ACL_FOUND", action = ArgAction::Set,
        default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub allow_everyone_if_no_acl_found: bool,

    /// The keys that sign OAUTHBEARER tokens and HTTP bearer JWTs
    /// (RS256/384/512, ES256/384), a JWKS (RFC 7517): a file, read again
    /// when it changes, or an identity provider's `jwks_uri` (`https://`),
    /// fetched at startup, every --oauth-jwks-refresh-ms and soon after a
    /// token names a key it does not hold. With it the Kafka listener
    /// offers OAUTHBEARER.
    #[arg(long, env = "FLOE_OAUTH_JWKS")]
    pub oauth_jwks: Option<String>,

    /// How often a JWKS URL is fetched again (Kafka's
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`).
    #[arg(long, env = "FLOE_OAUTH_JWKS_REFRESH_MS", default_value_t = 3_600_000)]
    pub oauth_jwks_refresh_ms: u64,

    /// The `iss` an OAUTHBEARER token must carry, if set.
    #[arg(long, env = "FLOE_OAUTH_ISSUER")]
    pub oauth_issuer: Option<String>,

    /// The audience (`aud`) an OAUTHBEARER token must include, if set.
    #[arg(long, env = "FLOE_OAUTH_AUDIENCE")]
    pub oauth_audience: Option<String>,

    /// The token claim naming the principal (Kafka's
    /// `sasl.oauthbearer.sub.claim.name`).
    #[arg(long, env = "FLOE_OAUTH_PRINCIPAL_CLAIM", default_value = "sub")]
    pub oauth_principal_claim: String,

    /// Kafka's `connections.max.reauth.ms`: a SASL login lasts at most
    /// this long before the client must authenticate again (KIP-368), or
    /// its connection is closed; 0 for no bound but a token's expiry.
    #[arg(long, env = "FLOE_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,

    /// host:port that clients are told to connect to (Metadata responses).
    /// Defaults to the Kafka listener's bound address.
    #[arg(long, env = "FLOE_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Several Kafka listeners, as Kafka's `listeners`:
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093,INTERNAL://10.0.0.5:9094`
    /// (an empty host binds every interface). A listener named after a
    /// security protocol uses it; other names take theirs from
    /// --listener-security-protocol-map. Replaces --kafka-listen and
    /// --kafka-security-protocol. Every SSL listener uses --tls-cert,
    /// --tls-key and --tls-client-ca; every SASL one --sasl-mechanisms.
    #[arg(long, env = "FLOE_LISTENERS",
        conflicts_with_all = ["kafka_listen", "kafka_security_protocol"])]
    pub listeners: Option<String>,

    /// What clients of each listener are told to connect to, as Kafka's
    /// `advertised.listeners` (`SASL_SSL://broker-1.example.com:9093,...`);
    /// a listener not named here advertises its bound address.
    #[arg(long, env = "FLOE_ADVERTISED_LISTENERS", requires = "listeners")]
    pub advertised_listeners: Option<String>,

    /// Security protocols of listeners not named after one, as Kafka's
    /// `listener.security.protocol.map` (`INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_SSL`).
    #[arg(
        long,
        env = "FLOE_LISTENER_SECURITY_PROTOCOL_MAP",
        requires = "listeners"
    )]
    pub listener_security_protocol_map: Option<String>,

    /// The principal of every connection to a listener that does not
    /// authenticate (PLAINTEXT, or SSL without a client certificate),
    /// instead of `anonymous`: `INTERNAL=etl-service,...` (`User:` may be
    /// omitted). ACLs and purpose grants apply to it as to a login.
    #[arg(long, env = "FLOE_LISTENER_PRINCIPALS")]
    pub listener_principals: Option<String>,

    /// Directory for local state: the default object store and the SQLite
    /// metadata store.
    #[arg(long, env = "FLOE_DATA_DIR", default_value = "./floe-data")]
    pub data_dir: PathBuf,

    /// Where topic data lives: a local path, `file:///path`,
    /// `s3://bucket/prefix` (AWS_* environment variables; AWS_ENDPOINT_URL
    /// for any S3-compatible store, AWS_ALLOW_HTTP=true for plain HTTP), or
    /// `memory://` (tests; lost at exit). Default: <data-dir>/objects.
    #[arg(long, env = "FLOE_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// Metadata store URL: `sqlite://<path>` (one broker), or
    /// `postgres://user:password@host:port/database` (the database must
    /// exist; the first broker creates floe's tables). Default:
    /// sqlite://<data-dir>/metadata.db.
    #[arg(long, env = "FLOE_METADATA")]
    pub metadata: Option<String>,

    /// PostgreSQL metadata store: connections in the pool at most.
    #[arg(long, env = "FLOE_METADATA_MAX_CONNECTIONS", default_value_t = 16)]
    pub metadata_max_connections: u32,

    /// PostgreSQL metadata store: a statement running longer is cancelled
    /// (milliseconds).
    #[arg(
        long,
        env = "FLOE_METADATA_STATEMENT_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub metadata_statement_timeout_ms: u64,

    /// This broker's id.
    #[arg(long, env = "FLOE_BROKER_ID", default_value_t = 0)]
    pub broker_id: i32,

    /// This broker's rack (Kafka's `broker.rack`).
    #[arg(long, env = "FLOE_BROKER_RACK")]
    pub broker_rack: Option<String>,

    /// The broker's lease in the metadata store, renewed three times per
    /// period (milliseconds): a broker that cannot renew it stops serving
    /// within this time, and a broker id held by a run that died is free
    /// again after it (at once if the new run has the same listener). The
    /// topics of a broker that died move to the others within this plus
    /// one placement round (a second).
    #[arg(long, env = "FLOE_BROKER_LEASE_MS", default_value_t = 6_000)]
    pub broker_lease_ms: u64,

    /// Flush a topic's buffer to a Parquet file once it holds this many bytes.
    #[arg(long, env = "FLOE_FLUSH_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub flush_bytes: usize,

    /// Flush on the broker's ticks of this many milliseconds: a buffered
    /// record waits for the next tick at most, and every topic flushing on
    /// one tick shares one intake object. Produce acknowledgements wait for
    /// the flush. Default: 10 on a local directory (latency first), 200 on
    /// S3 (about 5 PUT requests per second per broker).
    #[arg(long, env = "FLOE_FLUSH_LINGER_MS")]
    pub flush_linger_ms: Option<u64>,

    /// A flush of at least this many bytes is written as a Parquet file of
    /// its topic's own; smaller ones share the tick's intake object and
    /// move into their topic's files at its table commit interval. Default:
    /// 256 KiB on a local directory, 4 MiB on S3.
    #[arg(long, env = "FLOE_INTAKE_DIRECT_BYTES")]
    pub intake_direct_bytes: Option<usize>,

    /// Create topics on first use (Metadata requests), like Kafka's
    /// auto.create.topics.enable.
    #[arg(long, env = "FLOE_AUTO_CREATE_TOPICS", default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of auto-created topics and of CreateTopics with -1
    /// (Kafka's num.partitions).
    #[arg(long, env = "FLOE_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Largest request frame accepted, in bytes (Kafka's
    /// socket.request.max.bytes).
    #[arg(long, env = "FLOE_MAX_FRAME_BYTES", default_value_t = floe_protocol::frame::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Kafka connections admitted at once (Kafka's max.connections); more
    /// are closed as they arrive. Lowered to fit the open-file limit.
    #[arg(long, env = "FLOE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Kafka connections admitted at once from one client address (Kafka's
    /// max.connections.per.ip).
    #[arg(
        long,
        env = "FLOE_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1_000
    )]
    pub max_connections_per_address: usize,

    /// A Kafka connection that sends nothing for this long is closed
    /// (Kafka's connections.max.idle.ms).
    #[arg(long, env = "FLOE_CONNECTIONS_MAX_IDLE_MS", default_value_t = 600_000)]
    pub connections_max_idle_ms: u64,

    /// A request must arrive whole within this long of its first byte, or
    /// its connection is closed.
    #[arg(
        long,
        env = "FLOE_REQUEST_ARRIVAL_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub request_arrival_timeout_ms: u64,

    /// HTTP API: connections admitted at once.
    #[arg(long, env = "FLOE_HTTP_MAX_CONNECTIONS", default_value_t = 1_000)]
    pub http_max_connections: usize,

    /// HTTP API: largest request body, in bytes.
    #[arg(long, env = "FLOE_HTTP_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub http_max_body_bytes: usize,

    /// HTTP API: a connection on which no byte moves either way for this
    /// long is closed (slow or stalled clients, idle keep-alives).
    #[arg(long, env = "FLOE_HTTP_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub http_idle_timeout_ms: u64,

    /// Memory the log may hold, in bytes, whatever the number of topics
    /// and partitions: 40 % for produce buffers (producers wait beyond it),
    /// 40 % for the tail caches (an equal share per partition), 10 % for
    /// read-ahead, 10 % for Parquet footers.
    #[arg(long, env = "FLOE_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub memory_bytes: usize,

    /// zstd level of Parquet pages (0 for uncompressed).
    #[arg(long, env = "FLOE_PARQUET_ZSTD_LEVEL", default_value_t = 1)]
    pub parquet_zstd_level: i32,

    /// How long a new group waits for more members before its first
    /// rebalance completes (Kafka's group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "FLOE_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// `floe.validate.mode` of topics that do not set it: `off`, or
    /// `reject` (values must carry a registered schema and satisfy it).
    #[arg(long, env = "FLOE_VALIDATE_MODE", default_value = "off", value_parser = ["off", "reject"])]
    pub validate_mode: String,

    /// Uncommitted files younger than this many seconds are not swept.
    #[arg(long, env = "FLOE_ORPHAN_GRACE_SECS", default_value_t = 600)]
    pub orphan_grace_secs: u64,

    /// Seconds between retention and orphan-sweep passes.
    #[arg(long, env = "FLOE_MAINTENANCE_INTERVAL_SECS", default_value_t = 30)]
    pub maintenance_interval_secs: u64,

    /// Compaction rewrites runs of small files (under half this) of a
    /// topic into files of about this size.
    #[arg(long, env = "FLOE_COMPACTION_TARGET_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub compaction_target_bytes: u64,

    /// Iceberg namespace the topics' tables appear in.
    #[arg(long, env = "FLOE_ICEBERG_NAMESPACE", default_value = "floe")]
    pub iceberg_namespace: String,

    /// How long a replaced Iceberg snapshot stays readable before it
    /// expires (and the files only it refers to are deleted).
    #[arg(
        long,
        env = "FLOE_ICEBERG_SNAPSHOT_RETENTION_SECS",
        default_value_t = 3600
    )]
    pub iceberg_snapshot_retention_secs: u64,

    /// Also register every topic's table in this external Iceberg REST
    /// catalog (its base URI, before `/v1/`) and keep the entry up to date
    /// after each snapshot. floe's own catalog keeps serving either way.
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_CATALOG")]
    pub iceberg_external_catalog: Option<String>,

    /// The warehouse asked for from the external catalog.
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_WAREHOUSE")]
    pub iceberg_external_warehouse: Option<String>,

    /// The namespace tables get in the external catalog (default: the
    /// `--iceberg-namespace`).
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_NAMESPACE")]
    pub iceberg_external_namespace: Option<String>,

    /// A bearer token for the external catalog.
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_TOKEN", hide_env_values = true)]
    pub iceberg_external_token: Option<String>,

    /// OAuth2 client credentials (`client_id:client_secret`) exchanged at
    /// the external catalog's `/v1/oauth/tokens` for a bearer token.
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_CREDENTIAL", hide_env_values = true)]
    pub iceberg_external_credential: Option<String>,

    /// Wrap the object store in a fault injector whose error and stall
    /// rates are set at run time with `PUT /admin/faults` (all zero at
    /// start). For the consistency checker and tests; never in production.
    #[arg(long, env = "FLOE_FAULT_INJECTION", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub fault_injection: bool,

    /// The OAuth2 scope asked for with the client credentials.
    #[arg(long, env = "FLOE_ICEBERG_EXTERNAL_SCOPE", default_value = "catalog")]
    pub iceberg_external_scope: String,
}

impl ServeArgs {
    fn on_s3(&self) -> bool {
        self.object_store
            .as_deref()
            .is_some_and(|u| u.starts_with("s3://"))
    }

    /// The flush linger: as set, or the default for the object store.
    pub fn flush_linger_ms(&self) -> u64 {
        self.flush_linger_ms.unwrap_or(if self.on_s3() {
            DEFAULT_S3_FLUSH_LINGER_MS
        } else {
            DEFAULT_LOCAL_FLUSH_LINGER_MS
        })
    }

    /// The size from which a flush gets a file of its own: as set, or the
    /// default for the object store.
    pub fn intake_direct_bytes(&self) -> usize {
        self.intake_direct_bytes.unwrap_or(if self.on_s3() {
            DEFAULT_S3_INTAKE_DIRECT_BYTES
        } else {
            DEFAULT_LOCAL_INTAKE_DIRECT_BYTES
        })
    }
}

/// Flush linger on a local directory: latency first.
pub const DEFAULT_LOCAL_FLUSH_LINGER_MS: u64 = 10;
/// Flush linger on S3: about 5 intake objects (PUT requests) per second per
/// broker, produce p99 within ~500 ms on S3 Standard.
pub const DEFAULT_S3_FLUSH_LINGER_MS: u64 = 200;
/// On a local directory a busy topic's flush skips the intake early: the
/// move would copy it a second time for nothing.
pub const DEFAULT_LOCAL_INTAKE_DIRECT_BYTES: usize = 256 * 1024;
/// On S3 a flush gets its own PUT only when it is worth one.
pub const DEFAULT_S3_INTAKE_DIRECT_BYTES: usize = 4 * 1024 * 1024;
