//! Grants: the purposes each principal may state when it fetches.

use std::collections::{BTreeMap, BTreeSet};

use floe_schema::policy::FieldPolicy;

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

    /// The restricted fields of every version of `subject`, deleted ones
    /// too (their rows stay in the topic's table), with their message's
    /// full name.
    pub fn restricted_fields(&self, subject: &str) -> Vec<(String, FieldPolicy)> {
        let ids: Vec<i32> = read(&self.state)
            .versions(subject, true)
            .iter()
            .map(|v| v.schema_id)
            .collect();
        let mut out = Vec::new();
        for compiled in ids.into_iter().filter_map(|id| self.compiled(id).ok()) {
            for (message, fields) in compiled.policies.all() {
                out.extend(fields.iter().map(|f| (message.clone(), f.clone())));
            }
        }
        out
    }

    /// True when `principal` may state `purpose`.
    pub fn may_claim(&self, principal: &str, purpose: &str) -> bool {
        read(&self.state)
            .grants
            .get(principal)
            .is_some_and(|g| g.contains(purpose))
    }
}
