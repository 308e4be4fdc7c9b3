//! Who may read a topic's table through the catalog. Floe's tables hold
//! every field of every record, restricted ones included (the Parquet
//! files are read by the engine itself, so nothing can be cut out on the
//! way), so a principal may load a table only if it may READ the topic
//! and see every column: for each restricted field of any version of the
//! topic's key and value schemas, it holds a grant for one of the
//! purposes the field allows. floe chose this over serving a view without
//! the restricted columns: the files an engine reads would still hold
//! them. Listing shows the tables of the topics the principal may
//! describe. Without `--acls` every caller may do everything, as on the
//! Kafka listener.

use super::authentication::Caller;
use crate::acl::{Operation, Resource};
use crate::Broker;

/// True when the table of `topic` is listed for `caller`.
pub(super) fn listed(caller: &Caller, topic: &str) -> bool {
    caller
        .access
        .sees(Resource::Topic(topic), Operation::Describe)
}

/// Why `caller` may not load the table of `topic`, if it may not.
pub(super) fn refusal(b: &Broker, caller: &Caller, topic: &str) -> Option<String> {
    if caller.access.is_superuser() {
        return None;
    }
    if !caller
        .access
        .allows(Resource::Topic(topic), Operation::Read)
    {
        return Some(format!(
            "{} may not read topic {topic}",
            caller.access.principal()
        ));
    }
    let registry = b.registry();
    for subject in [format!("{topic}-key"), format!("{topic}-value")] {
        for (message, field) in registry.restricted_fields(&subject) {
            let granted = field
                .purposes
                .iter()
                .any(|p| registry.may_claim(&caller.name, p));
            if !granted {
                let resource = format!("Table:{topic}");
                crate::audit::denied(caller.access.principal(), "", &resource, "Read");
                return Some(format!(
                    "the table holds {message}.{} ({}), which only the purposes {:?} may see, and {} holds a grant for none of them",
                    field.field,
                    field.classification,
                    field.purposes,
                    caller.access.principal()
                ));
            }
        }
    }
    None
}
