//! Model-based test of `SessionManager` over a store: random sequences of
//! create / get (owner-checked) / get_any_owner / refresh / refresh_any_owner / update /
//! delete / delete_any_owner / clock advance / identity switch, run against the real
//! manager (on a `ManualClock`) and against a small reference model; any
//! divergence fails, and proptest shrinks it to a minimal sequence.
//!
//! The model's rules:
//! - a session expires at `min(last_access + timeout, created + max_lifetime)`
//!   and is live strictly before that;
//! - `refresh*` slides `last_access` to now, only for a live session (and,
//!   for `refresh`/`get`/`delete`, only for its owner: anyone
//!   else gets not-found, exactly as for an unknown id);
//! - `update` replaces a live session's state, and never brings back a
//!   deleted or expired one;
//! - `create` counts only live sessions: at the per-identity cap the
//!   identity's oldest live sessions are evicted (`EvictOldest`) or the
//!   create is refused (`Reject`); then the global cap refuses.
//!
//! The runner is generic over `S: SessionStore` ([`check_store`]); it runs
//! against `MokaStore`, and with the `redis` feature against `RedisStore` on
//! a throwaway `redis-server`.

use std::time::Duration;

use mcp_session::{
    CapacityScope, Clock, Config, Identity, IdentityLimitPolicy, ManualClock, MokaStore, Session,
    SessionError, SessionId, SessionManager, SessionStore, StoreError, Timestamp,
};
use proptest::prelude::*;
use proptest::sample::Index;

const TIMEOUT: Duration = Duration::from_secs(10);
const LIFETIME: Duration = Duration::from_secs(35);
const PER_IDENTITY: u32 = 3;
const GLOBAL: u64 = 7;

#[derive(Debug, Clone)]
enum Op {
    Create,
    Get(Index),
    GetFor(Index),
    Refresh(Index),
    RefreshFor(Index),
    /// Write back the latest copy the test holds of a session (possibly
    /// stale), optionally touched now and/or with the owner's other roles.
    Update {
        which: Index,
        touch: bool,
        swap_roles: bool,
    },
    Delete(Index),
    DeleteFor(Index),
    Advance(u64),
    Switch(Index),
    /// Reads every id ever handed out and compares with the model. (Not
    /// after every step: reads make some stores sweep expired sessions,
    /// which would hide bugs that only show while they linger.)
    Audit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::Create),
        2 => any::<Index>().prop_map(Op::Get),
        2 => any::<Index>().prop_map(Op::GetFor),
        2 => any::<Index>().prop_map(Op::Refresh),
        3 => any::<Index>().prop_map(Op::RefreshFor),
        2 => (any::<Index>(), any::<bool>(), any::<bool>())
            .prop_map(|(which, touch, swap_roles)| Op::Update { which, touch, swap_roles }),
        1 => any::<Index>().prop_map(Op::Delete),
        1 => any::<Index>().prop_map(Op::DeleteFor),
        3 => prop_oneof![0u64..2_000, 2_000u64..12_000, Just(9_999), Just(10_000)].prop_map(Op::Advance),
        2 => any::<Index>().prop_map(Op::Switch),
        1 => Just(Op::Audit),
    ]
}

fn policy() -> impl Strategy<Value = IdentityLimitPolicy> {
    prop_oneof![
        Just(IdentityLimitPolicy::EvictOldest),
        Just(IdentityLimitPolicy::Reject)
    ]
}

/// Callers: two versions of alice (same subject, roles changed by a token
/// refresh), bob, and a subject with unusual characters.
fn identities() -> Vec<Identity> {
    vec![
        Identity::new("alice", "Alice", ["admin", "reader"]),
        Identity::new("alice", "Alice A.", ["reader"]),
        Identity::new("bob", "Bob", ["reader"]),
        Identity::new("auth0|carol:\u{e9}", "Carol", ["", "r:1"]),
    ]
}

#[derive(Debug, Clone)]
struct ModelSession {
    id: SessionId,
    identity: Identity,
    created: Timestamp,
    last: Timestamp,
    idle: Duration,
    deadline: Timestamp,
    /// Creation order, to find the oldest.
    seq: u64,
}

