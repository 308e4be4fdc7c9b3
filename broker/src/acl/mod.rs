//! Access control lists, as Apache Kafka states and applies them: an entry
//! allows or denies a principal, from a host, an operation on the
//! resources a pattern names (a literal name, `*`, or a prefix). The
//! entries live in the metadata store, so every broker applies the same
//! ones; each broker keeps an index of them ([`index`]) that it follows
//! the store with ([`Authorizer`]), and a request is checked through the
//! [`Access`] of its connection.
//!
//! The vocabulary below carries Kafka's codes, the ones CreateAcls,
//! DescribeAcls and DeleteAcls speak.

mod authorizer;
mod filter;
mod index;

pub use authorizer::{Access, Authorizer, AuthorizerConfig};
pub use filter::AclFilter;

use floe_storage::meta::AclRecord;

/// The only name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The resource name (literal) or principal name that matches every one.
pub const WILDCARD: &str = "*";

/// What an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub enum ResourceType {
    /// A topic.
    Topic = 2,
    /// A consumer group.
    Group = 3,
    /// The cluster (named `kafka-cluster`).
    Cluster = 4,
    /// A transactional id.
    TransactionalId = 5,
    /// A delegation token (kept, not used by floe).
    DelegationToken = 6,
    /// A user (kept, not used by floe).
    User = 7,
}

/// How an entry's name matches resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub enum PatternType {
    /// The name itself, or every resource when it is `*`.
    Literal = 3,
    /// Every resource whose name starts with it.
    Prefixed = 4,
}

/// What a principal does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub enum Operation {
    /// Every operation.
    All = 2,
    /// Consume, join a group.
    Read = 3,
    /// Produce.
    Write = 4,
    /// Create topics.
    Create = 5,
    /// Delete topics, groups, records.
    Delete = 6,
    /// Add partitions, alter ACLs and users.
    Alter = 7,
    /// See it (metadata, offsets, groups).
    Describe = 8,
    /// Broker-to-broker actions.
    ClusterAction = 9,
    /// Read configs.
    DescribeConfigs = 10,
    /// Change configs.
    AlterConfigs = 11,
    /// Produce idempotently.
    IdempotentWrite = 12,
    /// Create delegation tokens.
    CreateTokens = 13,
    /// Describe delegation tokens.
    DescribeTokens = 14,
}

/// Whether an entry allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub enum Permission {
    /// Denies, whatever else allows.
    Deny = 2,
    /// Allows, unless something denies.
    Allow = 3,
}

macro_rules! from_code {
    ($t:ident { $($v:ident),* $(,)? }) => {
        impl $t {
            /// The value of Kafka's code, if it names one that an entry can hold.
            pub fn from_code(code: i8) -> Option<$t> {
                [$($t::$v),*].into_iter().find(|v| *v as i8 == code)
            }
        }
    };
}

from_code!(ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User
});
from_code!(PatternType { Literal, Prefixed });
from_code!(Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens
});
from_code!(Permission { Deny, Allow });

impl Operation {
    /// True when an entry for `self` covers `asked`: ALL covers every
    /// operation, and as in Kafka, READ, WRITE, DELETE and ALTER each imply
    /// DESCRIBE, and ALTER_CONFIGS implies DESCRIBE_CONFIGS (for allowing
    /// only: a deny covers only its own operation, or all).
    pub fn implies(self, asked: Operation) -> bool {
        use Operation::*;
        self == All
            || self == asked
            || (asked == Describe && matches!(self, Read | Write | Delete | Alter))
            || (asked == DescribeConfigs && self == AlterConfigs)
    }
}

