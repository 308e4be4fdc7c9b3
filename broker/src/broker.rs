//! Shared broker state: the log and what Metadata responses advertise.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use floe_storage::log::{Log, LogConfig, TopicLog};
use floe_storage::memory::MemoryBudget;
use floe_storage::meta::faulty::FaultyMetadata;
use floe_storage::meta::postgres::PostgresOptions;
use floe_storage::meta::sql::SqlStore;
use floe_storage::meta::{BrokerRecord, ListenerAddress, MetadataStore};
use floe_storage::metered::{MeteredStore, StoreMetrics};
use floe_storage::object::open_object_store;
use floe_storage::segment::SegmentFormat;
use floe_storage::table::external::ExternalCatalogConfig;
use floe_storage::table::{TableConfig, Tables};
use floe_storage::topic_config::TopicConfig;
use tracing::info;

use crate::cluster::{Cluster, PlacedTopic};
use crate::config::ServeArgs;
use crate::groups::consumer::TopicCatalog;
use crate::groups::seat::Seat;
use crate::kafka::errors::code;
use crate::membership::Membership;

/// What every request handler shares.
pub struct Broker {
    /// This broker's registration and lease.
    membership: Arc<Membership>,
    /// The live brokers and who leads each topic.
    cluster: Arc<Cluster>,
    /// The log of every topic.
    log: Arc<Log>,
    /// The metadata store (for what the broker keeps there itself: group
    /// offsets, producer ids).
    meta: Arc<dyn MetadataStore>,
    /// The topics' Iceberg tables, as the catalog serves them.
    tables: Arc<Tables>,
    /// The group coordinators, in use where this broker coordinates.
    seat: Arc<Seat>,
    /// The schema registry and grants.
    registry: Arc<crate::registry::Registry>,
    /// The ACLs.
    authorizer: Arc<crate::acl::Authorizer>,
    /// The access tokens floe issues over HTTP.
    tokens: crate::tokens::TokenIssuer,
    /// True when topics that do not set `floe.validate.mode` validate.
    validates: bool,
    /// Background writer of group state.
    group_saver: Arc<crate::groups::saver::GroupSaver>,
    /// The transaction coordinator, in use where groups are coordinated.
    transactions: Arc<crate::transactions::TxnCoordinator>,
    /// This broker's id.
    broker_id: i32,
    /// Where clients of each listener connect to this broker.
    advertised: Vec<ListenerAddress>,
    /// This broker's rack (`broker.rack`), if it has one.
    rack: Option<String>,
    /// Kafka's cluster id.
    cluster_id: String,
    /// auto.create.topics.enable.
    auto_create_topics: bool,
    /// num.partitions.
    num_partitions: i32,
    /// socket.request.max.bytes.
    max_frame_bytes: usize,
    /// Where the data lives, as DescribeLogDirs names it (the object
    /// store's URI with floe's prefix).
    log_dir: String,
    /// The object store's fault injector, with `--fault-injection`.
    faults: Option<floe_storage::faults::Faults>,
    /// What `/metrics` shows.
    metrics: Arc<crate::metrics::Metrics>,
}