impl ModelSession {
    fn expires(&self) -> Timestamp {
        (self.last + self.idle).min(self.deadline)
    }
    fn live(&self, now: Timestamp) -> bool {
        now < self.expires()
    }
}

#[derive(Default)]
struct Model {
    sessions: Vec<ModelSession>,
    seq: u64,
}

impl Model {
    fn live(&self, id: &SessionId, now: Timestamp) -> Option<&ModelSession> {
        self.sessions.iter().find(|s| s.id == *id && s.live(now))
    }
    fn live_mut(&mut self, id: &SessionId, now: Timestamp) -> Option<&mut ModelSession> {
        self.sessions
            .iter_mut()
            .find(|s| s.id == *id && s.live(now))
    }
    fn remove(&mut self, id: &SessionId) {
        self.sessions.retain(|s| s.id != *id);
    }
    /// The expected outcome of a create: `Ok(evicted ids, oldest first)`.
    fn create(
        &mut self,
        session: &Session,
        policy: IdentityLimitPolicy,
    ) -> Result<Vec<SessionId>, CapacityScope> {
        let now = session.created_at();
        let owner = session.identity_id();
        let mut mine: Vec<&ModelSession> = self
            .sessions
            .iter()
            .filter(|s| s.live(now) && s.identity.id() == owner)
            .collect();
        mine.sort_by_key(|s| s.seq);
        let mut evicted = Vec::new();
        if mine.len() >= PER_IDENTITY as usize {
            match policy {
                IdentityLimitPolicy::Reject => return Err(CapacityScope::Identity),
                IdentityLimitPolicy::EvictOldest => {
                    let excess = mine.len() + 1 - PER_IDENTITY as usize;
                    evicted = mine[..excess].iter().map(|s| s.id.clone()).collect();
                }
                other => unreachable!("no model for {other:?}"),
            }
        }
        for id in &evicted {
            self.remove(id);
        }
        if self.sessions.iter().filter(|s| s.live(now)).count() as u64 >= GLOBAL {
            return Err(CapacityScope::Global);
        }
        self.seq += 1;
        self.sessions.push(ModelSession {
            id: session.id().clone(),
            identity: session.identity().clone(),
            created: now,
            last: now,
            idle: TIMEOUT,
            deadline: now + LIFETIME,
            seq: self.seq,
        });
        Ok(evicted)
    }
}

/// Compares what the manager returned with what the model expects.
fn same(
    what: &str,
    got: &Result<Session, SessionError>,
    want: Option<&ModelSession>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(s), Some(m)) => {
            prop_assert_eq!(s.id(), &m.id, "{}: id", what);
            prop_assert!(
                s.identity().same_as(&m.identity),
                "{}: identity {:?} vs model {:?}",
                what,
                s.identity(),
                m.identity
            );
            prop_assert_eq!(
                s.identity().roles().as_slice(),
                m.identity.roles().as_slice(),
                "{}",
                what
            );
            prop_assert_eq!(s.created_at(), m.created, "{}: created", what);
            prop_assert_eq!(s.last_access(), m.last, "{}: last access", what);
            prop_assert_eq!(s.idle_timeout(), m.idle, "{}: idle", what);
            prop_assert_eq!(s.deadline(), m.deadline, "{}: deadline", what);
            prop_assert_eq!(s.expires_at(), m.expires(), "{}: expiry", what);
        }
        (Err(SessionError::NotFound), None) => {}
        (got, want) => prop_assert!(false, "{}: manager {:?}, model {:?}", what, got, want),
    }
    Ok(())
}

fn not_found_or_ok(
    what: &str,
    got: &Result<(), SessionError>,
    want: bool,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(()), true) | (Err(SessionError::NotFound), false) => Ok(()),
        (got, want) => {
            prop_assert!(false, "{}: manager {:?}, model found = {}", what, got, want);
            Ok(())
        }
    }
}

