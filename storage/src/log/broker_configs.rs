//! Broker configs set at run time (AlterConfigs on a broker resource):
//! cluster-wide defaults of topic configs (`log.retention.ms` for every
//! topic without its own `retention.ms`, ...), kept in the metadata store
//! and applied to every topic at once. floe's other broker settings come
//! from its flags and are read-only.

use super::*;
use crate::topic_config::{check_broker_config, topic_defaults};

/// The broker configs set at run time and the topic defaults they make.
#[derive(Debug, Default)]
pub(super) struct Dynamic {
    broker: BTreeMap<String, String>,
    topic_defaults: Arc<BTreeMap<String, String>>,
}

impl Dynamic {
    /// What the metadata store holds; a config this version does not know
    /// (set by a newer broker) is left out, with a warning.
    pub(super) async fn load(meta: &dyn MetadataStore) -> Result<Self> {
        let mut broker = meta.broker_configs().await?;
        broker.retain(|name, value| {
            let known = check_broker_config(name, value).is_ok();
            if !known {
                warn!(%name, %value, "ignoring a stored broker config this broker does not know");
            }
            known
        });
        let topic_defaults = Arc::new(topic_defaults(&broker)?);
        Ok(Dynamic {
            broker,
            topic_defaults,
        })
    }
}

impl Log {
    /// The broker configs set at run time, by name.
    pub fn broker_configs(&self) -> BTreeMap<String, String> {
        read_lock(&self.dynamic).broker.clone()
    }

    /// Takes in the broker configs another broker set.
    pub(super) async fn reload_broker_configs(&self) -> Result<()> {
        let stored = Dynamic::load(self.meta.as_ref()).await?;
        if stored.broker == read_lock(&self.dynamic).broker {
            return Ok(());
        }
        let defaults = stored.topic_defaults.clone();
        *write_lock(&self.dynamic) = stored;
        for t in self.topics() {
            let mut cfg = write_lock(&t.config);
            *cfg = cfg.clone().with_defaults(defaults.clone());
        }
        Ok(())
    }

    /// A topic config with `overrides` under the cluster-wide defaults.
    pub fn topic_config(&self, overrides: BTreeMap<String, String>) -> Result<TopicConfig> {
        Ok(TopicConfig::new(overrides)?.with_defaults(self.topic_defaults()))
    }

    /// The topic defaults they make, by topic config name.
    pub(super) fn topic_defaults(&self) -> Arc<BTreeMap<String, String>> {
        read_lock(&self.dynamic).topic_defaults.clone()
    }

    /// Replaces the broker configs set at run time (a name left out
    /// returns to its default); refused whole, changing nothing, if any
    /// name cannot be set or any value is invalid.
    pub async fn set_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let defaults = Arc::new(topic_defaults(&configs)?);
        if validate_only {
            return Ok(());
        }
        self.meta.set_broker_configs(&configs).await?;
        *write_lock(&self.dynamic) = Dynamic {
            broker: configs,
            topic_defaults: defaults.clone(),
        };
        for topic in self.topics() {
            let mut cfg = write_lock(&topic.config);
            *cfg = cfg.clone().with_defaults(defaults.clone());
        }
        info!(defaults = ?defaults, "broker configs changed");
        Ok(())
    }
}
