//! Which topics this log leads, following the metadata store's placement
//! (`meta/placement.rs`): a topic is led whole by one broker, and this log
//! holds, writes and rewrites only the topics it leads.
//!
//! Leading a topic starts with a claim that bumps its leader epochs (a
//! commit of any earlier leader, an earlier run of this broker included,
//! is refused from then on), then loads its partitions, segment index and
//! producer states from the store: what the last leader committed is
//! what this one starts from. Releasing it fails what is buffered and not
//! committed (those producers were never answered and retry at the new
//! leader) and drops it; a flush in flight commits only if the store
//! still names this broker at its epoch.
//!
//! Topic admin works from any broker through the store; the leader follows
//! what changed (configs, partitions added, the topic deleted) at its next
//! [`Log::follow`].

use super::*;
use crate::meta::{TopicLeader, TopicRecord};

/// What one [`Log::follow`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// Topics this log started leading.
    pub led: Vec<String>,
    /// Topics it stopped leading (moved, fenced or deleted).
    pub released: Vec<String>,
}

impl Log {
    /// Starts leading `record`'s topic if the store names this broker its
    /// leader; false if it does not.
    pub async fn lead(self: &Arc<Self>, record: &TopicRecord) -> Result<bool> {
        let _placing = self.placing.lock().await;
        // Created here (or led) since the caller looked: already held, at
        // the epoch its creation or claim gave it.
        if self.topic(&record.name).is_some() {
            return Ok(true);
        }
        let Some(partitions) = self
            .meta
            .claim_topic(&record.name, self.cfg.broker_id)
            .await?
        else {
            return Ok(false);
        };
        let topic = self.load_topic(record, &partitions).await?;
        {
            let mut topics = write_lock(&self.topics);
            if topics.get(&record.name).is_some_and(|t| !t.closed()) {
                return Ok(true);
            }
            topics.insert(record.name.clone(), topic.clone());
        }
        tokio::spawn(run_flusher(self.clone(), topic));
        self.share_tail_cache();
        info!(topic = %record.name, "leading topic");
        Ok(true)
    }

    /// Stops leading a topic: what is buffered fails, nothing more is
    /// appended here.
    pub fn release(&self, name: &str) {
        let Some(topic) = write_lock(&self.topics).remove(name) else {
            return;
        };
        topic.released.store(true, Ordering::SeqCst);
        topic.wake.notify_one();
        self.share_tail_cache();
        info!(topic = name, "no longer leading topic");
    }

    /// Makes this log lead what `leaders` (the store's placement) names
    /// this broker for and nothing else, and brings the topics it keeps up
    /// to date with `records` (configs) and `leaders` (partition counts);
    /// reloads the cluster-wide broker configs too. `read_at` is when the
    /// store was read (before both queries): a topic this log loaded since
    /// (created here a moment ago) is newer than what was read, and kept.
    pub async fn follow(
        self: &Arc<Self>,
        leaders: &[TopicLeader],
        records: &[TopicRecord],
        read_at: Instant,
    ) -> Result<Followed> {
        let me = self.cfg.broker_id;
        let mine: HashMap<&str, &TopicLeader> = leaders
            .iter()
            .filter(|l| l.leader_id == me)
            .map(|l| (l.topic.as_str(), l))
            .collect();
        let mut followed = Followed::default();
        for t in self.topics_held() {
            let unplaced = !mine.contains_key(t.name.as_str()) && t.loaded < read_at;
            if t.closed() || unplaced {
                self.release(&t.name);
                followed.released.push(t.name.clone());
            }
        }
        self.reload_broker_configs().await?;
        for record in records {
            let Some(leader) = mine.get(record.name.as_str()) else {
                continue;
            };
            match self.topic(&record.name) {
                Some(topic) => self.refresh(&topic, record, leader).await?,
                None => {
                    if self.lead(record).await? {
                        followed.led.push(record.name.clone());
                    }
                }
            }
        }
        Ok(followed)
    }

    /// Every topic in the map, closed ones included.
    fn topics_held(&self) -> Vec<Arc<TopicLog>> {
        read_lock(&self.topics).values().cloned().collect()
    }

    /// Takes in what another broker changed in a topic this log leads:
    /// its configs and partitions added.
    async fn refresh(
        &self,
        topic: &TopicLog,
        record: &TopicRecord,
        leader: &TopicLeader,
    ) -> Result<()> {
        if read_lock(&topic.config).overrides != record.configs {
            *write_lock(&topic.config) = self.topic_config(record.configs.clone())?;
        }
        if leader.partitions > topic.partition_count() {
            let stored = self.meta.list_partitions(&topic.name).await?;
            let mut parts = write_lock(&topic.partitions);
            for p in stored.iter().skip(parts.len()) {
                parts.push(Arc::new(PartitionLog::new(
                    p.partition,
                    p.high_watermark,
                    p.log_start_offset,
                    p.leader_epoch,
                    self.tail_share.clone(),
                )));
            }
            drop(parts);
            self.share_tail_cache();
        }
        Ok(())
    }
}
