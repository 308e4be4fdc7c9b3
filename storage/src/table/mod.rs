//! Every topic is an Iceberg table whose data files are the topic's Parquet
//! segments.
//!
//! The log commits every flush; the table commits on a coarser cadence
//! (`floe.iceberg.commit.interval.ms`): one snapshot appends every file
//! committed since the last one, and one removes the files retention
//! dropped. Each snapshot's summary records, per Kafka partition, the
//! highest offset the table holds (`floe.kafka.offsets`), so a reader can
//! backfill from the table up to offset N and continue from the topic.
//!
//! Metadata is written with the `iceberg` crate on floe's own object store
//! ([`io::StoreIo`]); the table pointer lives in the metadata store and is
//! swapped by compare-and-set ([`MetadataStore::commit_table`]).
//!
//! Partitioning: `day(append_time)`. A flush file holds one append time, so
//! every file belongs to exactly one partition. Files are sorted by
//! (partition, offset), declared as the table's sort order, and manifests
//! carry exact bounds for every primitive column the footer has statistics
//! for (partition, offset, timestamp, append time, key), so engines prune
//! by time, Kafka partition and offset.

pub mod deletes;
pub mod evolve;
pub mod external;
pub mod io;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, FormatVersion, Literal,
    ManifestContentType, ManifestFile, ManifestList, ManifestListWriter, ManifestWriterBuilder,
    NullOrder, Operation, PrimitiveType, Schema, SchemaRef, Snapshot, SortDirection, SortField,
    SortOrder, Struct, Summary, TableMetadata, TableMetadataBuilder, Transform, Type,
    UnboundPartitionSpec, MAIN_BRANCH,
};
use iceberg::MetadataLocation;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::error::{Result, StorageError};
use crate::meta::{MetadataStore, TableCommitRecord};
use crate::segment::{self, col, field_id};
use external::{ExternalCatalog, ExternalCatalogConfig};
use io::StoreIo;

/// Snapshot summary key: JSON object of Kafka partition → highest offset
/// the table holds.
pub const OFFSETS_PROPERTY: &str = "floe.kafka.offsets";

/// Table settings.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Absolute URI of the object store's root (`file:///…/`, `s3://bucket/`).
    pub root_uri: String,
    /// The namespace tables appear in.
    pub namespace: String,
    /// How long a replaced snapshot stays readable (time travel, readers in
    /// flight) before it expires and files only it refers to are deleted.
    pub snapshot_retention: Duration,
    /// An external REST catalog every table is also registered in.
    pub external: Option<ExternalCatalogConfig>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            root_uri: "memory:///".into(),
            namespace: "floe".into(),
            snapshot_retention: Duration::from_secs(3600),
            external: None,
        }
    }
}

/// A loaded table: its metadata and where that metadata lives.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    /// The metadata.
    pub metadata: TableMetadata,
    /// Absolute URI of the metadata file.
    pub location: String,
}

/// A file the table is to add, with its footer.
pub struct NewFile {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Parsed footer.
    pub footer: Arc<ParquetMetaData>,
    /// A compaction's output: its columns are in the table already (its
    /// inputs brought them), so it never evolves the schema.
    pub rewritten: bool,
    /// Rows (positions in the file, sorted) the table must not show: a
    /// position-delete file hides them ([`deletes`]).
    pub hidden_rows: Vec<i64>,
}

/// What one snapshot said about Kafka offsets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SnapshotOffsets {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// Parent snapshot id.
    pub parent_snapshot_id: Option<i64>,
    /// Commit time.
    pub timestamp_ms: i64,
    /// Iceberg operation.
    pub operation: String,
    /// Highest offset held per Kafka partition.
    pub offsets: BTreeMap<i32, i64>,
}

/// The Iceberg side of the log: builds, loads and commits topic tables.
pub struct Tables {
    io: StoreIo,
    meta: Arc<dyn MetadataStore>,
    cfg: TableConfig,
    external: Option<Arc<ExternalCatalog>>,
}

