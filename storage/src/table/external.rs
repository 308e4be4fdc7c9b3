//! Registration of the topics' tables in an external Iceberg REST catalog.
//!
//! floe stays the owner of every table: it writes the data files, the
//! manifests and the metadata, and its own catalog answers first. With
//! `--iceberg-external-catalog` set, each table is also entered in another
//! REST catalog (Polaris, Unity, Gravitino, Lakekeeper, Nessie, a
//! JDBC-backed catalog, ...) so that engines attached there find the topics
//! next to their other tables:
//!
//! 1. The first time, the table is registered (`POST .../register`) with
//!    floe's current metadata file.
//! 2. After every later commit of floe's (a snapshot, a schema change, an
//!    expiry), the external entry is brought level by one `updateTable`
//!    carrying what differs: schemas added, snapshots added, the `main`
//!    branch moved, snapshots expired, properties changed. The commit
//!    asserts the table's UUID and the snapshot `main` had when floe looked,
//!    so a concurrent writer makes it fail rather than be overwritten; the
//!    next round looks again.
//!
//! The external catalog writes its own metadata files (next to floe's, in
//! the table's `metadata/` folder); the table's
//! `write.metadata.delete-after-commit.enabled` asks it to delete the old
//! ones as floe does its own. A failure (catalog down, refused, a
//! conflict) is logged and retried at the next commit round; it never
//! holds up Kafka or floe's own table.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iceberg::spec::{SnapshotReference, SnapshotRetention, TableMetadata, MAIN_BRANCH};
use iceberg::{TableRequirement, TableUpdate};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::LoadedTable;
use crate::error::{BackendError, Result, StorageError};

/// Where and how to reach the external catalog.
#[derive(Debug, Clone, Default)]
pub struct ExternalCatalogConfig {
    /// Base URI of the REST catalog (the part before `/v1/`).
    pub uri: String,
    /// The `warehouse` asked for at `GET /v1/config`.
    pub warehouse: Option<String>,
    /// The namespace the tables are entered in (levels separated by `.`).
    pub namespace: String,
    /// A bearer token sent with every request.
    pub token: Option<String>,
    /// OAuth2 client credentials `client_id:client_secret`, exchanged at
    /// `<uri>/v1/oauth/tokens` for a bearer token (and again when it is
    /// refused).
    pub credential: Option<String>,
    /// The OAuth2 scope asked for with `credential`.
    pub scope: String,
}

/// A client of the external catalog that mirrors floe's tables into it.
pub struct ExternalCatalog {
    cfg: ExternalCatalogConfig,
    http: reqwest::Client,
    /// `<uri>/v1/<prefix>` once the catalog's config was read and the
    /// namespace exists.
    base: tokio::sync::Mutex<Option<String>>,
    token: Mutex<Option<String>>,
    /// Per topic, floe's metadata file the external entry last matched.
    mirrored: Mutex<HashMap<String, String>>,
    /// Topics whose name is taken by a table that is not theirs (warned
    /// once).
    taken: Mutex<HashSet<String>>,
    /// Topics being published now.
    busy: Mutex<HashSet<String>>,
    /// Per topic, when the last attempt failed: the next waits
    /// [`RETRY_AFTER`], so a catalog that is down is not hammered (nor the
    /// log filled) at every commit round.
    failed: Mutex<HashMap<String, Instant>>,
}

/// How long a failed topic waits before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What the external catalog says of a table.
struct Remote {
    uuid: String,
    location: String,
    main: Option<i64>,
    snapshots: HashSet<i64>,
    schemas: HashSet<i32>,
    current_schema: Option<i32>,
    properties: HashMap<String, String>,
}