/// Runs `ops` against a manager over `store` and against the model.
async fn check_store<S: SessionStore>(
    store: S,
    policy: IdentityLimitPolicy,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let clock = ManualClock::starting_now();
    let config = Config::default()
        .timeout(TIMEOUT)
        .max_lifetime(LIFETIME)
        .max_sessions(GLOBAL)
        .max_sessions_per_identity(PER_IDENTITY)
        .identity_limit(policy);
    let manager = SessionManager::with_clock(store, config, clock.clone());
    let people = identities();
    let mut caller = people[0].clone();
    let mut model = Model::default();
    // Every id handed out so far (plus one that never existed), and the
    // latest copy of each session the test was given.
    let mut known: Vec<SessionId> = vec![SessionId::generate()];
    let mut copies: Vec<Option<Session>> = vec![None];

    for (step, op) in ops.into_iter().enumerate() {
        let now = clock.now();
        let what = format!("step {step}: {op:?} as {}", caller.name());
        let pick = |i: &Index| i.index(known.len());
        match &op {
            Op::Create => {
                // Distinct creation times keep "oldest" unambiguous in every store.
                clock.advance(Duration::from_millis(1));
                let got = manager.create_reporting(&caller).await;
                match got {
                    Ok((session, outcome)) => {
                        prop_assert_eq!(session.created_at(), clock.now(), "{}", what);
                        prop_assert!(session.identity().same_as(&caller), "{}", what);
                        prop_assert!(session.id().is_minted(), "{}", what);
                        let want = model.create(&session, policy);
                        let evicted: Vec<u64> =
                            outcome.evicted.iter().map(|e| e.digest()).collect();
                        let want: Result<Vec<u64>, _> =
                            want.map(|ids| ids.iter().map(SessionId::digest).collect());
                        prop_assert_eq!(want.as_ref().ok(), Some(&evicted), "{}: evicted", what);
                        known.push(session.id().clone());
                        copies.push(Some(session));
                    }
                    Err(SessionError::Store(StoreError::AtCapacity(scope))) => {
                        let probe = Session::new(
                            SessionId::generate(),
                            caller.clone(),
                            clock.now(),
                            TIMEOUT,
                            LIFETIME,
                        );
                        let want = model.create(&probe, policy);
                        prop_assert_eq!(want, Err(scope), "{}", what);
                    }
                    Err(e) => prop_assert!(false, "{}: {:?}", what, e),
                }
            }
            Op::Get(i) => {
                let id = known[pick(i)].clone();
                let got = manager.get_any_owner(&id).await;
                same(&what, &got, model.live(&id, now))?;
                if let Ok(s) = got {
                    copies[pick(i)] = Some(s);
                }
            }
            Op::GetFor(i) => {
                let id = known[pick(i)].clone();
                let got = manager.get(&id, &caller).await;
                let want = model
                    .live(&id, now)
                    .filter(|s| s.identity.id() == caller.id());
                same(&what, &got, want)?;
            }
            Op::Refresh(i) => {
                let id = known[pick(i)].clone();
                if let Some(m) = model.live_mut(&id, now) {
                    m.last = m.last.max(now);
                }
                let got = manager.refresh_any_owner(&id).await;
                same(&what, &got, model.live(&id, now))?;
            }
            Op::RefreshFor(i) => {
                let id = known[pick(i)].clone();
                let owner = caller.id().to_string();
                if let Some(m) = model
                    .live_mut(&id, now)
                    .filter(|m| m.identity.id() == owner)
                {
                    m.last = m.last.max(now);
                }
                let got = manager.refresh(&id, &caller).await;
                let want = model.live(&id, now).filter(|s| s.identity.id() == owner);
                same(&what, &got, want)?;
            }
            Op::Update {
                which,
                touch,
                swap_roles,
            } => {
                let Some(copy) = copies[pick(which)].clone() else {
                    continue;
                };
                let mut identity = copy.identity().clone();
                if *swap_roles && identity.id() == "alice" {
                    identity = if identity.same_as(&people[0]) {
                        people[1].clone()
                    } else {
                        people[0].clone()
                    };
                }
                let last = if *touch {
                    now.max(copy.last_access())
                } else {
                    copy.last_access()
                };
                let updated = Session::from_parts(
                    copy.id().clone(),
                    identity.clone(),
                    copy.created_at(),
                    last,
                    copy.idle_timeout(),
                    copy.deadline(),
                );
                let found = match model.live_mut(copy.id(), now) {
                    Some(m) => {
                        m.identity = identity;
                        m.last = last;
                        true
                    }
                    None => false,
                };
                let got = manager.update(&updated).await;
                not_found_or_ok(&what, &got, found)?;
                // Whatever happened, the stored state is now the model's.
                let after = manager.get_any_owner(copy.id()).await;
                same(
                    &format!("{what} (read back)"),
                    &after,
                    model.live(copy.id(), now),
                )?;
            }
            Op::Delete(i) => {
                let id = known[pick(i)].clone();
                let live = model.live(&id, now).is_some();
                let present = model.sessions.iter().any(|s| s.id == id);
                let got = manager.delete_any_owner(&id).await;
                if present && !live {
                    // Logically expired but maybe not yet swept: `delete`
                    // gets no clock, so either answer is allowed.
                    prop_assert!(
                        matches!(got, Ok(()) | Err(SessionError::NotFound)),
                        "{}: {:?}",
                        what,
                        got
                    );
                } else {
                    not_found_or_ok(&what, &got, live)?;
                }
                model.remove(&id);
            }
            Op::DeleteFor(i) => {
                let id = known[pick(i)].clone();
                let mine = model
                    .live(&id, now)
                    .is_some_and(|s| s.identity.id() == caller.id());
                let got = manager.delete(&id, &caller).await;
                not_found_or_ok(&what, &got, mine)?;
                if mine {
                    model.remove(&id);
                }
            }
            Op::Advance(ms) => clock.advance(Duration::from_millis(*ms)),
            Op::Switch(i) => caller = people[i.index(people.len())].clone(),
            Op::Audit => audit(&what, &manager, &model, &known, now).await?,
        }
    }
    // At the end: every id agrees with the model, nothing it considers gone
    // is visible.
    audit("at the end", &manager, &model, &known, clock.now()).await
}