impl Tables {
    /// Tables on `io`'s store, pointers in `meta`.
    pub fn new(cfg: TableConfig, io: StoreIo, meta: Arc<dyn MetadataStore>) -> Result<Self> {
        let external = cfg
            .external
            .clone()
            .map(ExternalCatalog::new)
            .transpose()?
            .map(Arc::new);
        Ok(Tables {
            io,
            meta,
            cfg,
            external,
        })
    }

    /// The configured namespace.
    pub fn namespace(&self) -> &str {
        &self.cfg.namespace
    }

    /// The adapter (and its `FileIO`).
    pub fn io(&self) -> &StoreIo {
        &self.io
    }

    /// The table of `topic`, if it has been created.
    pub async fn load(&self, topic: &str) -> Result<Option<LoadedTable>> {
        let Some(location) = self.meta.table_pointer(topic).await? else {
            return Ok(None);
        };
        let metadata = TableMetadata::read_from(&self.io.file_io(), &location).await?;
        Ok(Some(LoadedTable { metadata, location }))
    }

    /// Creates the table of `topic` under the object key `table_key` (in
    /// place of the stale pointer `replacing`), or loads it if another
    /// commit created it first.
    async fn create(
        &self,
        topic: &str,
        table_key: &str,
        replacing: Option<String>,
    ) -> Result<LoadedTable> {
        let schema = raw_table_schema()?;
        let spec = UnboundPartitionSpec::builder()
            .with_spec_id(0)
            .add_partition_field(
                field_id::APPEND_TIME,
                format!("{}_day", col::APPEND_TIME),
                Transform::Day,
            )?
            .build();
        let sort = SortOrder::builder()
            .with_order_id(1)
            .with_sort_field(sort_field(field_id::PARTITION))
            .with_sort_field(sort_field(field_id::OFFSET))
            .build(&schema)?;
        let properties = HashMap::from([
            ("write.format.default".to_string(), "parquet".to_string()),
            (
                "write.metadata.previous-versions-max".to_string(),
                "20".to_string(),
            ),
            // floe deletes its old metadata files; an external catalog the
            // table is registered in is asked to do the same with its own.
            (
                "write.metadata.delete-after-commit.enabled".to_string(),
                "true".to_string(),
            ),
            ("floe.topic".to_string(), topic.to_string()),
        ]);
        let location = self.io.uri(table_key);
        let metadata = TableMetadataBuilder::new(
            schema,
            spec,
            sort,
            location.clone(),
            FormatVersion::V2,
            properties,
        )?
        .build()?
        .metadata;
        check_field_ids(&metadata)?;
        let metadata_location = MetadataLocation::new_with_metadata(&location, &metadata);
        metadata
            .write_to(&self.io.file_io(), &metadata_location)
            .await?;
        let metadata_location = metadata_location.to_string();
        let record = TableCommitRecord {
            topic: topic.to_string(),
            expected: replacing,
            metadata_location: metadata_location.clone(),
            added: Vec::new(),
            removed: Vec::new(),
            now_ms: crate::sync::now_ms(),
        };
        if self.meta.commit_table(&record).await? {
            info!(topic, location = %metadata_location, "created iceberg table");
            return Ok(LoadedTable {
                metadata,
                location: metadata_location,
            });
        }
        self.delete_quietly(&metadata_location).await;
        self.load(topic).await?.ok_or_else(|| {
            StorageError::Corrupt(format!("table of {topic} neither created nor found"))
        })
    }

    /// Brings the table of `topic` up to date with the log: one snapshot
    /// adding `added` and removing `removed`, then expiry of snapshots
    /// older than the retention. Returns the files no snapshot refers to
    /// any more (the caller deletes them). A commit that loses a race
    /// changes nothing and is retried on the next round.
    pub async fn sync(
        &self,
        topic: &str,
        table_key: &str,
        added: Vec<NewFile>,
        removed: Vec<String>,
    ) -> Result<Vec<String>> {
        let mut table = match self.load(topic).await? {
            // A pointer left by a deleted topic of the same name.
            Some(t) if t.metadata.location() != self.io.uri(table_key) => {
                self.create(topic, table_key, Some(t.location)).await?
            }
            Some(t) => t,
            None => self.create(topic, table_key, None).await?,
        };
        if let Some(t) = self.evolve(topic, &table, &added).await? {
            table = t;
        }
        if !added.is_empty() || !removed.is_empty() {
            match self.change(topic, &table, added, &removed).await? {
                Some(t) => table = t,
                None => return Ok(Vec::new()),
            }
        }
        let (table, released) = self.expire(topic, table).await?;
        if let Some(external) = &self.external {
            // `table_key` is `<prefix>/topics/<topic>-<topic id>`: tables of
            // earlier topics of this name differ only in the id.
            let id_start = table_key.rfind('-').map_or(table_key.len(), |i| i + 1);
            let prefix = self.io.uri(&table_key[..id_start]);
            // In the background: a slow catalog never holds up the
            // snapshots of the next topics.
            external.clone().spawn_publish(topic, table, prefix);
        }
        Ok(released)
    }