impl ExternalCatalog {
    /// A client for `cfg`; nothing is sent until the first table is
    /// published.
    pub fn new(cfg: ExternalCatalogConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BackendError::ExternalCatalog(format!("http client: {e}")))?;
        let token = cfg.token.clone();
        Ok(ExternalCatalog {
            cfg,
            http,
            base: tokio::sync::Mutex::new(None),
            token: Mutex::new(token),
            mirrored: Mutex::new(HashMap::new()),
            taken: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// The catalog's URI.
    pub fn uri(&self) -> &str {
        &self.cfg.uri
    }

    /// Publishes `table` (see [`ExternalCatalog::publish`]) in a task of
    /// its own, unless the entry already matches it or a task for the
    /// topic is still running (the next round catches up: the entry is
    /// compared again then).
    pub fn spawn_publish(self: Arc<Self>, topic: &str, table: LoadedTable, stale_prefix: String) {
        if crate::sync::lock(&self.mirrored).get(topic) == Some(&table.location) {
            return;
        }
        if !crate::sync::lock(&self.busy).insert(topic.to_string()) {
            return;
        }
        let topic = topic.to_string();
        tokio::spawn(async move {
            if let Err(e) = self.publish(&topic, &table, &stale_prefix).await {
                warn!(topic, catalog = self.uri(), error = %e, "could not update the external catalog; retrying in 30 s");
            }
            crate::sync::lock(&self.busy).remove(&topic);
        });
    }

    /// Brings the external entry of `topic` level with floe's `table`,
    /// unless the last attempt failed less than [`RETRY_AFTER`] ago.
    /// `stale_prefix` is the location prefix of this topic name's tables
    /// (an entry under it with another UUID is a deleted topic's, and is
    /// replaced).
    async fn publish(&self, topic: &str, table: &LoadedTable, stale_prefix: &str) -> Result<()> {
        let waiting = crate::sync::lock(&self.failed)
            .get(topic)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER);
        if waiting {
            return Ok(());
        }
        let result = self.level(topic, table, stale_prefix).await;
        if result.is_err() {
            crate::sync::lock(&self.failed).insert(topic.to_string(), Instant::now());
        } else {
            crate::sync::lock(&self.failed).remove(topic);
        }
        result
    }

    async fn level(&self, topic: &str, table: &LoadedTable, stale_prefix: &str) -> Result<()> {
        let base = self.base().await?;
        let url = self.table_url(&base, topic);
        let ours = &table.metadata;
        let remote = match self.load(&url).await? {
            None => {
                self.register(&base, topic, &table.location).await?;
                self.mirrored(topic, &table.location);
                info!(topic, catalog = %self.cfg.uri, "registered table in the external catalog");
                return Ok(());
            }
            Some(r) => r,
        };
        if remote.uuid != ours.uuid().to_string() {
            // `<stale_prefix><topic id>`: this name's table from before.
            let stale = remote
                .location
                .strip_prefix(stale_prefix)
                .is_some_and(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()));
            if stale && remote.location != ours.location() {
                info!(
                    topic,
                    "external catalog holds a deleted topic's table of this name; replacing it"
                );
                self.drop(&url).await?;
                self.register(&base, topic, &table.location).await?;
                self.mirrored(topic, &table.location);
                return Ok(());
            }
            if crate::sync::lock(&self.taken).insert(topic.to_string()) {
                warn!(
                    topic,
                    catalog = %self.cfg.uri,
                    location = %remote.location,
                    "the external catalog has another table of this name; leaving it alone"
                );
            }
            return Ok(());
        }
        crate::sync::lock(&self.taken).remove(topic);
        let updates = updates(&remote, ours);
        if updates.is_empty() {
            self.mirrored(topic, &table.location);
            return Ok(());
        }
        let requirements = [
            TableRequirement::UuidMatch { uuid: ours.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_string(),
                snapshot_id: remote.main,
            },
        ];
        let body = json!({
            "identifier": { "namespace": self.namespace_levels(), "name": topic },
            "requirements": requirements,
            "updates": updates,
        });
        let (status, answer) = self.call(Method::POST, &url, Some(&body)).await?;
        match status {
            s if s.is_success() => {
                self.mirrored(topic, &table.location);
                debug!(
                    topic,
                    updates = updates.len(),
                    "external catalog entry updated"
                );
                Ok(())
            }
            // Someone else committed meanwhile: look again next round.
            StatusCode::CONFLICT => {
                debug!(
                    topic,
                    "external catalog commit conflicted; retrying next round"
                );
                Ok(())
            }
            s => Err(refused("commit", s, &answer)),
        }
    }

