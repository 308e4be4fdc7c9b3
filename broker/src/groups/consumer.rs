//! Consumer groups of the new protocol (KIP-848, `group.protocol=consumer`).
//!
//! Members only heartbeat (ConsumerGroupHeartbeat); the coordinator owns
//! the assignment. Every change of membership or subscription bumps the
//! group epoch; the target assignment is recomputed by a server-side
//! assignor (`uniform` or `range`); each member then converges to its target
//! on its own heartbeats: partitions it must give up are revoked first (its
//! member epoch stays put until it reports them released), and partitions
//! still owned by another member are handed over only once that member has
//! released them. A member that converged gets the assignment epoch as its
//! member epoch.
//!
//! Every change of a group (epochs, members, targets, assignments) is handed
//! to the [`GroupSaver`]; a restarted coordinator reloads the groups and
//! members carry on with the epochs they hold. Heartbeats that change
//! nothing write nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floe_storage::meta::{
    ConsumerProtocolGroupRecord, ConsumerProtocolMemberRecord, MemberPartitions,
};
use tracing::info;

use crate::groups::lock;
use crate::groups::saver::{GroupSaver, SavedGroup};
use crate::kafka::errors::code;

/// The member epoch of a static member that left and may come back.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Heartbeat interval members are told to use.
pub const HEARTBEAT_INTERVAL_MS: i32 = 1_000;
/// Kafka's group.consumer.session.timeout.ms.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// (topic id, partitions).
pub type TopicAssignment = BTreeMap<uuid::Uuid, BTreeSet<i32>>;

/// A member of a consumer-protocol group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id.
    pub id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Current member epoch.
    pub epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Subscribed regular expression (RE2 syntax, whole-name match).
    pub regex: Option<String>,
    /// The topics the member reads: its names plus existing topics its
    /// expression matches, as of its last heartbeat.
    pub topics: BTreeSet<String>,
    /// Requested server assignor.
    pub assignor: Option<String>,
    /// What the member has been given.
    pub assigned: TopicAssignment,
    /// What the member last said it owns.
    pub owned: TopicAssignment,
    last_seen: Instant,
    last_sent: Option<TopicAssignment>,
    compiled: Option<regex::Regex>,
}

/// Compiles a subscription expression the way Kafka matches it: against
/// the whole topic name.
fn compile_subscription(expr: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{expr})$"))
}

impl ConsumerMember {
    /// Re-resolves the member's topics against the catalog; true if they
    /// changed.
    fn resolve_topics(&mut self, catalog: &TopicCatalog) -> bool {
        let mut topics: BTreeSet<String> = self.subscribed.iter().cloned().collect();
        if let Some(re) = &self.compiled {
            topics.extend(catalog.keys().filter(|t| re.is_match(t)).cloned());
        }
        let changed = topics != self.topics;
        self.topics = topics;
        changed
    }
}

/// A consumer-protocol group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Group id.
    pub id: String,
    /// Bumped on every membership or subscription change.
    pub epoch: i32,
    /// Epoch of the current target assignment.
    pub assignment_epoch: i32,
    /// Assignor in use.
    pub assignor: String,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member.
    pub target: HashMap<String, TopicAssignment>,
    /// What was last handed to the saver.
    saved: Option<ConsumerProtocolGroupRecord>,
}