async fn audit<S: SessionStore>(
    what: &str,
    manager: &SessionManager<S>,
    model: &Model,
    known: &[SessionId],
    now: Timestamp,
) -> Result<(), TestCaseError> {
    for id in known {
        let got = manager.get_any_owner(id).await;
        same(&format!("{what}: audit"), &got, model.live(id, now))?;
    }
    let live = model.sessions.iter().filter(|s| s.live(now)).count() as u64;
    prop_assert!(live <= GLOBAL);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn manager_over_moka_store_matches_the_model(
        policy in policy(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        runtime().block_on(check_store(MokaStore::new(1_000), policy, ops))?;
    }
}

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[path = "support/redis_stores.rs"]
mod redis_stores;

#[cfg(feature = "redis")]
mod redis {
    use proptest::prelude::*;

    use super::redis_stores::{cluster, standalone, unique};
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn manager_over_redis_standalone_matches_the_model(
            policy in policy(),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            runtime().block_on(async {
                let Some(store) = standalone(&unique("model")).await else {
                    return Ok(());
                };
                check_store(store, policy, ops).await
            })?;
        }

        #[test]
        fn manager_over_redis_cluster_matches_the_model(
            policy in policy(),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            runtime().block_on(async {
                let Some(store) = cluster(&unique("model")).await else {
                    return Ok(());
                };
                check_store(store, policy, ops).await
            })?;
        }
    }
}