    /// Removes the external entry of a deleted topic, if it is the entry of
    /// the table `uuid`.
    pub async fn forget(&self, topic: &str, uuid: Option<String>) -> Result<()> {
        crate::sync::lock(&self.mirrored).remove(topic);
        crate::sync::lock(&self.taken).remove(topic);
        crate::sync::lock(&self.failed).remove(topic);
        let base = self.base().await?;
        let url = self.table_url(&base, topic);
        match (self.load(&url).await?, uuid) {
            (Some(remote), Some(uuid)) if remote.uuid == uuid => {
                self.drop(&url).await?;
                info!(
                    topic,
                    "dropped the deleted topic's table from the external catalog"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn mirrored(&self, topic: &str, location: &str) {
        crate::sync::lock(&self.mirrored).insert(topic.to_string(), location.to_string());
    }

    fn namespace_levels(&self) -> Vec<&str> {
        self.cfg.namespace.split('.').collect()
    }

    fn table_url(&self, base: &str, topic: &str) -> String {
        format!(
            "{base}/namespaces/{}/tables/{}",
            self.namespace_path(),
            encode(topic)
        )
    }

    /// The namespace as one path segment (levels joined by the unit
    /// separator, escaped).
    fn namespace_path(&self) -> String {
        self.namespace_levels()
            .iter()
            .map(|l| encode(l))
            .collect::<Vec<_>>()
            .join("%1F")
    }

    /// `<uri>/v1/<prefix>`, reading the catalog's config and creating the
    /// namespace the first time.
    async fn base(&self) -> Result<String> {
        let mut base = self.base.lock().await;
        if let Some(b) = base.as_ref() {
            return Ok(b.clone());
        }
        let root = self.cfg.uri.trim_end_matches('/');
        let mut url = format!("{root}/v1/config");
        if let Some(w) = &self.cfg.warehouse {
            url.push_str(&format!("?warehouse={}", encode(w)));
        }
        let (status, config) = self.call(Method::GET, &url, None).await?;
        if !status.is_success() {
            return Err(refused("config", status, &config));
        }
        // Overrides win over defaults (the REST spec's merge order).
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|k| config[k]["prefix"].as_str())
            .filter(|p| !p.is_empty());
        let resolved = match prefix {
            Some(p) => format!("{root}/v1/{}", p.trim_matches('/')),
            None => format!("{root}/v1"),
        };
        let body = json!({ "namespace": self.namespace_levels(), "properties": {} });
        let (status, answer) = self
            .call(Method::POST, &format!("{resolved}/namespaces"), Some(&body))
            .await?;
        if !status.is_success() && status != StatusCode::CONFLICT {
            return Err(refused("create namespace", status, &answer));
        }
        *base = Some(resolved.clone());
        Ok(resolved)
    }

    async fn load(&self, url: &str) -> Result<Option<Remote>> {
        let (status, answer) = self.call(Method::GET, url, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused("load table", status, &answer));
        }
        remote(&answer["metadata"]).map(Some)
    }

    async fn register(&self, base: &str, topic: &str, location: &str) -> Result<()> {
        let url = format!("{base}/namespaces/{}/register", self.namespace_path());
        let body = json!({ "name": topic, "metadata-location": location });
        let (status, answer) = self.call(Method::POST, &url, Some(&body)).await?;
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            // The namespace went (a catalog that lost its state): read the
            // config and create it again next time.
            *self.base.lock().await = None;
        }
        Err(refused("register", status, &answer))
    }

    async fn drop(&self, url: &str) -> Result<()> {
        let (status, answer) = self.call(Method::DELETE, url, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(refused("drop table", status, &answer))
    }

    /// One request; with client credentials, a refused token is renewed
    /// and the request sent once more.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        if self.cfg.credential.is_some() && crate::sync::lock(&self.token).is_none() {
            self.renew_token().await?;
        }
        let (status, answer) = self.send(method.clone(), url, body).await?;
        if status == StatusCode::UNAUTHORIZED && self.cfg.credential.is_some() {
            self.renew_token().await?;
            return self.send(method, url, body).await;
        }
        Ok((status, answer))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, url);
        if let Some(t) = crate::sync::lock(&self.token).clone() {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| BackendError::ExternalCatalog(format!("{url}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| BackendError::ExternalCatalog(format!("{url}: {e}")))?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn renew_token(&self) -> Result<()> {
        let Some(credential) = &self.cfg.credential else {
            return Ok(());
        };
        let (id, secret) = credential
            .split_once(':')
            .unwrap_or(("", credential.as_str()));
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", id)
            .append_pair("client_secret", secret)
            .append_pair("scope", &self.cfg.scope)
            .finish();
        let url = format!("{}/v1/oauth/tokens", self.cfg.uri.trim_end_matches('/'));
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| BackendError::ExternalCatalog(format!("{url}: {e}")))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        let token = answer["access_token"]
            .as_str()
            .filter(|_| status.is_success());
        let Some(token) = token else {
            return Err(refused("token", status, &answer));
        };
        *crate::sync::lock(&self.token) = Some(token.to_string());
        Ok(())
    }
}

/// The updates that make `remote` what `ours` is: new schemas, new
/// snapshots (oldest first), the branch, expired snapshots, properties.
fn updates(remote: &Remote, ours: &TableMetadata) -> Vec<TableUpdate> {
    let mut out = Vec::new();
    let mut schemas: Vec<_> = ours
        .schemas_iter()
        .filter(|s| !remote.schemas.contains(&s.schema_id()))
        .collect();
    schemas.sort_by_key(|s| s.schema_id());
    let last_added = schemas.last().map(|s| s.schema_id());
    for s in schemas {
        out.push(TableUpdate::AddSchema {
            schema: s.as_ref().clone(),
        });
    }
    if remote.current_schema != Some(ours.current_schema_id()) {
        // A catalog may number an added schema itself (Java's does):
        // "the last added" names it either way.
        let schema_id = if last_added == Some(ours.current_schema_id()) {
            -1
        } else {
            ours.current_schema_id()
        };
        out.push(TableUpdate::SetCurrentSchema { schema_id });
    }
    let changed: HashMap<String, String> = ours
        .properties()
        .iter()
        .filter(|(k, v)| remote.properties.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !changed.is_empty() {
        out.push(TableUpdate::SetProperties { updates: changed });
    }
    let mut snapshots: Vec<_> = ours
        .snapshots()
        .filter(|s| !remote.snapshots.contains(&s.snapshot_id()))
        .collect();
    snapshots.sort_by_key(|s| (s.sequence_number(), s.timestamp_ms()));
    for s in snapshots {
        out.push(TableUpdate::AddSnapshot {
            snapshot: s.as_ref().clone(),
        });
    }
    let main = ours.snapshot_for_ref(MAIN_BRANCH).map(|s| s.snapshot_id());
    if let Some(id) = main {
        if remote.main != Some(id) {
            out.push(TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_string(),
                reference: SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
            });
        }
    }
    let kept: HashSet<i64> = ours.snapshots().map(|s| s.snapshot_id()).collect();
    let gone: BTreeSet<i64> = remote.snapshots.difference(&kept).copied().collect();
    if !gone.is_empty() {
        out.push(TableUpdate::RemoveSnapshots {
            snapshot_ids: gone.into_iter().collect(),
        });
    }
    out
}

/// The parts of a catalog's table metadata (JSON) the mirror compares.
/// Read loosely: catalogs add fields of their own.
fn remote(metadata: &Value) -> Result<Remote> {
    let uuid = metadata["table-uuid"]
        .as_str()
        .ok_or_else(|| BackendError::ExternalCatalog("table metadata without table-uuid".into()))?
        .to_string();
    let ids = |list: &str, key: &str| -> Vec<i64> {
        metadata[list]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e[key].as_i64()).collect())
            .unwrap_or_default()
    };
    let main = metadata["refs"][MAIN_BRANCH]["snapshot-id"]
        .as_i64()
        .or_else(|| metadata["current-snapshot-id"].as_i64())
        .filter(|id| *id >= 0);
    let properties = metadata["properties"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Remote {
        uuid,
        location: metadata["location"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        main,
        snapshots: ids("snapshots", "snapshot-id").into_iter().collect(),
        schemas: ids("schemas", "schema-id")
            .into_iter()
            .filter_map(|i| i32::try_from(i).ok())
            .collect(),
        current_schema: metadata["current-schema-id"]
            .as_i64()
            .and_then(|i| i32::try_from(i).ok()),
        properties,
    })
}

