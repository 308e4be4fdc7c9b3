//! The schema registry: Confluent's data model (subjects, versions, ids,
//! references, compatibility levels) over the metadata store, and the two
//! places the broker uses schemas: validating produced values and redacting
//! fetched ones by purpose.
//!
//! The whole registry is small, so it is held in memory and written
//! through: every change is a metadata-store transaction first, then the
//! in-memory copy. Schemas are compiled once per id, on first use.
//!
//! This module holds the data model; `check.rs` the produce checks,
//! `redact.rs` the fetch redaction, `grants.rs` who may state which
//! purpose, `prefix_cache.rs` the per-request lookups by wire prefix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use floe_schema::compat::{self, Level};
use floe_schema::{compile, CompiledSchema, Dependency};
use floe_storage::log::now_ms;
use floe_storage::meta::{MetadataStore, SchemaRecord, SubjectVersionRecord};
use serde::{Deserialize, Serialize};

use crate::groups::lock;
use prefix_cache::PrefixCache;

mod check;
mod grants;
mod prefix_cache;
mod redact;

pub use check::SubjectCheck;

/// The compatibility level when none is set.
pub const DEFAULT_LEVEL: Level = Level::Backward;
/// The principal of every connection until authentication exists.
pub const ANONYMOUS: &str = "anonymous";

/// A registry error with Confluent's HTTP status and error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// HTTP status.
    pub status: u16,
    /// Confluent error code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

fn err(status: u16, code: i32, message: impl Into<String>) -> RegistryError {
    RegistryError {
        status,
        code,
        message: message.into(),
    }
}

fn subject_not_found(s: &str) -> RegistryError {
    err(404, 40401, format!("Subject '{s}' not found."))
}

fn store_error(e: floe_storage::StorageError) -> RegistryError {
    err(500, 50001, format!("Error in the backend data store: {e}"))
}

/// A reference of a schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The import name.
    pub name: String,
    /// The subject holding it.
    pub subject: String,
    /// Its version.
    pub version: i32,
}

/// A schema as clients send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The text.
    pub schema: String,
    /// PROTOBUF (default here), AVRO or JSON.
    #[serde(default)]
    pub schema_type: Option<String>,
    /// References.
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

impl SchemaRequest {
    fn schema_type(&self) -> String {
        self.schema_type
            .clone()
            .unwrap_or_else(|| "PROTOBUF".into())
            .to_ascii_uppercase()
    }
}

/// One subject version, answered by the registry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// Subject.
    pub subject: String,
    /// Version.
    pub version: i32,
    /// Schema id.
    pub id: i32,
    /// Type.
    pub schema_type: String,
    /// Text.
    pub schema: String,
    /// References.
    pub references: Vec<SchemaReference>,
}

#[derive(Default)]
struct State {
    schemas: BTreeMap<i32, SchemaRecord>,
    /// Versions per subject, in order.
    subjects: BTreeMap<String, Vec<SubjectVersionRecord>>,
    levels: HashMap<String, Level>,
    grants: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn versions(&self, subject: &str, deleted: bool) -> Vec<&SubjectVersionRecord> {
        self.subjects
            .get(subject)
            .map(|v| v.iter().filter(|r| deleted || !r.deleted).collect())
            .unwrap_or_default()
    }

    fn level(&self, subject: &str) -> Level {
        self.levels
            .get(subject)
            .or_else(|| self.levels.get(""))
            .copied()
            .unwrap_or(DEFAULT_LEVEL)
    }
}

/// The registry.
pub struct Registry {
    meta: Arc<dyn MetadataStore>,
    state: RwLock<State>,
    compiled: Mutex<HashMap<i32, Arc<CompiledSchema>>>,
    /// Registrations check compatibility then write: one at a time.
    writing: tokio::sync::Mutex<()>,
    /// The store's change token the state was loaded at (see
    /// [`Registry::follow`]).
    loaded: Mutex<Option<String>>,
}

