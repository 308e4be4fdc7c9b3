//! What DescribeAcls and DeleteAcls select entries by: each field is a
//! value or "any", and the pattern type may be MATCH, which selects the
//! entries that apply to one resource (its literal entry, the literal `*`
//! and every prefix of its name).

use super::{Binding, Operation, PatternType, Permission, ResourceType, WILDCARD};

/// Kafka's code for "any" in a filter's type fields.
const ANY: i8 = 1;
/// Kafka's pattern type code MATCH.
const MATCH: i8 = 2;

/// How a filter's name selects patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternFilter {
    /// Entries of any pattern type with the name.
    Any,
    /// Entries that apply to the resource of the name.
    Match,
    /// Entries of this pattern type with the name.
    Exactly(PatternType),
}

/// A selection of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    resource_type: Option<ResourceType>,
    name: Option<String>,
    pattern: PatternFilter,
    principal: Option<String>,
    host: Option<String>,
    operation: Option<Operation>,
    permission: Option<Permission>,
}

impl AclFilter {
    /// The filter of a request's fields (Kafka's codes; 1 is "any"), or
    /// why it is not one.
    pub fn from_codes(
        resource_type: i8,
        name: Option<String>,
        pattern: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        fn any_or<T>(code: i8, what: &str, f: fn(i8) -> Option<T>) -> Result<Option<T>, String> {
            if code == ANY {
                return Ok(None);
            }
            f(code)
                .map(Some)
                .ok_or_else(|| format!("unknown {what} code {code}"))
        }
        let pattern = match pattern {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            code => PatternFilter::Exactly(
                PatternType::from_code(code)
                    .ok_or_else(|| format!("unknown pattern type code {code}"))?,
            ),
        };
        Ok(AclFilter {
            resource_type: any_or(resource_type, "resource type", ResourceType::from_code)?,
            name,
            pattern,
            principal,
            host,
            operation: any_or(operation, "operation", Operation::from_code)?,
            permission: any_or(permission, "permission", Permission::from_code)?,
        })
    }

    /// True when the filter selects `b`.
    pub fn matches(&self, b: &Binding) -> bool {
        fn is<T: PartialEq>(want: &Option<T>, have: T) -> bool {
            want.as_ref().is_none_or(|w| *w == have)
        }
        is(&self.resource_type, b.resource_type)
            && is(&self.operation, b.operation)
            && is(&self.permission, b.permission)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.name_matches(b)
    }

    fn name_matches(&self, b: &Binding) -> bool {
        match (self.pattern, &self.name) {
            (PatternFilter::Any | PatternFilter::Match, None) => true,
            (PatternFilter::Exactly(p), None) => b.pattern == p,
            (PatternFilter::Any, Some(n)) => b.name == *n,
            (PatternFilter::Exactly(p), Some(n)) => b.pattern == p && b.name == *n,
            (PatternFilter::Match, Some(n)) => match b.pattern {
                PatternType::Literal => b.name == *n || b.name == WILDCARD,
                PatternType::Prefixed => n.starts_with(b.name.as_str()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: PatternType) -> Binding {
        Binding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    fn filter(name: Option<&str>, pattern: i8) -> AclFilter {
        AclFilter::from_codes(1, name.map(String::from), pattern, None, None, 1, 1).unwrap()
    }

    #[test]
    fn match_selects_what_applies_to_one_resource() {
        let f = filter(Some("orders-eu"), MATCH);
        assert!(f.matches(&binding("orders-eu", PatternType::Literal)));
        assert!(f.matches(&binding("*", PatternType::Literal)));
        assert!(f.matches(&binding("orders-", PatternType::Prefixed)));
        assert!(!f.matches(&binding("orders-e", PatternType::Literal)));
        assert!(!f.matches(&binding("orders-eu-2", PatternType::Prefixed)));
    }

    #[test]
    fn literal_any_and_field_filters_select_exactly() {
        let lit = filter(Some("orders"), 3);
        assert!(lit.matches(&binding("orders", PatternType::Literal)));
        assert!(!lit.matches(&binding("orders", PatternType::Prefixed)));
        assert!(!lit.matches(&binding("*", PatternType::Literal)));
        let any = filter(Some("orders"), 1);
        assert!(any.matches(&binding("orders", PatternType::Prefixed)));
        assert!(filter(None, 1).matches(&binding("x", PatternType::Literal)));
        let bob = AclFilter::from_codes(2, None, 1, Some("User:bob".into()), None, 1, 1).unwrap();
        assert!(!bob.matches(&binding("orders", PatternType::Literal)));
        let deny = AclFilter::from_codes(1, None, 1, None, None, 1, 2).unwrap();
        assert!(!deny.matches(&binding("orders", PatternType::Literal)));
        assert!(AclFilter::from_codes(9, None, 1, None, None, 1, 1).is_err());
        assert!(AclFilter::from_codes(1, None, 0, None, None, 1, 1).is_err());
    }
}