/// Regression (found by the model): `MokaStore` counted sessions that were
/// logically expired but not yet dropped by moka's own timers against the
/// global cap, and refused creates the cap allowed.
async fn expired_sessions_do_not_count_against_the_global_cap<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let config = Config::default()
        .timeout(TIMEOUT)
        .max_lifetime(LIFETIME)
        .max_sessions(GLOBAL)
        .max_sessions_per_identity(PER_IDENTITY)
        .identity_limit(IdentityLimitPolicy::Reject);
    let manager = SessionManager::with_clock(store, config, clock.clone());
    let people: Vec<Identity> = (0..GLOBAL)
        .map(|i| Identity::new(format!("user{i}"), "U", ["reader"]))
        .collect();
    for person in &people {
        manager.create(person).await.unwrap();
    }
    let newcomer = Identity::new("newcomer", "N", ["reader"]);
    let err = manager.create(&newcomer).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Store(StoreError::AtCapacity(CapacityScope::Global))
        ),
        "{err:?}"
    );
    // Idle expiry frees every slot.
    clock.advance(TIMEOUT);
    let mut sessions = Vec::new();
    for person in &people {
        sessions.push(manager.create(person).await.unwrap());
    }
    assert!(manager.create(&newcomer).await.is_err());
    // So does the lifetime cap, however recently the sessions were used.
    let deadline = sessions[0].deadline();
    while clock.now() < deadline {
        clock.advance(Duration::from_secs(4));
        for (session, person) in sessions.iter().zip(&people) {
            let refreshed = manager.refresh(session.id(), person).await;
            assert_eq!(refreshed.is_ok(), clock.now() < deadline);
        }
    }
    manager.create(&newcomer).await.unwrap();
}

#[test]
fn expired_sessions_do_not_count_against_the_global_cap_moka() {
    runtime().block_on(expired_sessions_do_not_count_against_the_global_cap(
        MokaStore::new(1_000),
    ));
}

#[cfg(feature = "redis")]
#[test]
fn expired_sessions_do_not_count_against_the_global_cap_redis() {
    runtime().block_on(async {
        let Some(store) = redis_stores::standalone(&redis_stores::unique("model")).await else {
            return;
        };
        expired_sessions_do_not_count_against_the_global_cap(store).await
    });
}

/// Sessions that idle-expired must free their global slots even when more
/// than a handful of older sessions are still in use (caps well above the
/// number of index members a store checks at once).
async fn idle_expired_sessions_free_slots_behind_many_live_ones<S: SessionStore>(store: S) {
    const CAP: u64 = 100;
    let clock = ManualClock::starting_now();
    let config = Config::default()
        .timeout(TIMEOUT)
        .max_lifetime(Duration::from_secs(24 * 3600))
        .max_sessions(CAP)
        .max_sessions_per_identity(1)
        .identity_limit(IdentityLimitPolicy::Reject);
    let manager = SessionManager::with_clock(store, config, clock.clone());
    let who = |i: u64| Identity::new(format!("user{i}"), "U", ["reader"]);
    // 70 sessions that stay in use, then 30 younger ones that go idle.
    let mut busy = Vec::new();
    for i in 0..70 {
        busy.push((manager.create(&who(i)).await.unwrap(), who(i)));
        clock.advance(Duration::from_millis(1));
    }
    for i in 70..CAP {
        manager.create(&who(i)).await.unwrap();
        clock.advance(Duration::from_millis(1));
    }
    assert!(manager.create(&who(1_000)).await.is_err(), "at the cap");
    // The young ones idle out while the old ones are used.
    for _ in 0..3 {
        clock.advance(TIMEOUT / 2);
        for (session, owner) in &busy {
            manager.refresh(session.id(), owner).await.unwrap();
        }
    }
    // 70 live sessions under a cap of 100: there is room.
    for i in 0..30 {
        if let Err(e) = manager.create(&who(2_000 + i)).await {
            panic!("create {i} refused with 70 live sessions under a cap of {CAP}: {e}");
        }
    }
}

#[test]
fn idle_expired_sessions_free_slots_behind_many_live_ones_moka() {
    runtime().block_on(idle_expired_sessions_free_slots_behind_many_live_ones(
        MokaStore::new(1_000),
    ));
}

/// Regression: `RedisStore` used to score its global index by deadline and
/// check only the 64 members with the earliest deadlines at the cap, so
/// idle-expired sessions behind 64 or more live older ones held their slots
/// until their deadline (24 h here) and creates were refused with fewer live
/// sessions than the cap.
#[cfg(feature = "redis")]
#[test]
fn idle_expired_sessions_free_slots_behind_many_live_ones_redis() {
    runtime().block_on(async {
        let Some(store) = redis_stores::standalone(&redis_stores::unique("model")).await else {
            return;
        };
        idle_expired_sessions_free_slots_behind_many_live_ones(store).await
    });
}
