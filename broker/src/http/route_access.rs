//! What each HTTP route asks of the ACLs (with `--acls`), modelled on
//! Confluent Schema Registry's topic-based authorization: a subject named
//! after a topic (`<topic>-key`, `<topic>-value`: the TopicNameStrategy
//! every Kafka serializer uses by default) is governed by that topic's
//! ACLs (DESCRIBE to read it, ALTER to register, delete or configure);
//! other subjects and registry-wide settings by the cluster's. A schema
//! by id may be read by a principal that may read a subject using it
//! (a consumer needs it to deserialize). Topic admin routes take the
//! topic's ACLs; users, grants and faults the cluster's; the Iceberg
//! catalog decides per table ([`super::table_access`]).

use axum::http::Method;

use crate::acl::{Access, Operation, Resource};
use crate::Broker;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Need {
    /// An operation on the cluster.
    Cluster(Operation),
    /// An operation on a topic.
    Topic(String, Operation),
    /// An operation on a subject (its topic's, or the cluster's).
    Subject(String, Operation),
    /// Reading a schema by id: some subject using it must be readable.
    Schema(i32),
    /// Nothing up front: the handler shows only what the caller may see
    /// (listings, the catalog).
    Handler,
}

/// The topic a subject is named after, if it is (TopicNameStrategy).
pub(super) fn topic_of_subject(subject: &str) -> Option<&str> {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .filter(|t| !t.is_empty())
}

/// May `access` do `op` on `subject`?
pub(super) fn allows_subject(access: &Access, subject: &str, op: Operation) -> bool {
    match topic_of_subject(subject) {
        Some(topic) => access.allows(Resource::Topic(topic), op),
        None => access.allows(Resource::Cluster, op),
    }
}

/// Like [`allows_subject`], without auditing a refusal (for filtering).
pub(super) fn sees_subject(access: &Access, subject: &str) -> bool {
    match topic_of_subject(subject) {
        Some(topic) => access.sees(Resource::Topic(topic), Operation::Describe),
        None => access.sees(Resource::Cluster, Operation::Describe),
    }
}

/// What `method` on `path` needs.
pub(super) fn need(method: &Method, path: &str) -> Need {
    let reading = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let read_or = |op: Operation| if reading { Operation::Describe } else { op };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let owned = |s: &str| percent_decode(s);
    match parts.as_slice() {
        ["subjects"] | ["iceberg", ..] => Need::Handler,
        ["subjects", subject, ..] => {
            // POST /subjects/{s} looks a schema up; it changes nothing.
            let op = match (parts.len(), method) {
                (2, &Method::POST) => Operation::Describe,
                _ => read_or(Operation::Alter),
            };
            Need::Subject(owned(subject), op)
        }
        ["config", subject] => Need::Subject(owned(subject), read_or(Operation::Alter)),
        ["compatibility", "subjects", subject, ..] => {
            Need::Subject(owned(subject), Operation::Describe)
        }
        ["schemas", "ids", id, ..] => match id.parse() {
            Ok(id) => Need::Schema(id),
            Err(_) => Need::Cluster(Operation::Describe),
        },
        ["schemas", "types"] => Need::Handler,
        ["floe", "topics", topic, "policies"] => Need::Topic(owned(topic), Operation::Describe),
        ["admin", "topics", topic, rest @ ..] => {
            let op = match (rest, reading) {
                (_, true) => Operation::Describe,
                (["configs"], false) => Operation::AlterConfigs,
                _ => Operation::Alter,
            };
            Need::Topic(owned(topic), op)
        }
        _ => Need::Cluster(read_or(Operation::Alter)),
    }
}

/// `%xx` escapes decoded (a subject or topic in a path may hold them).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `access` has what `need` asks (refusals audited).
pub(super) fn allowed(broker: &Broker, access: &Access, need: &Need) -> bool {
    match need {
        Need::Handler => true,
        Need::Cluster(op) => access.allows(Resource::Cluster, *op),
        Need::Topic(topic, op) => access.allows(Resource::Topic(topic), *op),
        Need::Subject(subject, op) => allows_subject(access, subject, *op),
        Need::Schema(id) => {
            broker
                .registry()
                .usages(*id, true)
                .unwrap_or_default()
                .iter()
                .map(|(subject, _)| subject)
                .any(|subject| sees_subject(access, subject))
                || access.allows(Resource::Cluster, Operation::Describe)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_their_topics_and_the_rest_the_cluster() {
        use Operation::*;
        let n = |m: Method, p: &str| need(&m, p);
        assert_eq!(
            n(Method::GET, "/subjects/orders-value/versions"),
            Need::Subject("orders-value".into(), Describe)
        );
        assert_eq!(
            n(Method::POST, "/subjects/orders-value/versions"),
            Need::Subject("orders-value".into(), Alter)
        );
        assert_eq!(
            n(Method::POST, "/subjects/orders-value"),
            Need::Subject("orders-value".into(), Describe),
            "a lookup"
        );
        assert_eq!(
            n(Method::DELETE, "/subjects/orders-value"),
            Need::Subject("orders-value".into(), Alter)
        );
        assert_eq!(
            n(
                Method::POST,
                "/compatibility/subjects/orders-key/versions/latest"
            ),
            Need::Subject("orders-key".into(), Describe)
        );
        assert_eq!(n(Method::GET, "/schemas/ids/7"), Need::Schema(7));
        assert_eq!(n(Method::GET, "/subjects"), Need::Handler);
        assert_eq!(n(Method::GET, "/iceberg/v1/namespaces"), Need::Handler);
        assert_eq!(n(Method::PUT, "/config"), Need::Cluster(Alter));
        assert_eq!(n(Method::PUT, "/floe/grants/alice"), Need::Cluster(Alter));
        assert_eq!(n(Method::GET, "/floe/users"), Need::Cluster(Describe));
        assert_eq!(
            n(Method::PATCH, "/admin/topics/a%2Eb/configs"),
            Need::Topic("a.b".into(), AlterConfigs)
        );
        assert_eq!(topic_of_subject("orders-value"), Some("orders"));
        assert_eq!(topic_of_subject("com.acme.Order"), None);
        assert_eq!(topic_of_subject("-value"), None);
    }
}
