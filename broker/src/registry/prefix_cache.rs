//! Lookups by raw wire prefix, shared by the produce checks and the fetch
//! redaction.

use floe_schema::wire::{parse_prefix, WireError, WirePrefix};

/// Lookups by raw wire prefix. The values of one request nearly always
/// share a prefix, and a prefix is self-delimiting, so a value that starts
/// with a remembered prefix has exactly that prefix: no parse, no lock.
pub(super) struct PrefixCache<T> {
    entries: Vec<(Vec<u8>, T)>,
}

impl<T> Default for PrefixCache<T> {
    fn default() -> Self {
        PrefixCache {
            entries: Vec::new(),
        }
    }
}

impl<T> PrefixCache<T> {
    /// How many distinct prefixes one request remembers.
    const SIZE: usize = 8;

    /// The entry for `value`'s prefix and the prefix's length, resolving
    /// it on a miss; an error when the value has no valid prefix.
    pub(super) fn lookup(
        &mut self,
        value: &[u8],
        resolve: impl FnOnce(&WirePrefix) -> T,
    ) -> Result<(usize, &T), WireError> {
        let at = match self
            .entries
            .iter()
            .position(|(raw, _)| value.starts_with(raw))
        {
            Some(at) => at,
            None => {
                let prefix = parse_prefix(value)?;
                let entry = resolve(&prefix);
                if self.entries.len() == Self::SIZE {
                    self.entries.remove(0);
                }
                self.entries.push((value[..prefix.len].to_vec(), entry));
                self.entries.len() - 1
            }
        };
        let (raw, entry) = &self.entries[at];
        Ok((raw.len(), entry))
    }
}
