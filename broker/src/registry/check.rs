//! Produce checks: a produced value's wire prefix names a live version of
//! its subject, and the value decodes as that message and keeps its rules.

use std::sync::Arc;

use floe_schema::prost_reflect::MessageDescriptor;
use floe_schema::wire::{encode_prefix, WirePrefix};
use floe_schema::wirecheck::WirePlan;
use floe_schema::CompiledSchema;

use super::{PrefixCache, Registry};

/// A value's message, resolved once per prefix in a produce request.
struct Resolved {
    schema: Arc<CompiledSchema>,
    message: MessageDescriptor,
    plan: Option<Arc<WirePlan>>,
}

/// Checks produced values against one subject (see
/// [`Registry::subject_check`]): the wire prefix, that its schema id is a
/// live version of the subject, the decode and the rules.
pub struct SubjectCheck<'a> {
    registry: &'a Registry,
    subject: String,
    ids: Vec<i32>,
    cache: PrefixCache<Result<Resolved, String>>,
    /// The prefix coerced values get, once asked for.
    coerce: Option<Result<Vec<u8>, String>>,
}

impl SubjectCheck<'_> {
    /// The subject checked against.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// True when the subject has a live version.
    pub fn has_schema(&self) -> bool {
        !self.ids.is_empty()
    }

    /// The wire prefix of the subject's latest schema, for `message` (a
    /// full name; None: the schema's first message).
    pub fn coerce_prefix(&mut self, message: Option<&str>) -> Result<&[u8], String> {
        let (registry, subject) = (self.registry, &self.subject);
        self.coerce
            .get_or_insert_with(|| registry.latest_prefix(subject, message))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Checks one value; the error says what is wrong, for a person.
    pub fn check(&mut self, value: &[u8]) -> Result<(), String> {
        let (registry, subject, ids) = (self.registry, &self.subject, &self.ids);
        let (len, resolved) = self
            .cache
            .lookup(value, |prefix| registry.resolve(subject, ids, prefix))
            .map_err(|e| e.to_string())?;
        let r = resolved.as_ref().map_err(Clone::clone)?;
        floe_schema::validate::validate_message(
            &r.schema,
            &r.message,
            r.plan.as_deref(),
            &value[len..],
        )
    }
}

impl Registry {
    /// A checker of values against `subject`, for one produce request.
    pub fn subject_check(&self, subject: String) -> SubjectCheck<'_> {
        let ids = self.live_ids(&subject);
        SubjectCheck {
            registry: self,
            subject,
            ids,
            cache: PrefixCache::default(),
            coerce: None,
        }
    }

    /// The wire prefix naming `message` (None: the first message) of the
    /// latest schema of `subject`.
    fn latest_prefix(&self, subject: &str, message: Option<&str>) -> Result<Vec<u8>, String> {
        let id = self
            .latest_id(subject)
            .ok_or_else(|| format!("subject {subject} has no schema"))?;
        let schema = self.compiled(id).map_err(|e| e.message)?;
        let desc = match message {
            Some(name) => schema.pool.get_message_by_name(name),
            None => schema.file.messages().next(),
        };
        let indexes = desc.and_then(|d| schema.indexes_of(&d)).ok_or_else(|| {
            format!(
                "schema {id} of subject {subject} has no message {}",
                message.unwrap_or("at all")
            )
        })?;
        Ok(encode_prefix(id, &indexes))
    }

    /// What a prefix names, for a subject whose live ids are `ids`.
    fn resolve(&self, subject: &str, ids: &[i32], prefix: &WirePrefix) -> Result<Resolved, String> {
        if !ids.contains(&prefix.schema_id) {
            return Err(format!(
                "schema id {} is not a version of subject {subject} (its ids: {ids:?})",
                prefix.schema_id
            ));
        }
        let schema = self
            .compiled(prefix.schema_id)
            .map_err(|e| e.message.clone())?;
        let message = schema.message_at(&prefix.message_indexes).ok_or_else(|| {
            format!(
                "message indexes {:?} name no message of the schema",
                prefix.message_indexes
            )
        })?;
        let plan = schema.plans.get(&message);
        Ok(Resolved {
            schema,
            message,
            plan,
        })
    }
}
