//! The classic coordinator's member checks: static members fenced by the
//! member that took over their instance id, and commits while a rebalance
//! is prepared.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_storage::meta::sql::SqlStore;

use super::*;

async fn coordinator() -> Arc<Coordinator> {
    let meta = Arc::new(SqlStore::sqlite_in_memory().await.unwrap());
    Coordinator::open(saver::seated(meta).await, Duration::ZERO)
        .await
        .unwrap()
}

fn join_request(member_id: &str, instance_id: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: instance_id.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

async fn join(c: &Coordinator, member_id: &str, instance_id: Option<&str>) -> JoinResult {
    let rx = c.join(join_request(member_id, instance_id));
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("the join completes")
        .unwrap()
}

/// One member `a` (static id "ia"), alone and stable: its member id and
/// generation.
async fn stable_group(c: &Coordinator) -> (String, i32) {
    let a = join(c, "", Some("ia")).await;
    assert_eq!(a.error, code::NONE);
    let sync = c.sync(
        "g",
        &a.member_id,
        Some("ia"),
        a.generation,
        vec![(a.member_id.clone(), Bytes::from_static(b"all"))],
    );
    assert_eq!(sync.await.unwrap().error, code::NONE);
    (a.member_id, a.generation)
}

#[tokio::test]
async fn a_static_member_replaced_by_another_with_its_instance_id_is_fenced() {
    let c = coordinator().await;
    let (old, generation) = stable_group(&c).await;
    assert_eq!(c.heartbeat("g", &old, Some("ia"), generation), code::NONE);

    // A second process with the same group.instance.id joins: it takes the
    // instance over without a rebalance.
    let new = join(&c, "", Some("ia")).await;
    assert_eq!(new.error, code::NONE);
    assert_ne!(new.member_id, old);
    assert_eq!(new.generation, generation);

    // The old one is fenced on its next heartbeat, sync, commit and join.
    assert_eq!(
        c.heartbeat("g", &old, Some("ia"), generation),
        code::FENCED_INSTANCE_ID
    );
    let sync = c.sync("g", &old, Some("ia"), generation, Vec::new());
    assert_eq!(sync.await.unwrap().error, code::FENCED_INSTANCE_ID);
    assert_eq!(
        c.check_commit("g", &old, Some("ia"), generation),
        Some(code::FENCED_INSTANCE_ID)
    );
    assert_eq!(
        join(&c, &old, Some("ia")).await.error,
        code::FENCED_INSTANCE_ID
    );
    // Without its instance id it is simply unknown.
    assert_eq!(
        c.heartbeat("g", &old, None, generation),
        code::UNKNOWN_MEMBER_ID
    );
    // The new one goes on.
    assert_eq!(
        c.heartbeat("g", &new.member_id, Some("ia"), generation),
        code::NONE
    );
    assert_eq!(
        c.check_commit("g", &new.member_id, Some("ia"), generation),
        None
    );
    // An instance id nobody holds is unknown.
    assert_eq!(
        c.heartbeat("g", &new.member_id, Some("other"), generation),
        code::UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn commits_are_accepted_while_a_rebalance_is_prepared_not_before_sync() {
    let c = coordinator().await;
    let (a, generation) = stable_group(&c).await;

    // `b` joins: the group prepares a rebalance and waits for `a`.
    let b = c.join(join_request("", None));
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    // `a`, still of the current generation, commits what it gives up.
    assert_eq!(c.check_commit("g", &a, Some("ia"), generation), None);
    assert_eq!(
        c.check_commit("g", &a, Some("ia"), generation - 1),
        Some(code::ILLEGAL_GENERATION)
    );
    assert_eq!(
        c.heartbeat("g", &a, Some("ia"), generation),
        code::REBALANCE_IN_PROGRESS
    );

    // `a` rejoins: the join completes, and until the sync hands out the
    // new assignment a commit is told to wait for it.
    let a2 = join(&c, &a, Some("ia")).await;
    let b = tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a2.error, b.error), (code::NONE, code::NONE));
    assert_eq!(a2.generation, generation + 1);
    assert_eq!(
        c.check_commit("g", &a, Some("ia"), a2.generation),
        Some(code::REBALANCE_IN_PROGRESS)
    );
    assert_eq!(
        c.check_commit("g", "", None, -1),
        Some(code::UNKNOWN_MEMBER_ID)
    );
}