fn read(s: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    s.read().unwrap_or_else(|e| e.into_inner())
}

fn write(s: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

fn parse_refs(refs: &str) -> Vec<SchemaReference> {
    serde_json::from_str(refs).unwrap_or_default()
}

impl Registry {
    /// Loads the registry from the metadata store.
    pub async fn open(meta: Arc<dyn MetadataStore>) -> anyhow::Result<Arc<Registry>> {
        let loaded = meta.registry_change().await?;
        let state = Self::load(meta.as_ref()).await?;
        let registry = Arc::new(Registry {
            meta,
            state: RwLock::new(state),
            compiled: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
            loaded: Mutex::new(loaded),
        });
        // floe's own files are subjects too, so schemas can reference them.
        for (name, schema) in floe_schema::compile::provided_schemas() {
            if registry.latest_id(name).is_none() {
                let req = SchemaRequest {
                    schema,
                    schema_type: None,
                    references: Vec::new(),
                };
                registry
                    .register(name, req)
                    .await
                    .map_err(|e| anyhow::anyhow!("registering {name}: {}", e.message))?;
            }
        }
        Ok(registry)
    }

    /// Takes in what other brokers changed: loads the registry again if
    /// the store's change token moved since it was loaded, and says
    /// whether it did. Called every placement round, so a schema or grant
    /// changed on one broker applies on every other within about a second,
    /// and on a miss (a produce refused for want of a schema, a purpose
    /// claimed without a grant), so what another broker has just added
    /// applies to the very request that needs it.
    pub async fn follow(&self) -> anyhow::Result<bool> {
        let token = self.meta.registry_change().await?;
        if *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) == token {
            return Ok(false);
        }
        let _writing = self.writing.lock().await;
        let state = Self::load(self.meta.as_ref()).await?;
        *write(&self.state) = state;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = token;
        Ok(true)
    }

    /// [`Registry::follow`] now (on a miss, or told of a change): true when
    /// the registry changed; false too when the store could not be read
    /// (a miss stands, as it would have without a second look).
    pub async fn catch_up(&self) -> bool {
        match self.follow().await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the schema registry's changes");
                false
            }
        }
    }

    /// The registry as the store holds it.
    async fn load(meta: &dyn MetadataStore) -> anyhow::Result<State> {
        let r = meta.load_registry().await?;
        let mut state = State::default();
        for s in r.schemas {
            state.schemas.insert(s.id, s);
        }
        for v in r.versions {
            state.subjects.entry(v.subject.clone()).or_default().push(v);
        }
        for (subject, level) in r.configs {
            if let Some(l) = Level::parse(&level) {
                state.levels.insert(subject, l);
            }
        }
        for (principal, purpose) in r.grants {
            state.grants.entry(principal).or_default().insert(purpose);
        }
        Ok(state)
    }

    /// Subjects, optionally with soft-deleted ones.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        let st = read(&self.state);
        st.subjects
            .keys()
            .filter(|s| !st.versions(s, deleted).is_empty())
            .cloned()
            .collect()
    }

    /// Version numbers of a subject.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let st = read(&self.state);
        let v: Vec<i32> = st
            .versions(subject, deleted)
            .iter()
            .map(|r| r.version)
            .collect();
        if v.is_empty() {
            return Err(subject_not_found(subject));
        }
        Ok(v)
    }

    fn view(st: &State, v: &SubjectVersionRecord) -> Option<VersionView> {
        let s = st.schemas.get(&v.schema_id)?;
        Some(VersionView {
            subject: v.subject.clone(),
            version: v.version,
            id: s.id,
            schema_type: s.schema_type.clone(),
            schema: s.schema.clone(),
            references: parse_refs(&s.refs),
        })
    }

    /// One version: a number, or "latest" / -1.
    pub fn version(
        &self,
        subject: &str,
        version: &str,
        deleted: bool,
    ) -> Result<VersionView, RegistryError> {
        let st = read(&self.state);
        let all = st.versions(subject, deleted);
        if all.is_empty() {
            return Err(subject_not_found(subject));
        }
        let found = match version {
            "latest" | "-1" => all.last().copied(),
            v => {
                let n: i32 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(
                        422,
                        42202,
                        format!("The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
                    )
                })?;
                all.iter().find(|r| r.version == n).copied()
            }
        };
        found
            .and_then(|v| Self::view(&st, v))
            .ok_or_else(|| err(404, 40402, format!("Version {version} not found.")))
    }

    /// A schema by id.
    pub fn schema(&self, id: i32) -> Result<SchemaRecord, RegistryError> {
        read(&self.state)
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| err(404, 40403, format!("Schema {id} not found")))
    }

    /// (subject, version) pairs using a schema id.
    pub fn usages(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, RegistryError> {
        self.schema(id)?;
        let st = read(&self.state);
        Ok(st
            .subjects
            .values()
            .flatten()
            .filter(|v| v.schema_id == id && (deleted || !v.deleted))
            .map(|v| (v.subject.clone(), v.version))
            .collect())
    }

    /// Ids of schemas that reference a subject's version.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let st = read(&self.state);
        st.schemas
            .values()
            .filter(|s| {
                parse_refs(&s.refs)
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|s| s.id)
            .collect()
    }

    /// The files a schema's references bring in, recursively.
    fn dependencies(
        &self,
        refs: &[SchemaReference],
        out: &mut Vec<Dependency>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > 32 {
            return Err(err(
                422,
                42201,
                "Invalid schema: references nest too deeply",
            ));
        }
        for r in refs {
            if out.iter().any(|d| d.name == r.name) {
                continue;
            }
            let v = self
                .version(&r.subject, &r.version.to_string(), true)
                .map_err(|_| {
                    err(
                        422,
                        42201,
                        format!(
                            "Invalid schema: reference {} points at {} version {}, which does not exist",
                            r.name, r.subject, r.version
                        ),
                    )
                })?;
            out.push(Dependency {
                name: r.name.clone(),
                schema: v.schema.clone(),
            });
            self.dependencies(&v.references, out, depth + 1)?;
        }
        Ok(())
    }

    fn compile_request(
        &self,
        schema: &str,
        refs: &[SchemaReference],
    ) -> Result<CompiledSchema, RegistryError> {
        let mut deps = Vec::new();
        self.dependencies(refs, &mut deps, 0)?;
        compile(schema, &deps).map_err(|e| err(422, 42201, format!("Invalid schema: {e}")))
    }

    /// The compiled form of a schema id (protobuf only).
    pub fn compiled(&self, id: i32) -> Result<Arc<CompiledSchema>, RegistryError> {
        if let Some(c) = lock(&self.compiled).get(&id) {
            return Ok(c.clone());
        }
        let s = self.schema(id)?;
        if s.schema_type != "PROTOBUF" {
            return Err(err(
                422,
                42201,
                format!("schema {id} is {}, not PROTOBUF", s.schema_type),
            ));
        }
        let c = Arc::new(self.compile_request(&s.schema, &parse_refs(&s.refs))?);
        lock(&self.compiled).insert(id, c.clone());
        Ok(c)
    }

    /// The compiled schema of a protobuf id; None for AVRO and JSON
    /// schemas, an error for unknown ids or schemas that do not compile.
    fn protobuf(&self, id: i32) -> Option<Result<Arc<CompiledSchema>, RegistryError>> {
        let other_type = read(&self.state)
            .schemas
            .get(&id)
            .is_some_and(|s| s.schema_type != "PROTOBUF");
        (!other_type).then(|| self.compiled(id))
    }

    /// Problems with registering `req` under `subject` at its level.
    fn compatibility_problems(
        &self,
        subject: &str,
        req: &SchemaRequest,
        against: Option<&str>,
    ) -> Result<Vec<String>, RegistryError> {
        let (level, earlier) = {
            let st = read(&self.state);
            let live: Vec<i32> = st
                .versions(subject, false)
                .iter()
                .map(|v| v.schema_id)
                .collect();
            (st.level(subject), live)
        };
        if req.schema_type() != "PROTOBUF" {
            return Ok(Vec::new());
        }
        let new = self.compile_request(&req.schema, &req.references)?;
        let (level, ids) = match against {
            Some(v) => {
                let one = self.version(subject, v, false)?;
                // One named version: checked in the level's direction only.
                let level = if level == Level::None {
                    Level::None
                } else {
                    Level::Backward
                };
                (level, vec![one.id])
            }
            None => (level, earlier),
        };
        let mut old = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(c) = self.compiled(id) {
                old.push((*c).clone());
            }
        }
        Ok(compat::check(level, &new, &old))
    }

    /// POST /subjects/{subject}/versions.
    pub async fn register(&self, subject: &str, req: SchemaRequest) -> Result<i32, RegistryError> {
        let _one_at_a_time = self.writing.lock().await;
        let schema_type = req.schema_type();
        if !["PROTOBUF", "AVRO", "JSON"].contains(&schema_type.as_str()) {
            return Err(err(
                422,
                42201,
                format!("Invalid schema type {schema_type}"),
            ));
        }
        let refs = serde_json::to_string(&req.references).unwrap_or_else(|_| "[]".into());
        if let Some(existing) = self.find(subject, &schema_type, &req.schema, &refs) {
            return Ok(existing.id);
        }
        if schema_type == "PROTOBUF" {
            let problems = self.compatibility_problems(subject, &req, None)?;
            if !problems.is_empty() {
                return Err(err(
                    409,
                    409,
                    format!(
                        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                        problems.join(", ")
                    ),
                ));
            }
        }
        let (id, version) = self
            .meta
            .register_schema(subject, &schema_type, &req.schema, &refs, now_ms())
            .await
            .map_err(store_error)?;
        let mut st = write(&self.state);
        st.schemas.entry(id).or_insert(SchemaRecord {
            id,
            schema_type,
            schema: req.schema,
            refs,
        });
        let versions = st.subjects.entry(subject.to_string()).or_default();
        if !versions.iter().any(|v| v.version == version) {
            versions.push(SubjectVersionRecord {
                subject: subject.to_string(),
                version,
                schema_id: id,
                deleted: false,
            });
        }
        Ok(id)
    }

    fn find(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        refs: &str,
    ) -> Option<VersionView> {
        let st = read(&self.state);
        st.versions(subject, false)
            .into_iter()
            .filter_map(|v| Self::view(&st, v))
            .find(|v| {
                v.schema_type == schema_type
                    && v.schema == schema
                    && serde_json::to_string(&v.references).ok().as_deref() == Some(refs)
            })
    }

    /// POST /subjects/{subject}: is this schema registered here?
    pub fn lookup(&self, subject: &str, req: &SchemaRequest) -> Result<VersionView, RegistryError> {
        if read(&self.state).versions(subject, false).is_empty() {
            return Err(subject_not_found(subject));
        }
        let refs = serde_json::to_string(&req.references).unwrap_or_else(|_| "[]".into());
        self.find(subject, &req.schema_type(), &req.schema, &refs)
            .ok_or_else(|| err(404, 40403, "Schema not found"))
    }

    /// POST /compatibility/subjects/{subject}/versions[/{version}].
    pub fn check(
        &self,
        subject: &str,
        version: Option<&str>,
        req: &SchemaRequest,
    ) -> Result<Vec<String>, RegistryError> {
        if version.is_some() && read(&self.state).versions(subject, false).is_empty() {
            return Err(subject_not_found(subject));
        }
        self.compatibility_problems(subject, req, version)
    }

    /// DELETE /subjects/{subject}[/versions/{version}]; returns the
    /// versions deleted.
    pub async fn delete(
        &self,
        subject: &str,
        version: Option<&str>,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let _one_at_a_time = self.writing.lock().await;
        let targets: Vec<SubjectVersionRecord> = {
            let st = read(&self.state);
            let all = st.versions(subject, true);
            if all.is_empty() {
                return Err(subject_not_found(subject));
            }
            match version {
                None => all.into_iter().cloned().collect(),
                Some(v) => {
                    let view = self.version(subject, v, true)?;
                    all.into_iter()
                        .filter(|r| r.version == view.version)
                        .cloned()
                        .collect()
                }
            }
        };
        for t in &targets {
            if permanent && !t.deleted {
                return Err(match version {
                    None => err(404, 40405, format!("Subject '{subject}' was not deleted first before being permanently deleted")),
                    Some(_) => err(404, 40407, format!("Subject '{subject}' Version {} was not deleted first before being permanently deleted", t.version)),
                });
            }
            if !permanent && t.deleted {
                return Err(match version {
                    None => err(404, 40404, format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently")),
                    Some(_) => err(404, 40406, format!("Subject '{subject}' Version {} was soft deleted.Set permanent=true to delete permanently", t.version)),
                });
            }
            let users = self.referenced_by(subject, t.version);
            if !users.is_empty() {
                return Err(err(
                    422,
                    42206,
                    format!("One or more references exist to the schema {{subject={subject},version={}}}: schema ids {users:?}", t.version),
                ));
            }
        }
        let one = version.map(|_| targets[0].version);
        self.meta
            .delete_subject_versions(subject, one, permanent)
            .await
            .map_err(store_error)?;
        let mut st = write(&self.state);
        if let Some(vs) = st.subjects.get_mut(subject) {
            for t in &targets {
                if permanent {
                    vs.retain(|v| v.version != t.version);
                } else if let Some(v) = vs.iter_mut().find(|v| v.version == t.version) {
                    v.deleted = true;
                }
            }
        }
        Ok(targets.iter().map(|t| t.version).collect())
    }

    /// The level of a subject (or global with ""); None when not set.
    pub fn level(&self, subject: &str) -> Option<Level> {
        read(&self.state).levels.get(subject).copied()
    }

    /// The level in force for a subject.
    pub fn effective_level(&self, subject: &str) -> Level {
        read(&self.state).level(subject)
    }

    /// PUT/DELETE /config[/{subject}].
    pub async fn set_level(
        &self,
        subject: &str,
        level: Option<Level>,
    ) -> Result<(), RegistryError> {
        self.meta
            .set_compatibility(subject, level.map(Level::name))
            .await
            .map_err(store_error)?;
        let mut st = write(&self.state);
        match level {
            Some(l) => st.levels.insert(subject.to_string(), l),
            None => st.levels.remove(subject),
        };
        Ok(())
    }

    /// Live schema ids of a subject, oldest first (empty, and no
    /// allocation, for a topic without a schema).
    pub fn live_ids(&self, subject: &str) -> Vec<i32> {
        read(&self.state)
            .versions(subject, false)
            .iter()
            .map(|v| v.schema_id)
            .collect()
    }

    /// The newest live schema of a subject.
    pub fn latest_id(&self, subject: &str) -> Option<i32> {
        let st = read(&self.state);
        st.subjects
            .get(subject)?
            .iter()
            .rev()
            .find(|v| !v.deleted)
            .map(|v| v.schema_id)
    }

    /// True when the topic has a protobuf value or key subject.
    pub fn has_subjects(&self, topic: &str) -> bool {
        let st = read(&self.state);
        [format!("{topic}-value"), format!("{topic}-key")]
            .iter()
            .any(|s| !st.versions(s, false).is_empty())
    }
}

impl floe_storage::typed::SchemaSource for Registry {
    fn protobuf_versions(&self, subject: &str) -> floe_storage::typed::Versions {
        self.live_ids(subject)
            .into_iter()
            .filter_map(|id| match self.protobuf(id) {
                Some(Ok(c)) => Some((id, c)),
                _ => None,
            })
            .collect()
    }
}
