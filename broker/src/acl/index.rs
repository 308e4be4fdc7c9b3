//! The entries arranged for decisions: a request is decided by looking up
//! its resource's literal entries, the literal `*` and one prefix per
//! character of its name, so the cost grows with the name, not with the
//! number of entries.
//!
//! The rules are Kafka's (`AclAuthorizer`): a deny that applies wins;
//! else an allow that applies (see [`Operation::implies`]) allows; a
//! resource that no entry names at all is allowed only with
//! `allow.everyone.if.no.acl.found`.

use std::collections::HashMap;

use super::{Binding, Operation, PatternType, Permission, Resource, ResourceType, WILDCARD};

/// Every entry, by resource type and pattern.
#[derive(Debug, Default)]
pub(super) struct Index {
    literal: HashMap<ResourceType, HashMap<String, Vec<Binding>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<Binding>>>,
    /// Every entry of each resource type (the by-type decision).
    by_type: HashMap<ResourceType, Vec<Binding>>,
    count: usize,
}

impl Index {
    /// The index of `bindings`.
    pub(super) fn new(bindings: impl IntoIterator<Item = Binding>) -> Index {
        let mut index = Index::default();
        for b in bindings {
            index
                .by_type
                .entry(b.resource_type)
                .or_default()
                .push(b.clone());
            let by_name = match b.pattern {
                PatternType::Literal => &mut index.literal,
                PatternType::Prefixed => &mut index.prefixed,
            };
            let entries = by_name.entry(b.resource_type).or_default();
            entries.entry(b.name.clone()).or_default().push(b);
            index.count += 1;
        }
        index
    }

    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Every entry, in no particular order.
    pub(super) fn all(&self) -> impl Iterator<Item = &Binding> {
        self.by_type.values().flatten()
    }

