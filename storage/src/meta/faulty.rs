//! A fault-injecting wrapper around a real metadata store, for the
//! consistency checker and the tests: with `commit_reply_lost` set (the
//! broker's `--fault-injection`, `/admin/faults`), a commit of flushes is
//! made and then reported failed, as when the connection to PostgreSQL
//! drops during COMMIT. The log must then learn the outcome
//! ([`MetadataStore::file_committed`]) instead of treating the flush as
//! never committed. Everything else is forwarded.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use super::*;
use crate::error::{BackendError, Result};
use crate::faults::Faults;

/// A metadata store whose commits lose their replies as [`Faults`] say.
pub struct FaultyMetadata {
    inner: Arc<dyn MetadataStore>,
    faults: Faults,
}

impl FaultyMetadata {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MetadataStore>, faults: Faults) -> Self {
        FaultyMetadata { inner, faults }
    }
}

#[async_trait]
impl MetadataStore for FaultyMetadata {
    async fn commit_flushes(&self, commits: &[&FlushCommit]) -> Result<()> {
        self.inner.commit_flushes(commits).await?;
        if self.faults.lose_commit_reply() {
            let lost = std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected fault: the reply to a committed flush was lost",
            );
            return Err(BackendError::Metadata(sqlx::Error::Io(lost)).into());
        }
        Ok(())
    }

    async fn cluster_id(&self) -> Result<String> {
        self.inner.cluster_id().await
    }

    async fn broker_configs(&self) -> Result<BTreeMap<String, String>> {
        self.inner.broker_configs().await
    }

    async fn set_broker_configs(&self, configs: &BTreeMap<String, String>) -> Result<()> {
        self.inner.set_broker_configs(configs).await
    }

    async fn register_broker(
        &self,
        broker: &BrokerRecord,
        replacing: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<BrokerRecord>> {
        self.inner.register_broker(broker, replacing, now_ms).await
    }

    async fn renew_broker_lease(
        &self,
        broker_id: i32,
        incarnation: &str,
        lease_expires_ms: i64,
    ) -> Result<bool> {
        self.inner
            .renew_broker_lease(broker_id, incarnation, lease_expires_ms)
            .await
    }

    async fn unregister_broker(&self, broker_id: i32, incarnation: &str) -> Result<()> {
        self.inner.unregister_broker(broker_id, incarnation).await
    }

    async fn live_brokers(&self, now_ms: i64) -> Result<Vec<BrokerRecord>> {
        self.inner.live_brokers(now_ms).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        self.inner.list_topics().await
    }

    async fn list_partitions(&self, topic: &str) -> Result<Vec<PartitionRecord>> {
        self.inner.list_partitions(topic).await
    }

    async fn create_topic(
        &self,
        topic: &TopicRecord,
        partitions: i32,
        leader_id: i32,
    ) -> Result<()> {
        self.inner.create_topic(topic, partitions, leader_id).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<Vec<String>> {
        self.inner.delete_topic(topic).await
    }

    async fn add_partitions(&self, topic: &str, new_count: i32, leader_id: i32) -> Result<()> {
        self.inner.add_partitions(topic, new_count, leader_id).await
    }

    async fn set_topic_configs(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.inner.set_topic_configs(topic, configs).await
    }

    async fn claim_leadership(&self, broker_id: i32) -> Result<()> {
        self.inner.claim_leadership(broker_id).await
    }

    async fn topic_leaders(&self) -> Result<Vec<TopicLeader>> {
        self.inner.topic_leaders().await
    }

    async fn balance_leadership(
        &self,
        now_ms: i64,
        max_fair_moves: usize,
    ) -> Result<Vec<LeaderMove>> {
        self.inner.balance_leadership(now_ms, max_fair_moves).await
    }

    async fn claim_topic(
        &self,
        topic: &str,
        broker_id: i32,
    ) -> Result<Option<Vec<PartitionRecord>>> {
        self.inner.claim_topic(topic, broker_id).await
    }

    async fn list_segments(&self, topic: &str) -> Result<Vec<SegmentRecord>> {
        self.inner.list_segments(topic).await
    }

    async fn list_producer_states(&self, topic: &str) -> Result<Vec<ProducerStateRecord>> {
        self.inner.list_producer_states(topic).await
    }

    async fn list_open_transactions(&self, topic: &str) -> Result<Vec<OpenTransactionRecord>> {
        self.inner.list_open_transactions(topic).await
    }

    async fn list_transaction_markers(&self, topic: &str) -> Result<Vec<TransactionMarkerRecord>> {
        self.inner.list_transaction_markers(topic).await
    }

    async fn load_transactions(&self) -> Result<Vec<TransactionRecord>> {
        self.inner.load_transactions().await
    }

    async fn save_transaction(&self, term: CoordinatorTerm, t: &TransactionRecord) -> Result<()> {
        self.inner.save_transaction(term, t).await
    }

    async fn file_committed(&self, path: &str) -> Result<bool> {
        self.inner.file_committed(path).await
    }

    async fn new_producer_id(&self, now_ms: i64) -> Result<i64> {
        self.inner.new_producer_id(now_ms).await
    }

    async fn producer_epoch(&self, producer_id: i64) -> Result<Option<i16>> {
        self.inner.producer_epoch(producer_id).await
    }

    async fn set_producer_epoch(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<()> {
        self.inner
            .set_producer_epoch(producer_id, epoch, now_ms)
            .await
    }

    async fn advance_log_starts(&self, topic: &str, starts: &[(i32, i64)]) -> Result<Vec<String>> {
        self.inner.advance_log_starts(topic, starts).await
    }

    async fn files_below_log_start(&self, topic: &str) -> Result<Vec<String>> {
        self.inner.files_below_log_start(topic).await
    }

    async fn committed_files(&self) -> Result<HashSet<String>> {
        self.inner.committed_files().await
    }

    async fn objects_with_chunks(&self, objects: &[&str]) -> Result<HashSet<String>> {
        self.inner.objects_with_chunks(objects).await
    }

    async fn topic_columns(&self, topic: &str) -> Result<Option<String>> {
        self.inner.topic_columns(topic).await
    }

    async fn save_topic_columns(&self, topic: &str, body: &str) -> Result<()> {
        self.inner.save_topic_columns(topic, body).await
    }

    async fn column_layout(&self, layout: &str) -> Result<Option<Vec<u8>>> {
        self.inner.column_layout(layout).await
    }

    async fn save_column_layout(&self, layout: &str, body: &[u8]) -> Result<()> {
        self.inner.save_column_layout(layout, body).await
    }

    async fn table_pointer(&self, topic: &str) -> Result<Option<String>> {
        self.inner.table_pointer(topic).await
    }

    async fn table_pending(&self, topic: &str) -> Result<TablePending> {
        self.inner.table_pending(topic).await
    }

    async fn commit_table(&self, commit: &TableCommitRecord) -> Result<bool> {
        self.inner.commit_table(commit).await
    }

    async fn files_in_order(&self, topic: &str) -> Result<Vec<FileRecord>> {
        self.inner.files_in_order(topic).await
    }

    async fn replace_files(&self, replacement: &FileReplacement) -> Result<bool> {
        self.inner.replace_files(replacement).await
    }

    async fn release_table_files(&self, topic: &str, cutoff_ms: i64) -> Result<Vec<String>> {
        self.inner.release_table_files(topic, cutoff_ms).await
    }

    async fn save_group(
        &self,
        term: CoordinatorTerm,
        group: &GroupRecord,
        now_ms: i64,
    ) -> Result<()> {
        self.inner.save_group(term, group, now_ms).await
    }

    async fn load_groups(&self) -> Result<Vec<GroupRecord>> {
        self.inner.load_groups().await
    }

    async fn save_consumer_protocol_group(
        &self,
        term: CoordinatorTerm,
        group: &ConsumerProtocolGroupRecord,
        now_ms: i64,
    ) -> Result<()> {
        self.inner
            .save_consumer_protocol_group(term, group, now_ms)
            .await
    }

    async fn load_consumer_protocol_groups(&self) -> Result<Vec<ConsumerProtocolGroupRecord>> {
        self.inner.load_consumer_protocol_groups().await
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<ChangeCounts>> {
        self.inner.changes()
    }

    async fn load_registry(&self) -> Result<RegistryRecord> {
        self.inner.load_registry().await
    }

    async fn registry_change(&self) -> Result<Option<String>> {
        self.inner.registry_change().await
    }

    async fn register_schema(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        refs: &str,
        now_ms: i64,
    ) -> Result<(i32, i32)> {
        self.inner
            .register_schema(subject, schema_type, schema, refs, now_ms)
            .await
    }

    async fn delete_subject_versions(
        &self,
        subject: &str,
        version: Option<i32>,
        permanent: bool,
    ) -> Result<()> {
        self.inner
            .delete_subject_versions(subject, version, permanent)
            .await
    }

    async fn set_compatibility(&self, subject: &str, level: Option<&str>) -> Result<()> {
        self.inner.set_compatibility(subject, level).await
    }

    async fn set_grants(&self, principal: &str, purposes: &[String]) -> Result<()> {
        self.inner.set_grants(principal, purposes).await
    }

    async fn delete_group(&self, term: CoordinatorTerm, group_id: &str) -> Result<()> {
        self.inner.delete_group(term, group_id).await
    }

    async fn commit_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        offsets: &[CommittedOffset],
    ) -> Result<()> {
        self.inner.commit_offsets(term, group_id, offsets).await
    }

    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>> {
        self.inner.fetch_offsets(group_id).await
    }

    async fn delete_offsets(
        &self,
        term: CoordinatorTerm,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        self.inner.delete_offsets(term, group_id, partitions).await
    }

    async fn groups_with_offsets(&self) -> Result<Vec<String>> {
        self.inner.groups_with_offsets().await
    }

    async fn scram_credentials(&self, user: Option<&str>) -> Result<Vec<ScramCredentialRecord>> {
        self.inner.scram_credentials(user).await
    }

    async fn alter_scram_credentials(
        &self,
        upserts: &[ScramCredentialRecord],
        deletions: &[(String, String)],
    ) -> Result<()> {
        self.inner.alter_scram_credentials(upserts, deletions).await
    }

    async fn cluster_value_or_insert(&self, name: &str, fresh: &str) -> Result<String> {
        self.inner.cluster_value_or_insert(name, fresh).await
    }

    async fn acls(&self) -> Result<(Vec<AclRecord>, Option<String>)> {
        self.inner.acls().await
    }

    async fn acls_change(&self) -> Result<Option<String>> {
        self.inner.acls_change().await
    }

    async fn alter_acls(&self, added: &[AclRecord], removed: &[AclRecord]) -> Result<()> {
        self.inner.alter_acls(added, removed).await
    }
}
