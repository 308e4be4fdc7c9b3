//! Grants: the purposes each principal may state when it fetches.

use std::collections::{BTreeMap, BTreeSet};

use super::{read, store_error, write, Registry, RegistryError};

impl Registry {
    /// Purposes a principal may state.
    pub fn grants(&self) -> BTreeMap<String, BTreeSet<String>> {
        read(&self.state)
            .grants
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Replaces a principal's grants.
    pub async fn set_grants(
        &self,
        principal: &str,
        purposes: Vec<String>,
    ) -> Result<(), RegistryError> {
        self.meta
            .set_grants(principal, &purposes)
            .await
            .map_err(store_error)?;
        write(&self.state)
            .grants
            .insert(principal.to_string(), purposes.into_iter().collect());
        Ok(())
    }

    /// True when `principal` may state `purpose`.
    pub fn may_claim(&self, principal: &str, purpose: &str) -> bool {
        read(&self.state)
            .grants
            .get(principal)
            .is_some_and(|g| g.contains(purpose))
    }
}
