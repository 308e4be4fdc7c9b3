//! Fetch redaction: the fields a consumer's purpose may not see are
//! removed from the values it is sent.

use std::sync::Arc;

use bytes::Bytes;
use floe_protocol::records::{BatchBuilder, RawBatch, Record};
use floe_schema::prost_reflect::MessageDescriptor;
use floe_schema::CompiledSchema;

use super::{read, PrefixCache, Registry};

/// What redaction made of one value.
enum Redacted {
    /// Passed on as stored.
    Unchanged,
    /// Restricted fields removed.
    Changed(Vec<u8>),
    /// Carries a schema prefix but cannot be inspected (unknown schema,
    /// does not decode): sent as null rather than risk a leak.
    Withheld,
}

/// How redaction treats the values of one prefix.
enum Inspect {
    /// Not a protobuf schema: no policies.
    Pass,
    /// Unknown schema, or indexes naming no message: never passed on.
    Withhold,
    Redact(Arc<CompiledSchema>, MessageDescriptor),
}

impl Registry {
    /// Redacts one value with a schema prefix for `purpose`.
    fn redact_value(
        &self,
        value: &[u8],
        purpose: Option<&str>,
        cache: &mut PrefixCache<Inspect>,
    ) -> Redacted {
        let resolved = cache.lookup(value, |prefix| match self.protobuf(prefix.schema_id) {
            // AVRO and JSON schemas carry no field policies.
            None => Inspect::Pass,
            Some(Err(_)) => Inspect::Withhold,
            Some(Ok(schema)) => match schema.message_at(&prefix.message_indexes) {
                Some(message) => Inspect::Redact(schema, message),
                None => Inspect::Withhold,
            },
        });
        // Not a schema value (a raw topic, or `off` mode): nothing to inspect.
        let Ok((len, inspect)) = resolved else {
            return Redacted::Unchanged;
        };
        let (schema, message) = match inspect {
            Inspect::Pass => return Redacted::Unchanged,
            Inspect::Withhold => return Redacted::Withheld,
            Inspect::Redact(schema, message) => (schema, message),
        };
        match schema.policies.redact_wire(message, &value[len..], purpose) {
            Ok(None) => Redacted::Unchanged,
            Ok(Some(payload)) => {
                let mut out = Vec::with_capacity(len + payload.len());
                out.extend_from_slice(&value[..len]);
                out.extend_from_slice(&payload);
                Redacted::Changed(out)
            }
            Err(_) => Redacted::Withheld,
        }
    }

    /// Removes from fetched batches every field `purpose` may not see.
    /// Batches without such fields are returned as they are. A value that
    /// does not parse as its schema is withheld (null) rather than passed
    /// on: a restricted topic never leaks what it cannot inspect.
    pub fn redact_batches(&self, topic: &str, records: Bytes, purpose: Option<&str>) -> Bytes {
        // Every version ever registered, soft-deleted ones too: stored
        // records may carry any of them. None restricted: nothing to do.
        let ids: Vec<i32> = read(&self.state)
            .versions(&format!("{topic}-value"), true)
            .iter()
            .map(|v| v.schema_id)
            .collect();
        let restricted = ids.iter().any(|id| match self.protobuf(*id) {
            Some(Ok(c)) => !c.policies.all().is_empty(),
            Some(Err(_)) => true,
            None => false,
        });
        if !restricted {
            return records;
        }
        let Ok(batches) = floe_protocol::records::split_batches(records.clone()) else {
            return records;
        };
        let mut out = bytes::BytesMut::with_capacity(records.len());
        let mut cache = PrefixCache::default();
        for b in batches {
            match self.redact_batch(&b, purpose, &mut cache) {
                Some(rebuilt) => out.extend_from_slice(&rebuilt),
                None => out.extend_from_slice(&b.bytes),
            }
        }
        out.freeze()
    }

    fn redact_batch(
        &self,
        b: &RawBatch,
        purpose: Option<&str>,
        cache: &mut PrefixCache<Inspect>,
    ) -> Option<Bytes> {
        let records: Vec<Record> = b.records(64 * 1024 * 1024).ok()?;
        let mut changed: Vec<Redacted> = Vec::with_capacity(records.len());
        let mut any = false;
        for r in &records {
            let c = match &r.value {
                Some(v) => self.redact_value(v, purpose, cache),
                None => Redacted::Unchanged,
            };
            any |= !matches!(c, Redacted::Unchanged);
            changed.push(c);
        }
        if !any {
            return None;
        }
        let h = &b.header;
        let mut builder = BatchBuilder::new(h.base_offset, h.base_timestamp, h.timestamp_type());
        for (r, c) in records.iter().zip(&changed) {
            let headers: Vec<(&[u8], Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|h| (h.key.as_ref(), h.value.as_deref()))
                .collect();
            let value = match c {
                Redacted::Unchanged => r.value.as_deref(),
                Redacted::Changed(v) => Some(v.as_slice()),
                Redacted::Withheld => None,
            };
            builder.push(
                h.base_offset + i64::from(r.offset_delta),
                h.base_timestamp + r.timestamp_delta,
                r.key.as_deref(),
                value,
                &headers,
            );
        }
        Some(builder.finish(h.partition_leader_epoch))
    }
}