/// One access control entry with its resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    /// The type of resource.
    pub resource_type: ResourceType,
    /// The name, prefix or `*`.
    pub name: String,
    /// How `name` matches.
    pub pattern: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// The client's IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl Binding {
    /// The entry a stored row holds, if its codes are ones floe knows.
    pub fn from_record(r: &AclRecord) -> Option<Binding> {
        Some(Binding {
            resource_type: ResourceType::from_code(r.resource_type)?,
            name: r.resource_name.clone(),
            pattern: PatternType::from_code(r.pattern_type)?,
            principal: r.principal.clone(),
            host: r.host.clone(),
            operation: Operation::from_code(r.operation)?,
            permission: Permission::from_code(r.permission)?,
        })
    }

    /// The row that stores it.
    pub fn record(&self) -> AclRecord {
        AclRecord {
            resource_type: self.resource_type as i8,
            resource_name: self.name.clone(),
            pattern_type: self.pattern as i8,
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation as i8,
            permission: self.permission as i8,
        }
    }

    /// True when the entry speaks of `principal` (Kafka form) at `host`.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }

    /// Why Kafka would refuse to create it, if it would.
    pub fn invalid(&self) -> Option<String> {
        if self.name.is_empty() {
            return Some("the resource name must not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Some(format!(
                "the only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if self.pattern == PatternType::Prefixed && self.name == WILDCARD {
            return Some("a PREFIXED pattern cannot be `*`: use LITERAL `*`".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "the principal `{}` is not of the form `User:name`",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("the host must be an address or `*`".into());
        }
        None
    }
}

/// The principal of an entry for everyone.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The principal floe calls `anonymous`, as Kafka writes it.
pub const ANONYMOUS_PRINCIPAL: &str = "User:ANONYMOUS";

/// A connection's principal as ACLs name it: `User:alice`, or
/// `User:ANONYMOUS` for floe's `anonymous`.
pub fn kafka_principal(principal: &str) -> String {
    if principal == crate::registry::ANONYMOUS {
        ANONYMOUS_PRINCIPAL.to_string()
    } else {
        format!("User:{principal}")
    }
}

/// The resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A topic, by name.
    Topic(&'a str),
    /// A consumer group, by id.
    Group(&'a str),
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId(&'a str),
}

impl Resource<'_> {
    /// Its type.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Resource::Topic(_) => ResourceType::Topic,
            Resource::Group(_) => ResourceType::Group,
            Resource::Cluster => ResourceType::Cluster,
            Resource::TransactionalId(_) => ResourceType::TransactionalId,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Resource::Topic(n) | Resource::Group(n) | Resource::TransactionalId(n) => n,
            Resource::Cluster => CLUSTER_NAME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_refused() {
        assert_eq!(Operation::from_code(12), Some(Operation::IdempotentWrite));
        assert_eq!(Operation::from_code(1), None); // ANY: a filter's, not an entry's
        assert_eq!(ResourceType::from_code(0), None);
        assert_eq!(Permission::from_code(3), Some(Permission::Allow));
        let b = Binding {
            resource_type: ResourceType::Topic,
            name: "orders".into(),
            pattern: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        };
        assert_eq!(Binding::from_record(&b.record()), Some(b));
    }

    #[test]
    fn allowing_implies_describe_as_in_kafka() {
        use Operation::*;
        for op in [Read, Write, Delete, Alter, All] {
            assert!(op.implies(Describe), "{op:?}");
        }
        assert!(!Create.implies(Describe));
        assert!(AlterConfigs.implies(DescribeConfigs));
        assert!(!Describe.implies(Read));
    }

    #[test]
    fn kafka_refuses_these_entries() {
        let ok = Binding {
            resource_type: ResourceType::Cluster,
            name: CLUSTER_NAME.into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Alter,
            permission: Permission::Allow,
        };
        assert_eq!(ok.invalid(), None);
        let bad = |f: fn(&mut Binding)| {
            let mut b = ok.clone();
            f(&mut b);
            b.invalid()
        };
        assert!(bad(|b| b.name = "other".into()).is_some());
        assert!(bad(|b| b.principal = "alice".into()).is_some());
        assert!(bad(|b| b.host = String::new()).is_some());
        assert!(bad(|b| {
            b.resource_type = ResourceType::Topic;
            b.pattern = PatternType::Prefixed;
            b.name = "*".into();
        })
        .is_some());
    }
}
