//! The broker's authorizer: its settings, the index it follows the
//! metadata store with, and the [`Access`] a connection's requests are
//! checked through.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use floe_storage::error::StorageError;
use floe_storage::meta::MetadataStore;
use tracing::warn;

use super::index::Index;
use super::{kafka_principal, AclFilter, Binding, Operation, Resource, ResourceType};
use crate::audit;

/// How often the ACLs are read back without a notification.
const ROUND: Duration = Duration::from_secs(1);

/// What the authorizer enforces.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    /// False: every principal may do everything and the ACL APIs answer
    /// SECURITY_DISABLED, as Kafka without `authorizer.class.name`.
    pub enabled: bool,
    /// Principals (`User:admin`) allowed everything (`super.users`).
    pub super_users: BTreeSet<String>,
    /// Kafka's `allow.everyone.if.no.acl.found`: a resource no entry names
    /// is open to everyone (else to super users only).
    pub allow_if_no_acl: bool,
}

impl AuthorizerConfig {
    /// The settings from the flags; `super_users` is Kafka's
    /// `;`-separated list.
    pub fn new(enabled: bool, super_users: &str, allow_if_no_acl: bool) -> anyhow::Result<Self> {
        let super_users: BTreeSet<String> = super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = super_users.iter().find(|u| !u.contains(':')) {
            anyhow::bail!("--super-users: `{bad}` is not a principal (write `User:{bad}`)");
        }
        Ok(AuthorizerConfig {
            enabled,
            super_users,
            allow_if_no_acl,
        })
    }
}

/// The ACLs as this broker enforces them.
pub struct Authorizer {
    config: AuthorizerConfig,
    meta: Arc<dyn MetadataStore>,
    index: RwLock<Arc<Index>>,
    /// The store's change token the index was loaded at; held while
    /// loading, so one load runs at a time.
    loaded: tokio::sync::Mutex<Option<String>>,
}

impl Authorizer {
    /// Loads the ACLs and follows the store's changes of them (each round,
    /// and at once where the store announces them) while it lives.
    pub async fn open(
        meta: Arc<dyn MetadataStore>,
        config: AuthorizerConfig,
    ) -> anyhow::Result<Arc<Authorizer>> {
        let (acls, token) = meta.acls().await?;
        let authorizer = Arc::new(Authorizer {
            config,
            meta,
            index: RwLock::new(Arc::new(index_of(&acls))),
            loaded: tokio::sync::Mutex::new(token),
        });
        tokio::spawn(follow_changes(Arc::downgrade(&authorizer)));
        Ok(authorizer)
    }

    /// True when ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the ACLs again if the store's change token moved.
    pub async fn follow(&self) -> Result<(), StorageError> {
        let mut loaded = self.loaded.lock().await;
        if self.meta.acls_change().await? == *loaded {
            return Ok(());
        }
        let (acls, token) = self.meta.acls().await?;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index_of(&acls));
        *loaded = token;
        Ok(())
    }

    /// How many entries are enforced.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// True when no entry is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checks of requests from `principal` (floe's form: `alice`,
    /// `anonymous`) at `host`.
    pub fn access(self: &Arc<Self>, principal: &str, host: std::net::IpAddr) -> Access {
        let principal = kafka_principal(principal);
        Access {
            superuser: !self.config.enabled || self.config.super_users.contains(&principal),
            authorizer: self.clone(),
            principal: principal.into(),
            host: host.to_string().into(),
        }
    }

    /// The entries `filter` selects, as the store holds them now.
    pub async fn describe(&self, filter: &AclFilter) -> Result<Vec<Binding>, StorageError> {
        self.follow().await?;
        let mut found: Vec<Binding> = self
            .index()
            .all()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        found.sort();
        Ok(found)
    }

    /// Adds entries (each already checked with [`Binding::invalid`]).
    pub async fn create(&self, who: &Access, bindings: &[Binding]) -> Result<(), StorageError> {
        let records: Vec<_> = bindings.iter().map(Binding::record).collect();
        let result = self.meta.alter_acls(&records, &[]).await;
        for b in bindings {
            audit::changed(
                who.principal(),
                &describe(b),
                "create acl",
                &outcome(&result),
            );
        }
        result?;
        self.follow().await
    }

    /// Removes the entries each filter selects, and says which, per filter.
    pub async fn delete(
        &self,
        who: &Access,
        filters: &[AclFilter],
    ) -> Result<Vec<Vec<Binding>>, StorageError> {
        let index = {
            self.follow().await?;
            self.index()
        };
        let selected: Vec<Vec<Binding>> = filters
            .iter()
            .map(|f| {
                let mut found: Vec<Binding> =
                    index.all().filter(|b| f.matches(b)).cloned().collect();
                found.sort();
                found
            })
            .collect();
        let removed: BTreeSet<&Binding> = selected.iter().flatten().collect();
        if removed.is_empty() {
            return Ok(selected);
        }
        let records: Vec<_> = removed.iter().map(|b| b.record()).collect();
        let result = self.meta.alter_acls(&[], &records).await;
        for b in &removed {
            audit::changed(
                who.principal(),
                &describe(b),
                "delete acl",
                &outcome(&result),
            );
        }
        result?;
        self.follow().await?;
        Ok(selected)
    }
}