fn refused(what: &str, status: StatusCode, answer: &Value) -> StorageError {
    let message = answer["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| answer.to_string());
    BackendError::ExternalCatalog(format!("{what} refused ({status}): {message}")).into()
}

/// Percent-encodes one path or query segment.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote_of(metadata: &TableMetadata) -> Remote {
        let json = serde_json::to_value(metadata).unwrap();
        remote(&json).unwrap()
    }

    #[test]
    fn a_level_entry_needs_no_updates_and_a_new_snapshot_is_carried() {
        let metadata: TableMetadata = serde_json::from_str(SAMPLE).unwrap();
        let level = remote_of(&metadata);
        assert!(updates(&level, &metadata).is_empty());

        let mut behind = remote_of(&metadata);
        behind.snapshots.remove(&3055729675574597004);
        behind.main = Some(3051729675574597004);
        behind.schemas.remove(&1);
        behind.current_schema = Some(0);
        behind.snapshots.insert(42);
        let got: Vec<Value> = updates(&behind, &metadata)
            .iter()
            .map(|u| serde_json::to_value(u).unwrap())
            .collect();
        let actions: Vec<&str> = got.iter().map(|u| u["action"].as_str().unwrap()).collect();
        assert_eq!(
            actions,
            [
                "add-schema",
                "set-current-schema",
                "add-snapshot",
                "set-snapshot-ref",
                "remove-snapshots"
            ]
        );
        assert_eq!(got[1]["schema-id"], -1, "the schema just added");
        assert_eq!(got[2]["snapshot"]["snapshot-id"], 3055729675574597004i64);
        assert_eq!(got[3]["ref-name"], "main");
        assert_eq!(got[3]["type"], "branch");
        assert_eq!(got[3]["snapshot-id"], 3055729675574597004i64);
        assert_eq!(got[4]["snapshot-ids"], json!([42]));
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(encode("a b/c.d_e-f"), "a%20b%2Fc.d_e-f");
    }

    const SAMPLE: &str = r#"{
      "format-version": 2,
      "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
      "location": "file:///tmp/t",
      "last-sequence-number": 34,
      "last-updated-ms": 1602638573590,
      "last-column-id": 3,
      "current-schema-id": 1,
      "schemas": [
        {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "required": true, "type": "long"}]},
        {"type": "struct", "schema-id": 1, "identifier-field-ids": [],
         "fields": [{"id": 1, "name": "x", "required": true, "type": "long"},
                    {"id": 2, "name": "y", "required": false, "type": "long"}]}
      ],
      "default-spec-id": 0,
      "partition-specs": [{"spec-id": 0, "fields": []}],
      "last-partition-id": 999,
      "default-sort-order-id": 0,
      "sort-orders": [{"order-id": 0, "fields": []}],
      "properties": {"write.metadata.delete-after-commit.enabled": "true"},
      "current-snapshot-id": 3055729675574597004,
      "snapshots": [
        {"snapshot-id": 3051729675574597004, "timestamp-ms": 1515100955770, "sequence-number": 0,
         "summary": {"operation": "append"}, "manifest-list": "file:///tmp/t/metadata/snap-1.avro"},
        {"snapshot-id": 3055729675574597004, "parent-snapshot-id": 3051729675574597004,
         "timestamp-ms": 1555100955770, "sequence-number": 1, "summary": {"operation": "append"},
         "manifest-list": "file:///tmp/t/metadata/snap-2.avro", "schema-id": 1}
      ],
      "refs": {"main": {"snapshot-id": 3055729675574597004, "type": "branch"}},
      "snapshot-log": [],
      "metadata-log": []
    }"#;
}