/// Opens the metadata store named by `url`.
async fn open_metadata(
    url: &str,
    postgres: &PostgresOptions,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = std::path::Path::new(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = SqlStore::sqlite(path)
            .await
            .with_context(|| format!("opening SQLite metadata store {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = SqlStore::postgres(url, postgres)
            .await
            .context("opening the PostgreSQL metadata store")?;
        return Ok(Arc::new(store));
    }
    bail!("unsupported metadata store URL {url}: use sqlite://<path> or postgres://user@host:port/database")
}

/// A metadata URL as it may be logged: its password replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Where clients of one listener reach a live broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// The broker's id.
    pub node_id: i32,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

impl Broker {
    /// This broker's registration and lease.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// The live brokers and who leads each topic.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The log of every topic this broker leads.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The live brokers by id, this one always among them (before the
    /// first placement round has read them).
    pub fn live_brokers(&self) -> Vec<BrokerRecord> {
        let mut live = self.cluster.brokers();
        if !live.iter().any(|b| b.broker_id == self.broker_id) {
            let first = &self.advertised[0];
            live.push(BrokerRecord {
                broker_id: self.broker_id,
                incarnation: String::new(),
                host: first.host.clone(),
                port: first.port,
                rack: self.rack.clone(),
                lease_expires_ms: 0,
                listeners: self.advertised.clone(),
            });
            live.sort_by_key(|b| b.broker_id);
        }
        live
    }

    /// The live brokers, by id, with the address clients that came in
    /// through `listener` are told for each; brokers without a listener of
    /// that name are left out, as in Kafka.
    pub fn addresses(&self, listener: &str) -> Vec<BrokerAddress> {
        self.live_brokers()
            .iter()
            .filter_map(|b| {
                let (host, port) = b.address(listener)?;
                Some(BrokerAddress {
                    node_id: b.broker_id,
                    host: host.to_string(),
                    port,
                    rack: b.rack.clone(),
                })
            })
            .collect()
    }

    /// A topic's placement: from the log if this broker leads it (its
    /// epochs and configs are the freshest), else from the cluster view.
    pub fn placed(&self, name: &str) -> Option<PlacedTopic> {
        match self.log.topic(name) {
            Some(t) => Some(self.placed_here(&t)),
            None => self.cluster.topic(name),
        }
    }

    /// A topic's name and placement, by id (see [`Broker::placed`]).
    pub fn placed_by_id(&self, id: uuid::Uuid) -> Option<(String, PlacedTopic)> {
        match self.log.topic_by_id(id) {
            Some(t) => Some((t.name.clone(), self.placed_here(&t))),
            None => self.cluster.topic_by_id(id),
        }
    }

    /// Every topic of the cluster with its placement, by name.
    pub fn placed_topics(&self) -> BTreeMap<String, PlacedTopic> {
        let mut all: BTreeMap<String, PlacedTopic> = self.cluster.topics().into_iter().collect();
        for t in self.log.topics() {
            all.insert(t.name.clone(), self.placed_here(&t));
        }
        all
    }

    /// A topic's effective configuration, wherever it is led.
    pub fn topic_config(&self, name: &str) -> Option<TopicConfig> {
        match self.log.topic(name) {
            Some(t) => Some(t.config()),
            None => self
                .log
                .topic_config(self.cluster.topic(name)?.configs)
                .ok(),
        }
    }

    /// The catalog of the topics that exist now, in the whole cluster.
    pub fn catalog(&self) -> TopicCatalog {
        crate::cluster::catalog(&self.placed_topics())
    }

    fn placed_here(&self, t: &TopicLog) -> PlacedTopic {
        PlacedTopic {
            id: t.id,
            leader_id: self.broker_id,
            epochs: t
                .partitions()
                .iter()
                .map(|p| p.snapshot().leader_epoch)
                .collect(),
            configs: t.config().overrides,
        }
    }

    /// The error for a request about partition `partition` of topic `name`
    /// that this broker does not lead: NOT_LEADER_OR_FOLLOWER if the
    /// cluster has it (the client looks for its leader again), else
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub fn not_led_here(&self, name: &str, partition: i32) -> i16 {
        match self.placed(name) {
            Some(t) if (0..t.epochs.len() as i32).contains(&partition) => {
                code::NOT_LEADER_OR_FOLLOWER
            }
            _ => code::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }

    /// The metadata store (for what the broker keeps there itself: group
    /// offsets, producer ids).
    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    /// The topics' Iceberg tables, as the catalog serves them.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// The consumer group coordinator (classic protocol).
    pub fn groups(&self) -> Arc<crate::groups::Coordinator> {
        self.seat.classic()
    }

    /// Consumer-protocol groups (KIP-848).
    pub fn consumer_groups(&self) -> Arc<crate::groups::consumer::ConsumerGroups> {
        self.seat.consumer()
    }

    /// Whether this broker coordinates consumer groups now: the cluster
    /// places the group coordinator here and the lease is live.
    pub fn coordinates_groups(&self) -> bool {
        self.membership.is_live() && self.cluster.group_coordinator() == Some(self.broker_id)
    }

    /// The ACLs, as this broker enforces them.
    pub fn authorizer(&self) -> &Arc<crate::acl::Authorizer> {
        &self.authorizer
    }

    /// The access tokens this cluster issues.
    pub fn tokens(&self) -> &crate::tokens::TokenIssuer {
        &self.tokens
    }

    /// The schema registry and grants.
    pub fn registry(&self) -> &Arc<crate::registry::Registry> {
        &self.registry
    }

    /// Background writer of group state.
    pub fn group_saver(&self) -> &Arc<crate::groups::saver::GroupSaver> {
        &self.group_saver
    }

    /// The transaction coordinator.
    pub fn transactions(&self) -> &Arc<crate::transactions::TxnCoordinator> {
        &self.transactions
    }

    /// True when topics that do not set `floe.validate.mode` validate.
    pub fn validates(&self) -> bool {
        self.validates
    }

    /// This broker's id.
    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// This broker's rack (`broker.rack`), if it has one.
    pub fn rack(&self) -> Option<&str> {
        self.rack.as_deref()
    }

    /// Kafka's cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// auto.create.topics.enable.
    pub fn auto_create_topics(&self) -> bool {
        self.auto_create_topics
    }

    /// num.partitions.
    pub fn num_partitions(&self) -> i32 {
        self.num_partitions
    }

    /// socket.request.max.bytes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Where the data lives (the object store's URI and floe's prefix).
    pub fn log_dir(&self) -> &str {
        &self.log_dir
    }

    /// The object store's fault injector, with `--fault-injection`.
    pub fn faults(&self) -> Option<&floe_storage::faults::Faults> {
        self.faults.as_ref()
    }

    /// What `/metrics` shows.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Opens stores and the log as `args` say. `advertised` is the Kafka
    /// address to tell clients.
    pub async fn open(
        args: &ServeArgs,
        advertised: Vec<ListenerAddress>,
    ) -> anyhow::Result<Arc<Broker>> {
        anyhow::ensure!(!advertised.is_empty(), "a broker needs a listener");
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
        let object_url = args
            .object_store
            .clone()
            .unwrap_or_else(|| args.data_dir.join("objects").display().to_string());
        let mut objects = open_object_store(&object_url)
            .with_context(|| format!("opening object store {object_url}"))?;
        let faults = args.fault_injection.then(|| {
            let faults = floe_storage::faults::Faults::new();
            objects.store = Arc::new(floe_storage::faults::FaultyStore::new(
                objects.store.clone(),
                faults.clone(),
            ));
            tracing::warn!("object-store fault injection is on (PUT /admin/faults)");
            faults
        });
        // Outermost: every request the log makes is counted, failed ones
        // included.
        let store_metrics = Arc::new(StoreMetrics::default());
        objects.store = Arc::new(MeteredStore::new(
            objects.store.clone(),
            store_metrics.clone(),
        ));
        let metadata_url = args
            .metadata
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("metadata.db").display()));
        let postgres = PostgresOptions {
            max_connections: args.metadata_max_connections.max(1),
            statement_timeout: Duration::from_millis(args.metadata_statement_timeout_ms.max(1)),
            ..PostgresOptions::default()
        };
        let mut meta = open_metadata(&metadata_url, &postgres).await?;
        if let Some(faults) = &faults {
            meta = Arc::new(FaultyMetadata::new(meta, faults.clone()));
        }
        let cluster_id = meta.cluster_id().await?;
        let metadata_url = without_password(&metadata_url);
        info!(objects = %objects.description, metadata = %metadata_url, %cluster_id, flush_linger_ms = args.flush_linger_ms(), intake_direct_bytes = args.intake_direct_bytes(), "stores open");
        let cfg = LogConfig {
            broker_id: args.broker_id,
            flush_bytes: args.flush_bytes.max(1),
            flush_linger: Duration::from_millis(args.flush_linger_ms().max(1)),
            intake_direct_bytes: args.intake_direct_bytes(),
            memory: MemoryBudget::of_total(args.memory_bytes),
            format: SegmentFormat {
                zstd_level: args.parquet_zstd_level,
            },
            orphan_grace: Duration::from_secs(args.orphan_grace_secs),
            maintenance_interval: Duration::from_secs(args.maintenance_interval_secs.max(1)),
            compaction_target_bytes: args.compaction_target_bytes.max(1),
            tables: TableConfig {
                root_uri: objects.root_uri.clone(),
                namespace: args.iceberg_namespace.clone(),
                snapshot_retention: Duration::from_secs(args.iceberg_snapshot_retention_secs),
                external: args
                    .iceberg_external_catalog
                    .clone()
                    .map(|uri| ExternalCatalogConfig {
                        uri,
                        warehouse: args.iceberg_external_warehouse.clone(),
                        namespace: args
                            .iceberg_external_namespace
                            .clone()
                            .unwrap_or_else(|| args.iceberg_namespace.clone()),
                        token: args.iceberg_external_token.clone(),
                        credential: args.iceberg_external_credential.clone(),
                        scope: args.iceberg_external_scope.clone(),
                    }),
            },
        };
        let membership = Membership::join(
            meta.clone(),
            args.broker_id,
            &advertised,
            args.broker_rack.clone(),
            Duration::from_millis(args.broker_lease_ms.max(100)),
        )
        .await?;
        let registry = crate::registry::Registry::open(meta.clone()).await?;
        if let Some(spec) = &args.initial_user {
            let Some((user, password)) = spec
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
            else {
                bail!("--initial-user takes name:password");
            };
            if crate::sasl::ensure_user(meta.as_ref(), user, password).await? {
                info!(user, "initial user created");
            }
        }
        let authorizer = crate::acl::Authorizer::open(
            meta.clone(),
            crate::acl::AuthorizerConfig::new(
                args.acls,
                &args.super_users,
                args.allow_everyone_if_no_acl_found,
            )?,
        )
        .await?;
        let tokens = crate::tokens::TokenIssuer::open(meta.as_ref()).await?;
        let group_saver = crate::groups::saver::GroupSaver::start(meta.clone());
        let log_dir = format!("{}{}", objects.root_uri, objects.prefix);
        let log = Log::open(cfg, meta.clone(), objects.store, objects.prefix).await?;
        // Before any listener starts: every flush of a schema topic writes
        // typed columns.
        log.layouts().set_source(registry.clone());
        // The groups are loaded where this broker coordinates them.
        let seat = Seat::open(
            group_saver.clone(),
            Duration::from_millis(args.group_initial_rebalance_delay_ms),
        );
        let cluster = Cluster::start(
            meta.clone(),
            log.clone(),
            membership.clone(),
            seat.clone(),
            registry.clone(),
        )
        .await?;
        let transactions = crate::transactions::TxnCoordinator::new(
            meta.clone(),
            log.clone(),
            group_saver.clone(),
        );
        let broker = Arc::new(Broker {
            transactions,
            membership,
            cluster,
            tables: log.tables().clone(),
            log,
            meta,
            seat,
            group_saver,
            registry,
            authorizer,
            tokens,
            validates: args.validate_mode == "reject",
            broker_id: args.broker_id,
            advertised,
            rack: args.broker_rack.clone(),
            cluster_id,
            auto_create_topics: args.auto_create_topics,
            num_partitions: args.num_partitions.max(1),
            max_frame_bytes: args.max_frame_bytes,
            log_dir,
            faults,
            metrics: Arc::new(crate::metrics::Metrics::new(store_metrics)),
        });
        // The transaction coordinator's duties (finishing decided
        // transactions, aborting timed-out ones), where it runs.
        let weak = Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Some(b) = weak.upgrade() else { return };
                if b.coordinates_groups() {
                    b.transactions.tick().await;
                }
            }
        });
        Ok(broker)
    }
}