fn index_of(acls: &[floe_storage::meta::AclRecord]) -> Index {
    Index::new(acls.iter().filter_map(|r| {
        let b = Binding::from_record(r);
        if b.is_none() {
            warn!(acl = ?r, "an ACL with codes this broker does not know is ignored");
        }
        b
    }))
}

/// An entry as the audit log names it.
fn describe(b: &Binding) -> String {
    format!(
        "{:?}:{:?}:{} {:?} {} from {} {:?}",
        b.resource_type, b.pattern, b.name, b.permission, b.principal, b.host, b.operation
    )
}

fn outcome<T>(r: &Result<T, StorageError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

async fn follow_changes(authorizer: std::sync::Weak<Authorizer>) {
    let mut changes = authorizer.upgrade().and_then(|a| a.meta.changes());
    let mut seen = changes.as_mut().map(|c| c.borrow_and_update().acls);
    loop {
        let announced = async {
            match changes.as_mut() {
                Some(c) => loop {
                    if c.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let now = c.borrow_and_update().acls;
                    if Some(now) != seen {
                        seen = Some(now);
                        return;
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = announced => {}
        }
        let Some(authorizer) = authorizer.upgrade() else {
            return;
        };
        if let Err(e) = authorizer.follow().await {
            warn!(error = %e, "could not read the ACLs' changes");
        }
    }
}

/// One connection's principal and host, checked against the ACLs.
#[derive(Clone)]
pub struct Access {
    authorizer: Arc<Authorizer>,
    /// Allowed everything: a super user, or no authorizer.
    superuser: bool,
    /// Kafka's form: `User:alice`.
    principal: Arc<str>,
    host: Arc<str>,
}

impl Access {
    /// The principal, as ACLs name it.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// True when it may do everything: a super user, or no authorizer.
    pub fn is_superuser(&self) -> bool {
        self.superuser
    }

    /// May it do `op` on `resource`? A refusal is written to the audit log.
    pub fn allows(&self, resource: Resource<'_>, op: Operation) -> bool {
        let allowed = self.sees(resource, op);
        if !allowed {
            let resource = format!("{:?}:{}", resource.resource_type(), resource.name());
            audit::denied(&self.principal, &self.host, &resource, &format!("{op:?}"));
        }
        allowed
    }

    /// As [`Access::allows`], without an audit line: for filtering what a
    /// listing shows (Kafka does not log those either).
    pub fn sees(&self, resource: Resource<'_>, op: Operation) -> bool {
        self.superuser
            || self.authorizer.index().decide(
                &self.principal,
                &self.host,
                &resource,
                op,
                self.authorizer.config.allow_if_no_acl,
            )
    }

    /// May it do `op` on at least one resource of `kind`?
    pub fn allows_some(&self, kind: ResourceType, op: Operation) -> bool {
        self.superuser
            || self.authorizer.index().allows_some(
                &self.principal,
                &self.host,
                kind,
                op,
                self.authorizer.config.allow_if_no_acl,
            )
    }

    /// May it create the topic `name`? CREATE on the cluster or on the
    /// topic, as in Kafka.
    pub fn may_create_topic(&self, name: &str) -> bool {
        self.sees(Resource::Cluster, Operation::Create)
            || self.allows(Resource::Topic(name), Operation::Create)
    }

    /// Which of `ops` it may do on `resource`, as the bit set Kafka's
    /// authorized-operations fields carry.
    pub fn operations(&self, resource: Resource<'_>, ops: &[Operation]) -> i32 {
        ops.iter()
            .filter(|op| self.sees(resource, **op))
            .fold(0, |bits, op| bits | 1 << (*op as i8))
    }
}