    /// The entries whose pattern covers `resource`.
    fn covering<'a>(&'a self, resource: &'a Resource<'_>) -> impl Iterator<Item = &'a Binding> {
        let kind = resource.resource_type();
        let name = resource.name();
        let literals = self.literal.get(&kind);
        let literal = move |n: &str| literals.and_then(|m| m.get(n)).into_iter().flatten();
        let prefixed = self.prefixed.get(&kind);
        let prefixes = prefixed
            .into_iter()
            .flat_map(move |m| {
                name.char_indices()
                    .filter_map(move |(i, c)| m.get(&name[..i + c.len_utf8()]))
            })
            .flatten();
        let wildcard = (name != WILDCARD)
            .then(|| literal(WILDCARD))
            .into_iter()
            .flatten();
        literal(name).chain(wildcard).chain(prefixes)
    }

    /// Kafka's decision for `principal` at `host` doing `op` on `resource`.
    pub(super) fn decide(
        &self,
        principal: &str,
        host: &str,
        resource: &Resource<'_>,
        op: Operation,
        allow_if_none: bool,
    ) -> bool {
        let mut named = false;
        let mut allowed = false;
        for b in self.covering(resource) {
            named = true;
            if !b.applies_to(principal, host) {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return false
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= b.operation.implies(op),
            }
        }
        if named {
            allowed
        } else {
            allow_if_none
        }
    }

    /// True when `principal` at `host` may do `op` on at least one
    /// resource of `kind` (Kafka's `authorizeByResourceType`: idempotent
    /// producers need WRITE on some topic): some allow that applies names
    /// a pattern no deny that applies covers whole.
    pub(super) fn allows_some(
        &self,
        principal: &str,
        host: &str,
        kind: ResourceType,
        op: Operation,
        allow_if_none: bool,
    ) -> bool {
        let entries = self.by_type.get(&kind).map(Vec::as_slice).unwrap_or(&[]);
        if entries.is_empty() {
            return allow_if_none;
        }
        let applying = || entries.iter().filter(|b| b.applies_to(principal, host));
        let denies: Vec<&Binding> = applying()
            .filter(|b| {
                b.permission == Permission::Deny
                    && (b.operation == op || b.operation == Operation::All)
            })
            .collect();
        let covered = |allow: &Binding| {
            denies.iter().any(|d| match (d.pattern, allow.pattern) {
                (PatternType::Literal, _) if d.name == WILDCARD => true,
                (PatternType::Literal, PatternType::Literal) => d.name == allow.name,
                (PatternType::Prefixed, _) => allow.name.starts_with(d.name.as_str()),
                (PatternType::Literal, PatternType::Prefixed) => false,
            })
        };
        applying()
            .any(|b| b.permission == Permission::Allow && b.operation.implies(op) && !covered(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    fn entry(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        permission: Permission,
    ) -> Binding {
        Binding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    const ALICE: &str = "User:alice";
    const HOST: &str = "10.0.0.1";

    #[test]
    fn allow_prefix_deny_literal_and_implied_describe() {
        let index = Index::new([
            entry(
                "orders-",
                PatternType::Prefixed,
                ALICE,
                Read,
                Permission::Allow,
            ),
            entry(
                "orders-secret",
                PatternType::Literal,
                ALICE,
                Read,
                Permission::Deny,
            ),
            entry(
                "audit",
                PatternType::Literal,
                "User:*",
                Write,
                Permission::Allow,
            ),
        ]);
        let may = |topic, op| index.decide(ALICE, HOST, &Resource::Topic(topic), op, false);
        assert!(may("orders-eu", Read));
        assert!(may("orders-eu", Describe), "READ implies DESCRIBE");
        assert!(!may("orders-eu", Write));
        assert!(!may("orders-secret", Read), "the deny wins");
        assert!(
            may("orders-secret", Describe),
            "a deny of READ is not one of DESCRIBE"
        );
        assert!(may("audit", Write), "User:* is everyone");
        assert!(!index.decide("User:bob", HOST, &Resource::Topic("orders-eu"), Read, true));
    }

    #[test]
    fn a_resource_no_entry_names_follows_the_setting() {
        let index = Index::new([entry(
            "a",
            PatternType::Literal,
            ALICE,
            Read,
            Permission::Allow,
        )]);
        assert!(!index.decide(ALICE, HOST, &Resource::Topic("b"), Read, false));
        assert!(index.decide(ALICE, HOST, &Resource::Topic("b"), Read, true));
        // Named (for someone else): the setting no longer applies.
        assert!(!index.decide("User:bob", HOST, &Resource::Topic("a"), Read, true));
    }

    #[test]
    fn hosts_and_the_literal_wildcard() {
        let mut local = entry("*", PatternType::Literal, ALICE, All, Permission::Allow);
        local.host = "127.0.0.1".into();
        let index = Index::new([local]);
        let topic = Resource::Topic("anything");
        assert!(index.decide(ALICE, "127.0.0.1", &topic, Delete, false));
        assert!(!index.decide(ALICE, HOST, &topic, Delete, false));
    }

    #[test]
    fn some_topic_writable_unless_denied_whole() {
        let allow = entry(
            "logs-",
            PatternType::Prefixed,
            ALICE,
            Write,
            Permission::Allow,
        );
        let index = Index::new([allow.clone()]);
        assert!(index.allows_some(ALICE, HOST, ResourceType::Topic, Write, false));
        assert!(!index.allows_some(ALICE, HOST, ResourceType::Topic, Read, false));
        let denied = Index::new([
            allow.clone(),
            entry("logs", PatternType::Prefixed, ALICE, All, Permission::Deny),
        ]);
        assert!(!denied.allows_some(ALICE, HOST, ResourceType::Topic, Write, false));
        let elsewhere = Index::new([
            allow,
            entry(
                "logs-x",
                PatternType::Literal,
                ALICE,
                Write,
                Permission::Deny,
            ),
        ]);
        assert!(elsewhere.allows_some(ALICE, HOST, ResourceType::Topic, Write, false));
        assert!(Index::new([]).allows_some(ALICE, HOST, ResourceType::Topic, Write, true));
    }
}
