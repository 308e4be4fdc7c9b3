//! Consumer groups: the coordinator of the classic protocol (here), the
//! KIP-848 one ([`consumer`]), and the saving of both to the metadata
//! store ([`saver`]).
//!
//! The classic protocol's coordinator:
//!
//! Kafka's state machine: Empty → PreparingRebalance (members (re)join) →
//! CompletingRebalance (the leader computes assignments) → Stable (SyncGroup
//! handed them out) → back to PreparingRebalance when a member joins,
//! leaves or misses its session timeout. Dead after DeleteGroups.
//!
//! Assignments are computed by the clients (range, roundrobin,
//! cooperative-sticky): the coordinator picks a protocol all members
//! support, sends the leader everyone's subscriptions, and relays the
//! leader's assignments. After every completed rebalance the group (members,
//! subscriptions, assignments, generation) is saved in the metadata store; a
//! restarted broker reloads it, so members carry on with their generation.
//! Committed offsets go straight to the metadata store.

pub mod consumer;
pub mod saver;
pub mod seat;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_storage::error::StorageError;
use floe_storage::meta::{GroupMemberRecord, GroupRecord};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::groups::saver::{GroupSaver, SavedGroup};
use crate::kafka::errors::code;

/// Kafka's group.min.session.timeout.ms.
pub const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
/// Kafka's group.max.session.timeout.ms.
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;

/// A group's state, named as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignments.
    CompletingRebalance,
    /// Everyone has an assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    fn parse(s: &str) -> GroupState {
        match s {
            "PreparingRebalance" => GroupState::PreparingRebalance,
            "CompletingRebalance" => GroupState::CompletingRebalance,
            "Stable" => GroupState::Stable,
            "Dead" => GroupState::Dead,
            _ => GroupState::Empty,
        }
    }
}

/// What a JoinGroup waiter receives.
#[derive(Debug, Clone)]
pub struct JoinResult {
    /// Error code.
    pub error: i16,
    /// New generation.
    pub generation: i32,
    /// Chosen protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Everyone's subscription, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    /// A failed join.
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinResult {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup waiter receives.
#[derive(Debug, Clone)]
pub struct SyncResult {
    /// Error code.
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: i16) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    join_tx: Option<oneshot::Sender<JoinResult>>,
    sync_tx: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn subscription(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// Members in join order.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending: HashMap<String, Instant>,
    /// When the current rebalance must complete even without everyone.
    deadline: Option<Instant>,
    /// The rebalance started from Empty: wait out the initial delay even
    /// when every member is there, so a fleet starting together lands in one
    /// rebalance (Kafka's group.initial.rebalance.delay.ms).
    initial: bool,
}

impl Group {
    fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            deadline: None,
            initial: false,
        }
    }