    /// Drops the external catalog's entry of a topic about to be deleted
    /// (while its table, which tells the entry is floe's, still exists).
    pub async fn forget(&self, topic: &str) {
        let Some(external) = &self.external else {
            return;
        };
        let uuid = match self.load(topic).await {
            Ok(t) => t.map(|t| t.metadata.uuid().to_string()),
            Err(_) => None,
        };
        if let Err(e) = external.forget(topic, uuid).await {
            warn!(topic, catalog = external.uri(), error = %e, "could not drop the deleted topic's table from the external catalog");
        }
    }

    /// A new current schema when `added` brings columns the table lacks
    /// (see [`evolve`]); None when it has them all, or when another commit
    /// won the race (the next round retries).
    async fn evolve(
        &self,
        topic: &str,
        table: &LoadedTable,
        added: &[NewFile],
    ) -> Result<Option<LoadedTable>> {
        let mut schemas = Vec::new();
        for f in added.iter().filter(|f| !f.rewritten) {
            schemas.push(evolve::file_schema(&f.footer)?);
        }
        let current = table.metadata.current_schema();
        let Some(schema) = evolve::evolved(current, &schemas)? else {
            return Ok(None);
        };
        let built = table
            .metadata
            .clone()
            .into_builder(Some(table.location.clone()))
            .add_current_schema(schema)?
            .build()?;
        info!(topic, "table schema evolves with the topic's columns");
        let now = crate::sync::now_ms().max(table.metadata.last_updated_ms() + 1);
        self.write_and_swap(topic, table, built, Vec::new(), Vec::new(), now)
            .await
    }