fn to_pairs(a: &TopicAssignment) -> MemberPartitions {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

fn from_pairs(pairs: &MemberPartitions) -> TopicAssignment {
    let mut a = TopicAssignment::new();
    for (t, p) in pairs {
        a.entry(*t).or_default().insert(*p);
    }
    a
}

impl ConsumerGroup {
    /// The group as the metadata store keeps it.
    fn record(&self) -> ConsumerProtocolGroupRecord {
        ConsumerProtocolGroupRecord {
            group_id: self.id.clone(),
            group_epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| ConsumerProtocolMemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    subscribed_regex: m.regex.clone(),
                    assignor: m.assignor.clone(),
                    assigned: to_pairs(&m.assigned),
                    owned: to_pairs(&m.owned),
                    target: self.target.get(&m.id).map(to_pairs).unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// A group reloaded from the metadata store; sessions start now.
    fn from_record(r: ConsumerProtocolGroupRecord, now: Instant) -> ConsumerGroup {
        let mut g = ConsumerGroup {
            id: r.group_id.clone(),
            epoch: r.group_epoch,
            assignment_epoch: r.assignment_epoch,
            assignor: r.assignor.clone(),
            ..Default::default()
        };
        for m in &r.members {
            g.target.insert(m.member_id.clone(), from_pairs(&m.target));
            g.members.insert(
                m.member_id.clone(),
                ConsumerMember {
                    id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.clone(),
                    regex: m.subscribed_regex.clone(),
                    topics: BTreeSet::new(),
                    assignor: m.assignor.clone(),
                    assigned: from_pairs(&m.assigned),
                    owned: from_pairs(&m.owned),
                    last_seen: now,
                    // The member's view is unknown: send the assignment again.
                    last_sent: None,
                    compiled: m
                        .subscribed_regex
                        .as_deref()
                        .and_then(|e| compile_subscription(e).ok()),
                },
            );
        }
        g.saved = Some(r);
        g
    }

    /// Kafka's state name.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch && m.epoch != STATIC_LEAVE_EPOCH)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }
}

/// One heartbeat, parsed.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Group id.
    pub group_id: String,
    /// Member id (generated by the client from v1, by us for v0).
    pub member_id: String,
    /// Member epoch: 0 to join, -1 to leave, -2 static leave.
    pub member_epoch: i32,
    /// Static id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Subscription, None when unchanged.
    pub subscribed: Option<Vec<String>>,
    /// Subscribed regular expression, None when unchanged, empty to clear.
    pub subscribed_regex: Option<String>,
    /// Assignor, None when unchanged.
    pub assignor: Option<String>,
    /// Owned partitions, None when unchanged.
    pub owned: Option<TopicAssignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// Error code.
    pub error: i16,
    /// Error message.
    pub message: Option<String>,
    /// Member id.
    pub member_id: String,
    /// New member epoch.
    pub member_epoch: i32,
    /// Assignment, when it changed.
    pub assignment: Option<TopicAssignment>,
}

impl HeartbeatReply {
    fn error(error: i16, message: &str, member_id: &str) -> Self {
        HeartbeatReply {
            error,
            message: Some(message.into()),
            member_id: member_id.into(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

/// Topic metadata the assignor needs: name → (id, partition count).
pub type TopicCatalog = HashMap<String, (uuid::Uuid, i32)>;

/// Coordinator of consumer-protocol groups.
pub struct ConsumerGroups {
    groups: Mutex<HashMap<String, ConsumerGroup>>,
    saver: Arc<GroupSaver>,
}

impl ConsumerGroups {
    /// No groups: the seat's while this broker does not coordinate.
    pub fn idle(saver: Arc<GroupSaver>) -> Arc<Self> {
        Arc::new(ConsumerGroups {
            groups: Mutex::new(HashMap::new()),
            saver,
        })
    }

    /// Loads the saved groups, resolving subscriptions against the topics
    /// that exist now.
    pub async fn open(
        saver: Arc<GroupSaver>,
        catalog: &TopicCatalog,
    ) -> floe_storage::Result<Arc<Self>> {
        let now = Instant::now();
        let groups = saver
            .meta()
            .load_consumer_protocol_groups()
            .await?
            .into_iter()
            .map(|r| {
                let mut g = ConsumerGroup::from_record(r, now);
                for m in g.members.values_mut() {
                    m.resolve_topics(catalog);
                }
                (g.id.clone(), g)
            })
            .collect();
        Ok(Arc::new(ConsumerGroups {
            groups: Mutex::new(groups),
            saver,
        }))
    }

    /// Hands the group to the saver if it changed since the last save.
    fn save_if_changed(&self, g: &mut ConsumerGroup) {
        let record = g.record();
        if g.saved.as_ref() != Some(&record) {
            g.saved = Some(record.clone());
            self.saver.save(SavedGroup::ConsumerProtocol(record));
        }
    }

    /// True if the group exists with members (so the classic protocol may
    /// not use the id).
    pub fn is_active(&self, group_id: &str) -> bool {
        lock(&self.groups)
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// A snapshot of a group.
    pub fn get(&self, group_id: &str) -> Option<ConsumerGroup> {
        lock(&self.groups).get(group_id).cloned()
    }

    /// True when a member of the group reads `topic`.
    pub fn subscribed_to(&self, group_id: &str, topic: &str) -> bool {
        lock(&self.groups)
            .get(group_id)
            .is_some_and(|g| g.members.values().any(|m| m.topics.contains(topic)))
    }

    /// Snapshots of every group.
    pub fn all(&self) -> Vec<ConsumerGroup> {
        lock(&self.groups).values().cloned().collect()
    }

    /// Removes an empty group from memory (the caller deletes it from the
    /// metadata store); false if it has members.
    pub fn remove_if_empty(&self, group_id: &str) -> bool {
        let mut groups = lock(&self.groups);
        match groups.get(group_id) {
            Some(g) if !g.members.is_empty() => false,
            _ => {
                groups.remove(group_id);
                true
            }
        }
    }

    /// Checks an OffsetCommit from a member of a consumer-protocol group:
    /// None when the group is not one of ours.
    pub fn check_commit(&self, group_id: &str, member_id: &str, epoch: i32) -> Option<Option<i16>> {
        let groups = lock(&self.groups);
        let g = groups.get(group_id)?;
        if g.members.is_empty() && member_id.is_empty() {
            return Some(None);
        }
        let Some(m) = g.members.get(member_id) else {
            return Some(Some(code::UNKNOWN_MEMBER_ID));
        };
        Some(match epoch.cmp(&m.epoch) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => Some(code::STALE_MEMBER_EPOCH),
            std::cmp::Ordering::Greater => Some(code::FENCED_MEMBER_EPOCH),
        })
    }

    /// Handles one heartbeat.
    pub fn heartbeat(&self, hb: Heartbeat, catalog: &TopicCatalog) -> HeartbeatReply {
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(hb.group_id.clone())
            .or_insert_with(|| ConsumerGroup {
                id: hb.group_id.clone(),
                assignor: "uniform".into(),
                ..Default::default()
            });
        let reply = apply_heartbeat(g, hb, catalog);
        self.save_if_changed(g);
        reply
    }

    /// Removes members whose session expired.
    pub fn expire(&self) {
        let mut groups = lock(&self.groups);
        let now = Instant::now();
        for g in groups.values_mut() {
            let dead: Vec<String> = g
                .members
                .values()
                .filter(|m| now.duration_since(m.last_seen) > SESSION_TIMEOUT)
                .map(|m| m.id.clone())
                .collect();
            if dead.is_empty() {
                continue;
            }
            for d in dead {
                g.members.remove(&d);
                g.target.remove(&d);
                g.epoch += 1;
                info!(group = %g.id, member = %d, "session timeout (consumer protocol)");
            }
            self.save_if_changed(g);
        }
    }
}

/// Applies one heartbeat to its group.
fn apply_heartbeat(g: &mut ConsumerGroup, hb: Heartbeat, catalog: &TopicCatalog) -> HeartbeatReply {
    let now = Instant::now();
    let mut member_id = hb.member_id.clone();

    if hb.member_epoch == -1 || hb.member_epoch == STATIC_LEAVE_EPOCH {
        let is_static = g
            .members
            .get(&member_id)
            .is_some_and(|m| m.instance_id.is_some());
        if hb.member_epoch == STATIC_LEAVE_EPOCH && is_static {
            // A static member that leaves keeps its partitions for its
            // session timeout: if it comes back under the same instance id,
            // nobody else is disturbed.
            if let Some(m) = g.members.get_mut(&member_id) {
                m.epoch = STATIC_LEAVE_EPOCH;
                m.last_seen = now;
                m.owned.clear();
                info!(group = %g.id, member = %member_id, "static member left, partitions kept (consumer protocol)");
            }
        } else if g.members.remove(&member_id).is_some() {
            g.target.remove(&member_id);
            g.epoch += 1;
            info!(group = %g.id, member = %member_id, "member left (consumer protocol)");
        }
        return HeartbeatReply {
            error: code::NONE,
            message: None,
            member_id,
            member_epoch: hb.member_epoch,
            assignment: None,
        };
    }
    let mut joined = false;
    if hb.member_epoch == 0 {
        if member_id.is_empty() {
            member_id = uuid::Uuid::new_v4().simple().to_string();
        }
        // A static member that left comes back as its previous incarnation,
        // with its partitions; one still active keeps its instance id.
        let mut previous = None;
        if let Some(iid) = &hb.instance_id {
            let old = g
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(iid) && m.id != member_id)
                .map(|m| (m.id.clone(), m.epoch));
            match old {
                Some((_, epoch)) if epoch != STATIC_LEAVE_EPOCH => {
                    return HeartbeatReply::error(
                        code::UNRELEASED_INSTANCE_ID,
                        &format!("instance id {iid} is in use by an active member"),
                        &member_id,
                    );
                }
                Some((old_id, _)) => {
                    previous = g.members.remove(&old_id);
                    if let Some(t) = g.target.remove(&old_id) {
                        g.target.insert(member_id.clone(), t);
                    }
                }
                None => {}
            }
        }
        if hb.subscribed.is_none() && hb.subscribed_regex.is_none() && previous.is_none() {
            return HeartbeatReply::error(
                code::INVALID_REQUEST,
                "a joining member must send its subscription",
                &member_id,
            );
        }
        if let Some(a) = &hb.assignor {
            if a != "uniform" && a != "range" {
                return HeartbeatReply::error(
                    code::UNSUPPORTED_ASSIGNOR,
                    "assignors: uniform, range",
                    &member_id,
                );
            }
        }
        if let Some(mut m) = previous {
            info!(group = %g.id, member = %member_id, previous = %m.id, "static member rejoined (consumer protocol)");
            m.id = member_id.clone();
            m.epoch = 0;
            m.client_id = hb.client_id.clone();
            m.client_host = hb.client_host.clone();
            m.last_sent = None;
            g.members.insert(member_id.clone(), m);
        } else {
            g.members.insert(
                member_id.clone(),
                ConsumerMember {
                    id: member_id.clone(),
                    instance_id: hb.instance_id.clone(),
                    rack_id: hb.rack_id.clone(),
                    epoch: 0,
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    subscribed: Vec::new(),
                    regex: None,
                    topics: BTreeSet::new(),
                    assignor: hb.assignor.clone(),
                    assigned: TopicAssignment::new(),
                    owned: TopicAssignment::new(),
                    last_seen: now,
                    last_sent: None,
                    compiled: None,
                },
            );
            joined = true;
            info!(group = %g.id, member = %member_id, "member joined (consumer protocol)");
        }
    } else {
        let Some(m) = g.members.get(&member_id) else {
            return HeartbeatReply::error(code::UNKNOWN_MEMBER_ID, "unknown member", &member_id);
        };
        if hb.member_epoch != m.epoch {
            return HeartbeatReply::error(
                code::FENCED_MEMBER_EPOCH,
                "member epoch is not current",
                &member_id,
            );
        }
    }

    let mut bump = joined;
    if let Some(m) = g.members.get_mut(&member_id) {
        m.last_seen = now;
        if let Some(sub) = &hb.subscribed {
            m.subscribed = sub.clone();
        }
        if let Some(expr) = &hb.subscribed_regex {
            if expr.is_empty() {
                (m.regex, m.compiled) = (None, None);
            } else if m.regex.as_ref() != Some(expr) {
                match compile_subscription(expr) {
                    Ok(re) => (m.regex, m.compiled) = (Some(expr.clone()), Some(re)),
                    Err(e) => {
                        let message = format!("invalid regular expression {expr:?}: {e}");
                        if m.epoch == 0 {
                            g.members.remove(&member_id);
                        }
                        return HeartbeatReply::error(
                            code::INVALID_REGULAR_EXPRESSION,
                            &message,
                            &member_id,
                        );
                    }
                }
            }
        }
        if let Some(a) = &hb.assignor {
            m.assignor = Some(a.clone());
        }
        if let Some(owned) = &hb.owned {
            m.owned = owned.clone();
        }
    }
    // Subscriptions are re-resolved on every heartbeat, so a new topic that
    // matches a member's expression is assigned without the member asking.
    for m in g.members.values_mut() {
        bump |= m.resolve_topics(catalog);
    }
    if bump {
        g.epoch += 1;
    }
    if g.assignment_epoch < g.epoch {
        g.assignor = g
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| "uniform".into());
        g.target = compute_target(g, catalog);
        g.assignment_epoch = g.epoch;
    }
    reconcile(g, &member_id)
}

/// Brings one member toward its target: revoke first, then take what others
/// have released.
fn reconcile(g: &mut ConsumerGroup, member_id: &str) -> HeartbeatReply {
    let target = g.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others: BTreeSet<(uuid::Uuid, i32)> = g
        .members
        .values()
        .filter(|m| m.id != member_id)
        .flat_map(|m| {
            m.assigned
                .iter()
                .chain(m.owned.iter())
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        })
        .collect();
    let assignment_epoch = g.assignment_epoch;
    let Some(m) = g.members.get_mut(member_id) else {
        return HeartbeatReply::error(code::UNKNOWN_MEMBER_ID, "unknown member", member_id);
    };
    let keep: TopicAssignment = m
        .assigned
        .iter()
        .map(|(t, ps)| {
            (
                *t,
                ps.iter()
                    .filter(|p| target.get(t).is_some_and(|tp| tp.contains(p)))
                    .copied()
                    .collect::<BTreeSet<_>>(),
            )
        })
        .filter(|(_, ps)| !ps.is_empty())
        .collect();
    let must_revoke = keep != m.assigned;
    let owned_more_than_kept = m.owned.iter().any(|(t, ps)| {
        ps.iter()
            .any(|p| !keep.get(t).is_some_and(|k| k.contains(p)))
    });
    if must_revoke || owned_more_than_kept {
        // Revoke first; the member epoch moves on once it reports the
        // partitions released.
        m.assigned = keep;
    } else {
        let mut next = keep;
        for (t, ps) in &target {
            for p in ps {
                if !held_by_others.contains(&(*t, *p)) {
                    next.entry(*t).or_default().insert(*p);
                }
            }
        }
        m.assigned = next;
        m.epoch = assignment_epoch;
    }
    let send = m.last_sent.as_ref() != Some(&m.assigned);
    if send {
        m.last_sent = Some(m.assigned.clone());
    }
    HeartbeatReply {
        error: code::NONE,
        message: None,
        member_id: m.id.clone(),
        member_epoch: m.epoch,
        assignment: send.then(|| m.assigned.clone()),
    }
}

/// The target assignment: `range` gives each member contiguous partitions of
/// each topic; `uniform` spreads every subscribed partition round-robin.
fn compute_target(g: &ConsumerGroup, catalog: &TopicCatalog) -> HashMap<String, TopicAssignment> {
    let mut target: HashMap<String, TopicAssignment> = g
        .members
        .keys()
        .map(|m| (m.clone(), TopicAssignment::new()))
        .collect();
    let topics: BTreeSet<&String> = g.members.values().flat_map(|m| m.topics.iter()).collect();
    let mut cursor = 0usize;
    for topic in topics {
        let Some((id, count)) = catalog.get(topic) else {
            continue;
        };
        let subscribers: Vec<&String> = g
            .members
            .values()
            .filter(|m| m.topics.contains(topic))
            .map(|m| &m.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len();
        for p in 0..*count {
            let owner = if g.assignor == "range" {
                let per = (*count as usize).div_ceil(n);
                subscribers[(p as usize / per.max(1)).min(n - 1)]
            } else {
                let o = subscribers[cursor % n];
                cursor += 1;
                o
            };
            target
                .entry(owner.clone())
                .or_default()
                .entry(*id)
                .or_default()
                .insert(p);
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::saver::seated;
    use floe_storage::meta::sql::SqlStore;

    fn hb(member: &str, epoch: i32, owned: Option<TopicAssignment>) -> Heartbeat {
        Heartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            subscribed_regex: None,
            assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "h".into(),
        }
    }

    fn count(a: &Option<TopicAssignment>) -> usize {
        a.as_ref()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .unwrap_or(0)
    }

    async fn coordinator(meta: Arc<SqlStore>, catalog: &TopicCatalog) -> Arc<ConsumerGroups> {
        ConsumerGroups::open(seated(meta).await, catalog)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn second_member_gets_partitions_only_after_the_first_releases_them() {
        let id = uuid::Uuid::new_v4();
        let catalog: TopicCatalog = [("t".to_string(), (id, 4))].into();
        let c = coordinator(
            Arc::new(SqlStore::sqlite_in_memory().await.unwrap()),
            &catalog,
        )
        .await;
        let a = c.heartbeat(hb("a", 0, None), &catalog);
        assert_eq!((a.member_epoch, count(&a.assignment)), (1, 4));
        let b = c.heartbeat(hb("b", 0, None), &catalog);
        assert_eq!(count(&b.assignment), 0, "a still holds everything");
        let all: TopicAssignment = a.assignment.clone().unwrap();
        let a2 = c.heartbeat(hb("a", 1, Some(all)), &catalog);
        assert_eq!(count(&a2.assignment), 2, "a is told to revoke two");
        assert_eq!(a2.member_epoch, 1, "epoch waits for the revocation");
        let a3 = c.heartbeat(hb("a", 1, a2.assignment.clone()), &catalog);
        assert_eq!(a3.member_epoch, 2);
        let b2 = c.heartbeat(
            hb("b", b.member_epoch, Some(TopicAssignment::new())),
            &catalog,
        );
        assert_eq!((count(&b2.assignment), b2.member_epoch), (2, 2));
        assert_eq!(c.get("g").unwrap().state(), "Stable");
        let stale = c.heartbeat(hb("a", 1, None), &catalog);
        assert_eq!(stale.error, code::FENCED_MEMBER_EPOCH);
    }

    #[tokio::test]
    async fn a_reloaded_coordinator_keeps_epochs_and_assignments() {
        let meta = Arc::new(SqlStore::sqlite_in_memory().await.unwrap());
        let id = uuid::Uuid::new_v4();
        let catalog: TopicCatalog = [("t".to_string(), (id, 4))].into();
        let c = coordinator(meta.clone(), &catalog).await;
        let a = c.heartbeat(hb("a", 0, None), &catalog);
        let b = c.heartbeat(hb("b", 0, None), &catalog);
        let a2 = c.heartbeat(hb("a", 1, a.assignment.clone()), &catalog);
        c.heartbeat(hb("a", 1, a2.assignment.clone()), &catalog);
        c.heartbeat(
            hb("b", b.member_epoch, Some(TopicAssignment::new())),
            &catalog,
        );
        let before = c.get("g").unwrap();
        assert_eq!(before.state(), "Stable");
        c.saver.flush().await;

        let reloaded = coordinator(meta, &catalog).await;
        let after = reloaded.get("g").unwrap();
        assert_eq!(after.record(), before.record());
        assert_eq!(after.state(), "Stable");
        // The member carries on with its epoch and is sent its assignment.
        let m = &after.members["a"];
        let again = reloaded.heartbeat(hb("a", m.epoch, None), &catalog);
        assert_eq!(again.error, code::NONE);
        assert_eq!(again.assignment.as_ref(), Some(&m.assigned));
        assert_eq!(
            reloaded.get("g").unwrap().epoch,
            before.epoch,
            "no rebalance"
        );
    }

    #[tokio::test]
    async fn a_regex_subscription_follows_new_topics() {
        let a_id = uuid::Uuid::new_v4();
        let mut catalog: TopicCatalog = [
            ("kre-a".to_string(), (a_id, 2)),
            ("other".to_string(), (uuid::Uuid::new_v4(), 1)),
        ]
        .into();
        let c = coordinator(
            Arc::new(SqlStore::sqlite_in_memory().await.unwrap()),
            &catalog,
        )
        .await;
        let join = Heartbeat {
            subscribed: None,
            subscribed_regex: Some("(^kre-.*)".into()),
            ..hb("m", 0, None)
        };
        let r = c.heartbeat(join, &catalog);
        assert_eq!((r.error, count(&r.assignment)), (code::NONE, 2));
        let b_id = uuid::Uuid::new_v4();
        catalog.insert("kre-b".into(), (b_id, 1));
        let r2 = c.heartbeat(hb("m", r.member_epoch, r.assignment.clone()), &catalog);
        assert_eq!(count(&r2.assignment), 3, "the new topic is assigned");
        assert!(r2.assignment.unwrap().contains_key(&b_id));

        let bad = Heartbeat {
            subscribed: None,
            subscribed_regex: Some("(".into()),
            ..hb("n", 0, None)
        };
        assert_eq!(
            c.heartbeat(bad, &catalog).error,
            code::INVALID_REGULAR_EXPRESSION
        );
        assert_eq!(c.get("g").unwrap().members.len(), 1);
    }

    #[tokio::test]
    async fn a_static_member_comes_back_to_its_partitions_without_a_rebalance() {
        let id = uuid::Uuid::new_v4();
        let catalog: TopicCatalog = [("t".to_string(), (id, 4))].into();
        let c = coordinator(
            Arc::new(SqlStore::sqlite_in_memory().await.unwrap()),
            &catalog,
        )
        .await;
        let with_instance = |member: &str, epoch: i32, owned| Heartbeat {
            instance_id: Some(format!("i-{member}")),
            ..hb(member, epoch, owned)
        };
        let a = c.heartbeat(with_instance("a", 0, None), &catalog);
        let b = c.heartbeat(with_instance("b", 0, None), &catalog);
        let a2 = c.heartbeat(with_instance("a", 1, a.assignment.clone()), &catalog);
        c.heartbeat(with_instance("a", 1, a2.assignment.clone()), &catalog);
        let b2 = c.heartbeat(
            with_instance("b", b.member_epoch, Some(TopicAssignment::new())),
            &catalog,
        );
        let group_epoch = c.get("g").unwrap().epoch;

        let left = c.heartbeat(with_instance("b", STATIC_LEAVE_EPOCH, None), &catalog);
        assert_eq!(left.error, code::NONE);
        assert_eq!(
            c.get("g").unwrap().epoch,
            group_epoch,
            "leaving does not rebalance"
        );
        let taken = c.heartbeat(
            Heartbeat {
                member_id: "a-imposter".into(),
                ..with_instance("a", 0, None)
            },
            &catalog,
        );
        assert_eq!(
            taken.error,
            code::UNRELEASED_INSTANCE_ID,
            "a's id is still active"
        );

        let back = c.heartbeat(
            Heartbeat {
                member_id: "b-again".into(),
                ..with_instance("b", 0, None)
            },
            &catalog,
        );
        assert_eq!(back.error, code::NONE);
        assert_eq!(back.assignment, b2.assignment, "same partitions");
        let g = c.get("g").unwrap();
        assert_eq!(g.epoch, group_epoch, "no rebalance");
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.state(), "Stable");
    }
}