    fn member(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Kafka's member check for heartbeats, syncs and commits: a request
    /// naming a static id must come from the member that holds it now
    /// (FENCED_INSTANCE_ID when another member took it over, KIP-345);
    /// otherwise the member id must be known.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        match instance_id {
            Some(iid) => match self
                .members
                .iter()
                .find(|m| m.instance_id.as_deref() == Some(iid))
            {
                None => Err(code::UNKNOWN_MEMBER_ID),
                Some(m) if m.id != member_id => Err(code::FENCED_INSTANCE_ID),
                Some(_) => Ok(()),
            },
            None if self.members.iter().any(|m| m.id == member_id) => Ok(()),
            None => Err(code::UNKNOWN_MEMBER_ID),
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn record(&self) -> GroupRecord {
        GroupRecord {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            generation_id: self.generation,
            leader_id: self.leader.clone(),
            state: self.state.name().to_string(),
            members: self
                .members
                .iter()
                .map(|m| GroupMemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    subscription: m.subscription(self.protocol_name.as_deref()).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Moves to PreparingRebalance; members must rejoin.
    fn prepare_rebalance(&mut self, initial_delay: Duration) {
        let delay = if self.state == GroupState::Empty {
            initial_delay.min(self.max_rebalance_timeout())
        } else {
            self.max_rebalance_timeout()
        };
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                if let Some(tx) = m.sync_tx.take() {
                    let _ = tx.send(SyncResult::error(code::REBALANCE_IN_PROGRESS));
                }
            }
        }
        self.initial = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.deadline = Some(Instant::now() + delay);
    }

    /// Completes the join phase if everyone rejoined, or the deadline
    /// passed. Returns true when the group changed and should be saved.
    fn maybe_complete_join(&mut self) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.iter().all(|m| m.join_tx.is_some());
        let deadline_passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        if !(deadline_passed || (all_joined && !self.initial)) {
            return false;
        }
        // Members that did not rejoin in time are dropped.
        self.members.retain(|m| m.join_tx.is_some());
        self.generation += 1;
        self.deadline = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name = None;
            return true;
        }
        self.protocol_name = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.iter().any(|m| &m.id == l))
        {
            self.leader = Some(self.members[0].id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.subscription(self.protocol_name.as_deref()),
                )
            })
            .collect();
        for m in &mut self.members {
            m.assignment = Bytes::new();
            m.last_seen = Instant::now();
            if let Some(tx) = m.join_tx.take() {
                let _ = tx.send(JoinResult {
                    error: code::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        info!(group = %self.id, generation = self.generation, members = self.members.len(),
              protocol = ?self.protocol_name, "rebalance: join phase complete");
        true
    }

    /// The protocol every member supports that most members list first.
    fn choose_protocol(&self) -> Option<String> {
        let supported_by_all = |name: &String| {
            self.members
                .iter()
                .all(|m| m.protocols.iter().any(|(p, _)| p == name))
        };
        // Candidates in the first member's order; each member votes for the
        // first candidate it lists; ties go to the earlier candidate.
        let candidates: Vec<&String> = self
            .members
            .first()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| supported_by_all(n))
            .collect();
        let votes = |c: &String| {
            self.members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(p, _)| p)
                        .find(|p| candidates.contains(p))
                        == Some(c)
                })
                .count()
        };
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let v = votes(c);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((c, v));
            }
        }
        best.map(|(c, _)| c.clone())
    }
}

/// Parameters of a JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id.
    pub group_id: String,
    /// Member id, empty on first join.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (name, metadata) in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ requires a member id round trip (KIP-394).
    pub require_known_member_id: bool,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscription for the chosen protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: GroupState,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol_name: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// The coordinator of every group (this broker coordinates them all).
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    saver: Arc<GroupSaver>,
    initial_delay: Duration,
}