    /// One snapshot adding `added` and removing `removed`: an append, a
    /// delete (retention), or both at once (a compaction's new file and
    /// the files it replaces, so no reader sees rows twice or not at all).
    async fn change(
        &self,
        topic: &str,
        table: &LoadedTable,
        added: Vec<NewFile>,
        removed: &[String],
    ) -> Result<Option<LoadedTable>> {
        let schema = table.metadata.current_schema().clone();
        let mut offsets = current_offsets(&table.metadata);
        let mut files = Vec::with_capacity(added.len());
        let mut hiding = Vec::new();
        let mut keys = Vec::with_capacity(added.len());
        for f in added {
            let (file, file_offsets) = data_file(&self.io, &f, &schema)?;
            for (p, o) in file_offsets {
                let e = offsets.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
            if !f.hidden_rows.is_empty() {
                hiding.push(self.write_deletes(&file, &f).await?);
            }
            files.push(file);
            keys.push(f.key);
        }
        let uris: HashSet<String> = removed.iter().map(|k| self.io.uri(k)).collect();
        let mut props = HashMap::new();
        props.insert(OFFSETS_PROPERTY.to_string(), offsets_json(&offsets));
        let change = Change {
            added: files,
            added_deletes: hiding,
            removed: &uris,
        };
        self.commit_snapshot(topic, table, change, props, keys, removed.to_vec())
            .await
    }

    /// Writes the delete file hiding `f`'s hidden rows (`file` is its
    /// entry) and returns the delete file's entry.
    async fn write_deletes(&self, file: &DataFile, f: &NewFile) -> Result<DataFile> {
        let uri = self.io.uri(&deletes::deletes_key(&f.key));
        let bytes = deletes::encode(file.file_path(), &f.hidden_rows)?;
        let size = bytes.len() as u64;
        self.io.file_io().new_output(&uri)?.write(bytes).await?;
        deletes::entry(
            &uri,
            size,
            f.hidden_rows.len() as u64,
            file.file_path(),
            file.partition().clone(),
        )
    }

    /// Writes a snapshot on top of the table's current one: the added
    /// data files in a new manifest, their delete files in a new delete
    /// manifest; if files are removed, every manifest is folded into those
    /// two, which mark the removed files (and their delete files) deleted.
    /// The operation follows from what changed: append, delete, replace
    /// (as many rows removed as added: a compaction) or overwrite (rows
    /// hidden by delete files, or fewer rows than were removed).
    async fn commit_snapshot(
        &self,
        topic: &str,
        table: &LoadedTable,
        change: Change<'_>,
        mut props: HashMap<String, String>,
        added_keys: Vec<String>,
        removed_keys: Vec<String>,
    ) -> Result<Option<LoadedTable>> {
        let Change {
            added,
            added_deletes,
            removed,
        } = change;
        let file_io = self.io.file_io();
        let metadata = &table.metadata;
        let schema: SchemaRef = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().as_ref().clone();
        let snapshot_id = new_snapshot_id(metadata);
        let sequence = metadata.next_sequence_number();
        let parent = metadata.current_snapshot().cloned();
        let manifest_dir = format!("{}/metadata", metadata.location());
        let commit_id = uuid::Uuid::new_v4().simple().to_string();

        let mut previous: Vec<ManifestFile> = Vec::new();
        if let Some(p) = &parent {
            previous = manifest_list(&file_io, p).await?;
        }
        let fold = !removed.is_empty();
        let mut counts = Counts::default();
        let mut manifests = Vec::new();
        let mut written = Vec::new();
        if !added.is_empty() || fold {
            let path = format!("{manifest_dir}/{commit_id}-m0.avro");
            let mut data = ManifestWriterBuilder::new(
                file_io.new_output(&path)?,
                Some(snapshot_id),
                schema.clone(),
                spec.clone(),
            )
            .build_v2_data();
            let deletes_path = format!("{manifest_dir}/{commit_id}-d0.avro");
            let with_deletes = !added_deletes.is_empty()
                || (fold
                    && previous
                        .iter()
                        .any(|m| m.content == ManifestContentType::Deletes));
            let mut hiding = if with_deletes {
                Some(
                    ManifestWriterBuilder::new(
                        file_io.new_output(&deletes_path)?,
                        Some(snapshot_id),
                        schema.clone(),
                        spec.clone(),
                    )
                    .build_v2_deletes(),
                )
            } else {
                None
            };
            for f in added {
                counts.added_records += f.record_count();
                data.add_file(f, sequence)?;
            }
            for d in added_deletes {
                counts.added_position_deletes += d.record_count();
                counts.added_delete_files += 1;
                if let Some(w) = hiding.as_mut() {
                    w.add_file(d, sequence)?;
                }
            }
            if fold {
                // Fold every earlier manifest into these.
                for m in previous.drain(..) {
                    let manifest = m.load_manifest(&file_io).await?;
                    let is_deletes = m.content == ManifestContentType::Deletes;
                    for e in manifest.entries() {
                        if !e.is_alive() {
                            continue;
                        }
                        let seq = e.sequence_number.unwrap_or(m.sequence_number);
                        let file_seq = e.file_sequence_number.or(Some(m.sequence_number));
                        let df = e.data_file.clone();
                        let writer = match (is_deletes, hiding.as_mut()) {
                            (false, _) => &mut data,
                            (true, Some(w)) => w,
                            (true, None) => continue,
                        };
                        // A delete file goes with the data file it hides
                        // rows of.
                        let goes = if is_deletes {
                            deletes::data_key_of(df.file_path())
                                .is_some_and(|data| removed.contains(&data))
                        } else {
                            removed.contains(df.file_path())
                        };
                        if goes {
                            if is_deletes {
                                counts.removed_position_deletes += df.record_count();
                                counts.removed_delete_files += 1;
                            } else {
                                counts.deleted_records += df.record_count();
                                counts.deleted_files += 1;
                            }
                            writer.add_delete_file(df, seq, file_seq)?;
                        } else {
                            let added_by = e.snapshot_id.unwrap_or(m.added_snapshot_id);
                            writer.add_existing_file(df, added_by, seq, file_seq)?;
                        }
                    }
                }
            }
            manifests.push(data.write_manifest_file().await?);
            written.push(path);
            if let Some(w) = hiding {
                manifests.push(w.write_manifest_file().await?);
                written.push(deletes_path);
            }
        }
        manifests.extend(previous);

        let list_path = format!("{manifest_dir}/snap-{snapshot_id}-1-{commit_id}.avro");
        let mut list = ManifestListWriter::v2(
            file_io.new_output(&list_path)?.writer().await?,
            snapshot_id,
            parent.as_ref().map(|p| p.snapshot_id()),
            sequence,
        );
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;
        written.push(list_path.clone());

        let totals = |key: &str| -> u64 {
            parent
                .as_ref()
                .and_then(|p| p.summary().additional_properties.get(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        counts.summarize(&mut props, added_keys.len() as u64, totals);
        let Counts {
            added_records,
            deleted_records,
            deleted_files,
            added_delete_files,
            ..
        } = counts;
        let operation = match (added_keys.is_empty(), deleted_files == 0) {
            (_, true) if added_delete_files > 0 => Operation::Overwrite,
            (_, true) => Operation::Append,
            (true, false) => Operation::Delete,
            // A compaction rewrites rows without changing them.
            (false, false) if added_records == deleted_records => Operation::Replace,
            (false, false) => Operation::Overwrite,
        };
        let now = crate::sync::now_ms().max(metadata.last_updated_ms() + 1);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
            .with_sequence_number(sequence)
            .with_timestamp_ms(now)
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation,
                additional_properties: props,
            })
            .with_schema_id(schema.schema_id())
            .build();
        let built = metadata
            .clone()
            .into_builder(Some(table.location.clone()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)?
            .build()?;
        let committed = self
            .write_and_swap(topic, table, built, added_keys, removed_keys, now)
            .await?;
        if committed.is_none() {
            for p in written {
                self.delete_quietly(&p).await;
            }
        }
        Ok(committed)
    }

    /// Writes new metadata and swaps the pointer to it; None if the
    /// pointer moved meanwhile (the new file is deleted again).
    async fn write_and_swap(
        &self,
        topic: &str,
        table: &LoadedTable,
        built: iceberg::spec::TableMetadataBuildResult,
        added: Vec<String>,
        removed: Vec<String>,
        now_ms: i64,
    ) -> Result<Option<LoadedTable>> {
        let metadata = built.metadata;
        let location = MetadataLocation::from_str(&table.location)?
            .with_next_version()
            .with_new_metadata(&metadata);
        metadata.write_to(&self.io.file_io(), &location).await?;
        let location = location.to_string();
        let record = TableCommitRecord {
            topic: topic.to_string(),
            expected: Some(table.location.clone()),
            metadata_location: location.clone(),
            added,
            removed,
            now_ms,
        };
        if !self.meta.commit_table(&record).await? {
            debug!(topic, "table commit lost a race; retrying next round");
            self.delete_quietly(&location).await;
            return Ok(None);
        }
        for old in built.expired_metadata_logs {
            self.delete_quietly(&old.metadata_file).await;
        }
        Ok(Some(LoadedTable { metadata, location }))
    }

    /// Expires snapshots older than the retention (never the current one),
    /// deletes the manifests only they used, and returns the table as it
    /// now is and the data files no remaining snapshot refers to.
    async fn expire(&self, topic: &str, table: LoadedTable) -> Result<(LoadedTable, Vec<String>)> {
        let now = crate::sync::now_ms();
        let cutoff = now - self.cfg.snapshot_retention.as_millis() as i64;
        let current = table.metadata.current_snapshot_id();
        let expired: Vec<i64> = table
            .metadata
            .snapshots()
            .filter(|s| s.timestamp_ms() < cutoff && Some(s.snapshot_id()) != current)
            .map(|s| s.snapshot_id())
            .collect();
        let mut table = table;
        if !expired.is_empty() {
            let file_io = self.io.file_io();
            let mut kept_manifests = HashSet::new();
            let mut kept_lists = HashSet::new();
            for s in table.metadata.snapshots() {
                if expired.contains(&s.snapshot_id()) {
                    continue;
                }
                kept_lists.insert(s.manifest_list().to_string());
                for m in manifest_list(&file_io, s).await? {
                    kept_manifests.insert(m.manifest_path.clone());
                }
            }
            let mut garbage = Vec::new();
            for s in table.metadata.snapshots() {
                if !expired.contains(&s.snapshot_id()) {
                    continue;
                }
                if let Ok(list) = manifest_list(&file_io, s).await {
                    for m in list {
                        if !kept_manifests.contains(&m.manifest_path) {
                            garbage.push(m.manifest_path.clone());
                        }
                    }
                }
                if !kept_lists.contains(s.manifest_list()) {
                    garbage.push(s.manifest_list().to_string());
                }
            }
            let built = table
                .metadata
                .clone()
                .into_builder(Some(table.location.clone()))
                .remove_snapshots(&expired)
                .build()?;
            match self
                .write_and_swap(topic, &table, built, Vec::new(), Vec::new(), now)
                .await?
            {
                Some(t) => table = t,
                None => return Ok((table, Vec::new())),
            }
            garbage.sort();
            garbage.dedup();
            for g in garbage {
                self.delete_quietly(&g).await;
            }
            debug!(topic, snapshots = expired.len(), "expired snapshots");
        }
        // Files removed at or before the oldest remaining snapshot are
        // referred to by none.
        let oldest = table
            .metadata
            .snapshots()
            .map(|s| s.timestamp_ms())
            .min()
            .unwrap_or(now);
        let released = self.meta.release_table_files(topic, oldest).await?;
        Ok((table, released))
    }

    /// Kafka offsets per snapshot, oldest first.
    pub fn snapshot_offsets(metadata: &TableMetadata) -> Vec<SnapshotOffsets> {
        let mut out: Vec<SnapshotOffsets> = metadata
            .snapshots()
            .map(|s| SnapshotOffsets {
                snapshot_id: s.snapshot_id(),
                parent_snapshot_id: s.parent_snapshot_id(),
                timestamp_ms: s.timestamp_ms(),
                operation: s.summary().operation.as_str().to_string(),
                offsets: snapshot_offsets(s.summary()),
            })
            .collect();
        out.sort_by_key(|s| (s.timestamp_ms, s.snapshot_id));
        out
    }

    async fn delete_quietly(&self, uri: &str) {
        if let Err(e) = self.io.file_io().delete(uri).await {
            warn!(file = uri, error = %e, "could not delete table file; the sweeper will retry");
        }
    }
}

/// What one snapshot changes: data files added, the delete files hiding
/// rows of them, and the data files removed (by URI).
struct Change<'a> {
    added: Vec<DataFile>,
    added_deletes: Vec<DataFile>,
    removed: &'a HashSet<String>,
}

/// What a snapshot added and removed, for its summary.
#[derive(Default)]
struct Counts {
    added_records: u64,
    deleted_records: u64,
    deleted_files: u64,
    added_delete_files: u64,
    added_position_deletes: u64,
    removed_delete_files: u64,
    removed_position_deletes: u64,
}

impl Counts {
    /// The snapshot summary's counts and totals (Iceberg's names), the
    /// totals carried on from the parent's (`totals`).
    fn summarize(
        &self,
        props: &mut HashMap<String, String>,
        added_files: u64,
        totals: impl Fn(&str) -> u64,
    ) {
        let total = |key: &str, plus: u64, minus: u64| {
            (totals(key) + plus).saturating_sub(minus).to_string()
        };
        let entries = [
            ("added-data-files", added_files.to_string()),
            ("added-records", self.added_records.to_string()),
            ("deleted-data-files", self.deleted_files.to_string()),
            ("deleted-records", self.deleted_records.to_string()),
            ("added-delete-files", self.added_delete_files.to_string()),
            (
                "added-position-deletes",
                self.added_position_deletes.to_string(),
            ),
            (
                "removed-delete-files",
                self.removed_delete_files.to_string(),
            ),
            (
                "removed-position-deletes",
                self.removed_position_deletes.to_string(),
            ),
            (
                "total-records",
                total("total-records", self.added_records, self.deleted_records),
            ),
            (
                "total-data-files",
                total("total-data-files", added_files, self.deleted_files),
            ),
            (
                "total-delete-files",
                total(
                    "total-delete-files",
                    self.added_delete_files,
                    self.removed_delete_files,
                ),
            ),
            (
                "total-position-deletes",
                total(
                    "total-position-deletes",
                    self.added_position_deletes,
                    self.removed_position_deletes,
                ),
            ),
            ("total-equality-deletes", "0".to_string()),
        ];
        for (k, v) in entries {
            props.insert(k.to_string(), v);
        }
    }
}

async fn manifest_list(file_io: &FileIO, snapshot: &Snapshot) -> Result<Vec<ManifestFile>> {
    let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
    Ok(ManifestList::parse_with_version(&bytes, FormatVersion::V2)?
        .consume_entries()
        .into_iter()
        .collect())
}

fn sort_field(source_id: i32) -> SortField {
    SortField::builder()
        .source_id(source_id)
        .transform(Transform::Identity)
        .direction(SortDirection::Ascending)
        .null_order(NullOrder::First)
        .build()
}

/// The Iceberg schema of a raw topic: the segment layout's Arrow schema,
/// with the field ids its files carry.
pub fn raw_table_schema() -> Result<Schema> {
    Ok(iceberg::arrow::arrow_schema_to_schema(
        &segment::raw_schema(),
    )?)
}

/// Table creation must keep the ids the data files carry.
fn check_field_ids(metadata: &TableMetadata) -> Result<()> {
    let schema = metadata.current_schema();
    for (name, id) in [
        (col::PARTITION, field_id::PARTITION),
        (col::OFFSET, field_id::OFFSET),
        (col::TIMESTAMP, field_id::TIMESTAMP),
        (col::APPEND_TIME, field_id::APPEND_TIME),
        (col::VALUE, field_id::VALUE),
    ] {
        if schema.field_by_name(name).map(|f| f.id) != Some(id) {
            return Err(StorageError::Corrupt(format!(
                "table schema gave {name} another field id than the data files"
            )));
        }
    }
    Ok(())
}

fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

fn snapshot_offsets(summary: &Summary) -> BTreeMap<i32, i64> {
    summary
        .additional_properties
        .get(OFFSETS_PROPERTY)
        .and_then(|v| serde_json::from_str::<BTreeMap<String, i64>>(v).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
                .collect()
        })
        .unwrap_or_default()
}

fn current_offsets(metadata: &TableMetadata) -> BTreeMap<i32, i64> {
    metadata
        .current_snapshot()
        .map(|s| snapshot_offsets(s.summary()))
        .unwrap_or_default()
}

fn offsets_json(offsets: &BTreeMap<i32, i64>) -> String {
    let m: BTreeMap<String, i64> = offsets.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

/// An Iceberg data file for a segment file, with column statistics from
/// its footer, and the highest offset per Kafka partition it holds.
fn data_file(io: &StoreIo, f: &NewFile, schema: &Schema) -> Result<(DataFile, Vec<(i32, i64)>)> {
    let meta = &f.footer;
    let mut sizes: HashMap<i32, u64> = HashMap::new();
    let mut values: HashMap<i32, u64> = HashMap::new();
    let mut nulls: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    let mut offsets = Vec::new();
    let mut records = 0u64;
    let mut append_time: Option<i64> = None;
    let mut no_stats: HashSet<i32> = HashSet::new();
    for rg in meta.row_groups() {
        records += rg.num_rows().max(0) as u64;
        let (mut partition, mut last_offset) = (None, None);
        for chunk in rg.columns() {
            let descr = chunk.column_descr();
            let info = descr.self_type().get_basic_info();
            if !info.has_id() {
                continue;
            }
            let id = info.id();
            *sizes.entry(id).or_default() += chunk.compressed_size().max(0) as u64;
            // Only top-level primitive columns get counts and bounds.
            if descr.path().parts().len() != 1 {
                continue;
            }
            let Some(Type::Primitive(ty)) = schema.field_by_id(id).map(|f| f.field_type.as_ref())
            else {
                continue;
            };
            *values.entry(id).or_default() += chunk.num_values().max(0) as u64;
            let stats = chunk.statistics();
            match stats.and_then(|s| s.null_count_opt()) {
                Some(n) => *nulls.entry(id).or_default() += n,
                None => {
                    no_stats.insert(id);
                }
            }
            let Some((lo, hi)) = stats.and_then(|s| bounds(s, ty)) else {
                no_stats.insert(id);
                continue;
            };
            if let (field_id::PARTITION, Some(Statistics::Int32(v))) = (id, stats) {
                partition = v.min_opt().copied();
            }
            merge(&mut lower, id, lo, true);
            merge(&mut upper, id, hi, false);
            if id == field_id::OFFSET {
                last_offset = upper_long(stats);
            }
            if id == field_id::APPEND_TIME {
                append_time = append_time.or(lower_long(stats));
            }
        }
        if let (Some(p), Some(o)) = (partition, last_offset) {
            offsets.push((p, o));
        }
    }
    // Small partitions of a flush share row groups: the footer lists
    // where each ends.
    if let Some(last) = segment::last_offsets(meta) {
        offsets = last?;
    }
    for id in no_stats {
        lower.remove(&id);
        upper.remove(&id);
        nulls.remove(&id);
    }
    let append_us = append_time
        .ok_or_else(|| StorageError::Corrupt(format!("{} has no append_time statistics", f.key)))?;
    let day = append_us.div_euclid(86_400_000_000) as i32;
    let file = DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(io.uri(&f.key))
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::from_iter([Some(Literal::date(day))]))
        .partition_spec_id(0)
        .record_count(records)
        .file_size_in_bytes(f.size)
        .column_sizes(sizes)
        .value_counts(values)
        .null_value_counts(nulls)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .sort_order_id(1)
        .split_offsets(Some(
            meta.row_groups()
                .iter()
                .filter_map(|rg| rg.file_offset())
                .collect(),
        ))
        .build()
        .map_err(|e| StorageError::Corrupt(format!("data file of {}: {e}", f.key)))?;
    Ok((file, offsets))
}

fn lower_long(s: Option<&Statistics>) -> Option<i64> {
    match s? {
        Statistics::Int64(v) => v.min_opt().copied(),
        _ => None,
    }
}

fn upper_long(s: Option<&Statistics>) -> Option<i64> {
    match s? {
        Statistics::Int64(v) => v.max_opt().copied(),
        _ => None,
    }
}

/// Exact (min, max) of a column chunk as Iceberg values of type `ty`.
fn bounds(s: &Statistics, ty: &PrimitiveType) -> Option<(Datum, Datum)> {
    match (s, ty) {
        (Statistics::Int32(v), PrimitiveType::Int) => {
            Some((Datum::int(*v.min_opt()?), Datum::int(*v.max_opt()?)))
        }
        (Statistics::Int64(v), PrimitiveType::Long) => {
            Some((Datum::long(*v.min_opt()?), Datum::long(*v.max_opt()?)))
        }
        (Statistics::Int64(v), PrimitiveType::Timestamptz) => Some((
            Datum::timestamptz_micros(*v.min_opt()?),
            Datum::timestamptz_micros(*v.max_opt()?),
        )),
        (Statistics::ByteArray(v), PrimitiveType::Binary)
            if v.min_is_exact() && v.max_is_exact() =>
        {
            Some((
                Datum::binary(v.min_opt()?.data().to_vec()),
                Datum::binary(v.max_opt()?.data().to_vec()),
            ))
        }
        _ => None,
    }
}

fn merge(map: &mut HashMap<i32, Datum>, id: i32, v: Datum, lower: bool) {
    match map.get(&id) {
        Some(cur) if (lower && *cur <= v) || (!lower && *cur >= v) => {}
        _ => {
            map.insert(id, v);
        }
    }
}