/// Locks, ignoring poisoning: state behind these mutexes is updated in
/// single steps, so a panicked holder leaves nothing half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Coordinator {
    /// A coordinator of no groups: the seat's while this broker does not
    /// coordinate (a coordinator holding groups it does not own would
    /// expire their members and save that over the owner's state).
    pub fn idle(saver: Arc<GroupSaver>, initial_delay: Duration) -> Arc<Self> {
        Arc::new(Coordinator {
            groups: Mutex::new(HashMap::new()),
            saver,
            initial_delay,
        })
    }

    /// Loads saved groups and starts the session-expiry timer.
    pub async fn open(
        saver: Arc<GroupSaver>,
        initial_delay: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let mut groups = HashMap::new();
        let now = Instant::now();
        for r in saver.meta().load_groups().await? {
            let mut g = Group::new(&r.group_id);
            g.generation = r.generation_id;
            g.protocol_type = r.protocol_type.clone();
            g.protocol_name = r.protocol_name.clone();
            g.leader = r.leader_id.clone();
            g.state = GroupState::parse(&r.state);
            g.members = r
                .members
                .iter()
                .map(|m| Member {
                    id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(
                        r.protocol_name.clone().unwrap_or_default(),
                        Bytes::from(m.subscription.clone()),
                    )],
                    assignment: Bytes::from(m.assignment.clone()),
                    last_seen: now,
                    join_tx: None,
                    sync_tx: None,
                })
                .collect();
            // A rebalance that was under way when the broker stopped starts over.
            if matches!(
                g.state,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance
            ) {
                g.prepare_rebalance(initial_delay);
            }
            groups.insert(r.group_id.clone(), g);
        }
        let c = Arc::new(Coordinator {
            groups: Mutex::new(groups),
            saver,
            initial_delay,
        });
        tokio::spawn(run_timer(Arc::downgrade(&c)));
        Ok(c)
    }

    fn save(&self, g: &Group) {
        self.saver.save(SavedGroup::Classic(g.record()));
    }

    /// JoinGroup. The returned receiver resolves when the join phase ends.
    pub fn join(&self, req: JoinRequest) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let reply = |r: JoinResult| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(r);
            rx
        };
        if req.group_id.is_empty() {
            return reply(JoinResult::error(code::INVALID_GROUP_ID, &req.member_id));
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&req.session_timeout_ms) {
            return reply(JoinResult::error(
                code::INVALID_SESSION_TIMEOUT,
                &req.member_id,
            ));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return reply(JoinResult::error(
                code::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        if g.state == GroupState::Dead {
            return reply(JoinResult::error(
                code::COORDINATOR_NOT_AVAILABLE,
                &req.member_id,
            ));
        }
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shares = g.members.iter().all(|m| {
                m.protocols
                    .iter()
                    .any(|(p, _)| req.protocols.iter().any(|(q, _)| q == p))
            });
            if !same_type || !shares {
                return reply(JoinResult::error(
                    code::INCONSISTENT_GROUP_PROTOCOL,
                    &req.member_id,
                ));
            }
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            // Static member rejoining with a fresh member id (KIP-345).
            let existing = req.instance_id.as_ref().and_then(|iid| {
                g.members
                    .iter()
                    .position(|m| m.instance_id.as_ref() == Some(iid))
            });
            member_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if let Some(i) = existing {
                let old = std::mem::replace(&mut g.members[i].id, member_id.clone());
                // The member it replaces may be waiting for its join or
                // sync: it is fenced, as in Kafka.
                if let Some(tx) = g.members[i].join_tx.take() {
                    let _ = tx.send(JoinResult::error(code::FENCED_INSTANCE_ID, &old));
                }
                if let Some(tx) = g.members[i].sync_tx.take() {
                    let _ = tx.send(SyncResult::error(code::FENCED_INSTANCE_ID));
                }
                info!(group = %g.id, old = %old, new = %member_id, "a static member took over its instance id: the old member is fenced");
                if g.leader.as_ref() == Some(&old) {
                    g.leader = Some(member_id.clone());
                }
                let unchanged = g.members[i]
                    .protocols
                    .iter()
                    .map(|p| &p.0)
                    .eq(req.protocols.iter().map(|p| &p.0));
                if g.state == GroupState::Stable && unchanged {
                    // Same subscription: no rebalance; it gets its assignment
                    // back with SyncGroup.
                    let m = &mut g.members[i];
                    m.protocols = req.protocols.clone();
                    m.last_seen = Instant::now();
                    m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
                    let r = JoinResult {
                        error: code::NONE,
                        generation: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        leader: g.leader.clone().unwrap_or_default(),
                        member_id: member_id.clone(),
                        members: Vec::new(),
                    };
                    info!(group = %g.id, member = %member_id, "static member rejoined without a rebalance");
                    self.save(g);
                    return reply(r);
                }
            } else if req.require_known_member_id && req.instance_id.is_none() {
                g.pending.insert(member_id.clone(), Instant::now());
                return reply(JoinResult::error(code::MEMBER_ID_REQUIRED, &member_id));
            }
        } else if let Some(iid) = req.instance_id.as_deref() {
            if let Err(e) = g.check_member(&member_id, Some(iid)) {
                return reply(JoinResult::error(e, &member_id));
            }
        } else if g.member(&member_id).is_none() && g.pending.remove(&member_id).is_none() {
            return reply(JoinResult::error(code::UNKNOWN_MEMBER_ID, &member_id));
        }

        let session = Duration::from_millis(req.session_timeout_ms as u64);
        let rebalance =
            Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64);
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        let (generation, ptype, pname, leader) = (
            g.generation,
            g.protocol_type.clone(),
            g.protocol_name.clone(),
            g.leader.clone().unwrap_or_default(),
        );
        let stable = g.state == GroupState::Stable;
        match g.member(&member_id) {
            Some(m) => {
                let unchanged = m.protocols == req.protocols;
                m.session_timeout = session;
                m.rebalance_timeout = rebalance;
                m.last_seen = Instant::now();
                if stable && unchanged && !is_leader {
                    // Kafka answers a follower that rejoins a stable group
                    // with unchanged metadata without a rebalance.
                    return reply(JoinResult {
                        error: code::NONE,
                        generation,
                        protocol_type: ptype,
                        protocol_name: pname,
                        leader,
                        member_id: member_id.clone(),
                        members: Vec::new(),
                    });
                }
                m.protocols = req.protocols.clone();
                m.join_tx = Some(tx);
            }
            None => g.members.push(Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                last_seen: Instant::now(),
                join_tx: Some(tx),
                sync_tx: None,
            }),
        }
        g.protocol_type = Some(req.protocol_type.clone());
        if g.state != GroupState::PreparingRebalance {
            g.prepare_rebalance(self.initial_delay);
        }
        debug!(group = %g.id, member = %member_id, state = g.state.name(), "join");
        if g.maybe_complete_join() {
            self.save(g);
        }
        rx
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let reply = |r: SyncResult| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(r);
            rx
        };
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return reply(SyncResult::error(code::UNKNOWN_MEMBER_ID));
        };
        if let Err(e) = g.check_member(member_id, instance_id) {
            return reply(SyncResult::error(e));
        }
        if generation != g.generation {
            return reply(SyncResult::error(code::ILLEGAL_GENERATION));
        }
        let (ptype, pname) = (g.protocol_type.clone(), g.protocol_name.clone());
        match g.state {
            GroupState::PreparingRebalance => reply(SyncResult::error(code::REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                let Some(m) = g.member(member_id) else {
                    return reply(SyncResult::error(code::UNKNOWN_MEMBER_ID));
                };
                m.last_seen = Instant::now();
                let a = m.assignment.clone();
                reply(SyncResult {
                    error: code::NONE,
                    protocol_type: ptype,
                    protocol_name: pname,
                    assignment: a,
                })
            }
            GroupState::CompletingRebalance => {
                {
                    let Some(m) = g.member(member_id) else {
                        return reply(SyncResult::error(code::UNKNOWN_MEMBER_ID));
                    };
                    m.last_seen = Instant::now();
                    m.sync_tx = Some(tx);
                }
                if g.leader.as_deref() == Some(member_id) {
                    let by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in &mut g.members {
                        m.assignment = by_member.get(&m.id).cloned().unwrap_or_default();
                        if let Some(tx) = m.sync_tx.take() {
                            let _ = tx.send(SyncResult {
                                error: code::NONE,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    g.state = GroupState::Stable;
                    info!(group = %g.id, generation = g.generation, "rebalance complete: group stable");
                    self.save(g);
                }
                rx
            }
            GroupState::Empty | GroupState::Dead => {
                reply(SyncResult::error(code::UNKNOWN_MEMBER_ID))
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if let Err(e) = g.check_member(member_id, instance_id) {
            return e;
        }
        let state = g.state;
        let current = g.generation;
        let Some(m) = g.member(member_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        m.last_seen = Instant::now();
        if state == GroupState::PreparingRebalance {
            return code::REBALANCE_IN_PROGRESS;
        }
        if generation != current {
            return code::ILLEGAL_GENERATION;
        }
        code::NONE
    }

    /// LeaveGroup for one member (by member id, or by static id).
    pub fn leave(&self, group_id: &str, member_id: &str, instance_id: Option<&str>) -> i16 {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        let pos = g.members.iter().position(|m| {
            (!member_id.is_empty() && m.id == member_id)
                || (member_id.is_empty()
                    && instance_id.is_some()
                    && m.instance_id.as_deref() == instance_id)
        });
        let Some(pos) = pos else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if let (Some(iid), Some(mid)) = (instance_id, (!member_id.is_empty()).then_some(member_id))
        {
            if g.members[pos].instance_id.as_deref() == Some(iid) && g.members[pos].id != mid {
                return code::FENCED_INSTANCE_ID;
            }
        }
        let m = g.members.remove(pos);
        if let Some(tx) = m.join_tx {
            let _ = tx.send(JoinResult::error(code::UNKNOWN_MEMBER_ID, &m.id));
        }
        info!(group = %g.id, member = %m.id, "member left");
        self.member_gone(g);
        code::NONE
    }

    fn member_gone(&self, g: &mut Group) {
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                g.prepare_rebalance(self.initial_delay)
            }
            _ => {}
        }
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.generation += 1;
            g.leader = None;
            g.deadline = None;
            self.save(g);
        } else if g.maybe_complete_join() {
            self.save(g);
        }
    }

    /// Checks an OffsetCommit's generation and member: None to proceed,
    /// Some(error) otherwise. Simple commits (generation -1, no member) are
    /// allowed for groups without members. A member of the current
    /// generation may commit while the group prepares a rebalance (a
    /// cooperative assignor commits the partitions it gives up then); only
    /// between join and sync, when its generation is not yet the group's
    /// assignment, is it told REBALANCE_IN_PROGRESS, as in Kafka.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<i16> {
        let groups = lock(&self.groups);
        let Some(g) = groups.get(group_id) else {
            return (generation >= 0).then_some(code::ILLEGAL_GENERATION);
        };
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return (!g.members.is_empty()).then_some(code::UNKNOWN_MEMBER_ID);
        }
        if let Err(e) = g.check_member(member_id, instance_id) {
            return Some(e);
        }
        if generation != g.generation {
            return Some(code::ILLEGAL_GENERATION);
        }
        if g.state == GroupState::CompletingRebalance {
            return Some(code::REBALANCE_IN_PROGRESS);
        }
        None
    }

    /// True when the classic group has members.
    pub fn has_members(&self, group_id: &str) -> bool {
        lock(&self.groups)
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Every group known to the coordinator (offsets-only groups are added
    /// by the caller).
    pub fn describe_all(&self) -> Vec<GroupDescription> {
        let groups = lock(&self.groups);
        groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(describe)
            .collect()
    }

    /// One group, if the coordinator knows it.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        lock(&self.groups).get(group_id).map(describe)
    }

    /// DeleteGroups: only groups without members.
    pub async fn delete(&self, group_id: &str) -> i16 {
        {
            let mut groups = lock(&self.groups);
            if let Some(g) = groups.get(group_id) {
                if !g.members.is_empty() {
                    return code::NON_EMPTY_GROUP;
                }
            }
            groups.remove(group_id);
        }
        match self.saver.delete(group_id).await {
            Ok(()) => code::NONE,
            Err(StorageError::Fenced(_)) => code::NOT_COORDINATOR,
            Err(e) => {
                warn!(group = group_id, error = %e, "could not delete group");
                code::KAFKA_STORAGE_ERROR
            }
        }
    }

    /// True when some member's subscription (consumer protocol) names `topic`.
    pub fn subscribed_to(&self, group_id: &str, topic: &str) -> bool {
        let groups = lock(&self.groups);
        let Some(g) = groups.get(group_id) else {
            return false;
        };
        g.members.iter().any(|m| {
            let sub = m.subscription(g.protocol_name.as_deref());
            subscription_topics(&sub).iter().any(|t| t == topic)
        })
    }

    fn tick(&self) {
        let mut groups = lock(&self.groups);
        let now = Instant::now();
        for g in groups.values_mut() {
            g.pending
                .retain(|_, at| now.duration_since(*at) < Duration::from_secs(300));
            // Session expiry: members waiting in a join are alive by definition.
            let before = g.members.len();
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| {
                    m.join_tx.is_none() && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                g.members.retain(|m| !expired.contains(&m.id));
                info!(group = %g.id, members = ?expired, "session timeout: members removed");
            }
            if g.members.len() != before {
                self.member_gone(g);
                continue;
            }
            // A leader that never sends its assignments.
            if g.state == GroupState::CompletingRebalance
                && g.members
                    .iter()
                    .all(|m| now.duration_since(m.last_seen) > m.rebalance_timeout)
            {
                g.prepare_rebalance(self.initial_delay);
            }
            if g.maybe_complete_join() {
                self.save(g);
            }
        }
    }
}

fn describe(g: &Group) -> GroupDescription {
    GroupDescription {
        group_id: g.id.clone(),
        state: g.state,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol_name: if g.state == GroupState::Stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        },
        members: g
            .members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.subscription(g.protocol_name.as_deref()),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

/// Topics named in a ConsumerProtocolSubscription (version, then an array
/// of strings); empty if it does not parse.
pub fn subscription_topics(sub: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if sub.len() < 6 {
        return out;
    }
    let n = i32::from_be_bytes([sub[2], sub[3], sub[4], sub[5]]);
    let mut pos = 6;
    for _ in 0..n.max(0) {
        if pos + 2 > sub.len() {
            break;
        }
        let len = i16::from_be_bytes([sub[pos], sub[pos + 1]]) as usize;
        pos += 2;
        if pos + len > sub.len() {
            break;
        }
        out.push(String::from_utf8_lossy(&sub[pos..pos + len]).into_owned());
        pos += len;
    }
    out
}

async fn run_timer(c: std::sync::Weak<Coordinator>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(c) = c.upgrade() else { return };
        c.tick();
    }
}
