//! One conformance suite for the `SessionStore` contract, written once as
//! generic functions and run against every store:
//!
//! - `moka::*`: `MokaStore`;
//! - `redis_standalone::*`: `RedisStore` on a `redis-server` this binary
//!   starts (feature `redis`);
//! - `redis_cluster::*`: `RedisStore` on a 3-master Redis Cluster this binary
//!   starts (feature `redis`).
//!
//! Time is a `ManualClock`: every store call gets its `now` from it, so
//! expiry is tested without sleeping. Redis tests share one server (and one
//! cluster) per binary and isolate themselves with a unique key prefix.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcp_session::{
    CapacityScope, Clock, Identity, IdentityLimitPolicy, Limits, ManualClock, Session, SessionId,
    SessionStore, StoreError,
};

const IDLE: Duration = Duration::from_secs(10);
const LIFETIME: Duration = Duration::from_secs(100);

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["admin", "reader"])
}

fn bob() -> Identity {
    Identity::new("bob", "Bob", ["reader"])
}

fn new_session(identity: &Identity, clock: &ManualClock) -> Session {
    session_with(SessionId::generate(), identity, clock, IDLE, LIFETIME)
}

fn session_with(
    id: SessionId,
    identity: &Identity,
    clock: &ManualClock,
    idle: Duration,
    lifetime: Duration,
) -> Session {
    Session::new(id, identity.clone(), clock.now(), idle, lifetime)
}

fn limits(per_identity: u32, policy: IdentityLimitPolicy, global: u64) -> Limits {
    Limits::default()
        .max_sessions(global)
        .max_sessions_per_identity(per_identity)
        .identity_limit(policy)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// The suite

async fn create_never_overwrites<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let original = new_session(&alice(), &clock);
    store.create(&original, &Limits::default()).await.unwrap();

    clock.advance(ms(1));
    let impostor = session_with(original.id().clone(), &bob(), &clock, IDLE, LIFETIME);
    let err = store
        .create(&impostor, &Limits::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");

    let stored = store
        .get(original.id(), clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.identity_id(), "alice");
    assert_eq!(stored.created_at(), original.created_at());
    // The impostor did not take over the owner binding either.
    assert!(store
        .touch(original.id(), "bob", clock.now())
        .await
        .unwrap()
        .is_none());
}

async fn get_missing_or_expired_is_none<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    assert!(store
        .get(&SessionId::generate(), clock.now())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(&SessionId::generate(), "alice", clock.now())
        .await
        .unwrap()
        .is_none());

    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let start = clock.now();
    assert!(store
        .get(session.id(), start + ms(9_999))
        .await
        .unwrap()
        .is_some());
    // Idle-expired exactly at last_access + idle.
    assert!(store
        .get(session.id(), start + IDLE)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "alice", start + IDLE)
        .await
        .unwrap()
        .is_none());
}

async fn touch_slides_expiry<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let start = clock.now();

    // `get` does not slide.
    assert!(store
        .get(session.id(), start + ms(8_000))
        .await
        .unwrap()
        .is_some());

    let touched = store
        .touch(session.id(), "alice", start + ms(8_000))
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(touched.last_access(), start + ms(8_000));
    assert_eq!(touched.expires_at(), start + ms(18_000));
    assert_eq!(touched.created_at(), start);
    assert_eq!(touched.id(), session.id());

    // Alive past the original expiry, dead at the slid one.
    let seen = store
        .get(session.id(), start + ms(15_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.last_access(), start + ms(8_000));
    assert!(store
        .get(session.id(), start + ms(18_000))
        .await
        .unwrap()
        .is_none());
}

async fn touch_never_passes_the_deadline<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let session = session_with(SessionId::generate(), &alice(), &clock, IDLE, ms(25_000));
    store.create(&session, &Limits::default()).await.unwrap();
    let start = clock.now();

    for at in [8_000, 16_000, 24_000] {
        let s = store
            .touch(session.id(), "alice", start + ms(at))
            .await
            .unwrap();
        assert!(s.is_some(), "touch at {at} ms");
    }
    let last = store
        .touch(session.id(), "alice", start + ms(24_500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        last.expires_at(),
        start + ms(25_000),
        "capped by the deadline"
    );
    assert!(store
        .get(session.id(), start + ms(24_999))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get(session.id(), start + ms(25_000))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "alice", start + ms(25_000))
        .await
        .unwrap()
        .is_none());
}

async fn touch_refuses_a_foreign_owner_without_changing_it<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let start = clock.now();

    assert!(store
        .touch(session.id(), "bob", start + ms(8_000))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "Alice", start + ms(8_000))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "", start + ms(8_000))
        .await
        .unwrap()
        .is_none());
    // Unchanged: last access is still the creation time, so it idles out at
    // start + IDLE as if bob had never asked.
    let seen = store
        .get(session.id(), start + ms(9_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.last_access(), start);
    assert!(store
        .get(session.id(), start + IDLE)
        .await
        .unwrap()
        .is_none());
}

async fn update_replaces_but_never_resurrects<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let start = clock.now();

    // A live session is replaced.
    let promoted = Session::from_parts(
        session.id().clone(),
        Identity::new("alice", "Alice A.", ["admin", "reader", "writer"]),
        session.created_at(),
        start + ms(1_000),
        session.idle_timeout(),
        session.deadline(),
    );
    assert!(store.update(&promoted, start + ms(1_000)).await.unwrap());
    let seen = store
        .get(session.id(), start + ms(2_000))
        .await
        .unwrap()
        .unwrap();
    assert!(seen.identity().roles().contains("writer"));
    assert_eq!(seen.identity_name(), "Alice A.");
    assert_eq!(seen.last_access(), start + ms(1_000));

    // Deleted: update writes nothing.
    assert!(store.delete(session.id()).await.unwrap());
    assert!(!store.update(&promoted, start + ms(2_000)).await.unwrap());
    assert!(store
        .get(session.id(), start + ms(2_000))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "alice", start + ms(2_000))
        .await
        .unwrap()
        .is_none());

    // Expired: update writes nothing either.
    let other = new_session(&bob(), &clock);
    store.create(&other, &Limits::default()).await.unwrap();
    let late = start + ms(20_000);
    let revived = other.touched(late);
    assert!(!store.update(&revived, late).await.unwrap());
    // Nothing was written, not even invisibly: seen from before its expiry
    // it is unchanged ...
    let before = store.get(other.id(), start + ms(1)).await.unwrap().unwrap();
    assert_eq!(before.last_access(), start);
    // ... and at `late` it is gone.
    assert!(store.get(other.id(), late).await.unwrap().is_none());
}

async fn delete_then_nothing_finds_it<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    assert!(store.delete(session.id()).await.unwrap());
    assert!(store
        .get(session.id(), clock.now())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(session.id(), "alice", clock.now())
        .await
        .unwrap()
        .is_none());
    assert!(!store.delete(session.id()).await.unwrap());
    assert!(!store.delete(&SessionId::generate()).await.unwrap());
}

async fn per_identity_cap_evicts_the_oldest<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let limits = limits(2, IdentityLimitPolicy::EvictOldest, 1_000);
    let b1 = new_session(&bob(), &clock);
    store.create(&b1, &limits).await.unwrap();
    let mut alices = Vec::new();
    for _ in 0..2 {
        clock.advance(ms(1));
        let s = new_session(&alice(), &clock);
        let outcome = store.create(&s, &limits).await.unwrap();
        assert!(outcome.evicted.is_empty());
        alices.push(s);
    }
    clock.advance(ms(1));
    let a3 = new_session(&alice(), &clock);
    let outcome = store.create(&a3, &limits).await.unwrap();
    assert_eq!(outcome.evicted.len(), 1);
    assert!(outcome.evicted[0].is(alices[0].id()));

    let now = clock.now();
    assert!(
        store.get(alices[0].id(), now).await.unwrap().is_none(),
        "oldest evicted"
    );
    assert!(store.get(alices[1].id(), now).await.unwrap().is_some());
    assert!(store.get(a3.id(), now).await.unwrap().is_some());
    assert!(
        store.get(b1.id(), now).await.unwrap().is_some(),
        "other identity untouched"
    );

    // Again: now the second one goes.
    clock.advance(ms(1));
    let a4 = new_session(&alice(), &clock);
    let outcome = store.create(&a4, &limits).await.unwrap();
    assert_eq!(outcome.evicted.len(), 1);
    assert!(outcome.evicted[0].is(alices[1].id()));
}

async fn per_identity_cap_rejects<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let limits = limits(2, IdentityLimitPolicy::Reject, 1_000);
    let a1 = new_session(&alice(), &clock);
    store.create(&a1, &limits).await.unwrap();
    clock.advance(ms(1));
    let a2 = new_session(&alice(), &clock);
    store.create(&a2, &limits).await.unwrap();

    clock.advance(ms(1));
    let a3 = new_session(&alice(), &clock);
    let err = store.create(&a3, &limits).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity(CapacityScope::Identity)),
        "{err:?}"
    );
    assert!(
        store.get(a3.id(), clock.now()).await.unwrap().is_none(),
        "not stored"
    );
    assert!(
        store.get(a1.id(), clock.now()).await.unwrap().is_some(),
        "nothing evicted"
    );
    // Other identities are not affected.
    store
        .create(&new_session(&bob(), &clock), &limits)
        .await
        .unwrap();

    // A deleted session frees its slot.
    assert!(store.delete(a1.id()).await.unwrap());
    let a4 = new_session(&alice(), &clock);
    store.create(&a4, &limits).await.unwrap();

    // Expired sessions do not count either.
    clock.advance(IDLE + ms(1));
    let a5 = new_session(&alice(), &clock);
    store.create(&a5, &limits).await.unwrap();
    let a6 = new_session(&alice(), &clock);
    store.create(&a6, &limits).await.unwrap();
    let a7 = new_session(&alice(), &clock);
    let err = store.create(&a7, &limits).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity(CapacityScope::Identity)),
        "{err:?}"
    );
}

/// At the per-identity cap, a session kept alive by a touch or by an update
/// still counts; once they all expire, the slots are free again.
async fn per_identity_cap_counts_sessions_kept_alive<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let limits = limits(2, IdentityLimitPolicy::Reject, 1_000);
    let touched = new_session(&alice(), &clock);
    store.create(&touched, &limits).await.unwrap();
    let updated = new_session(&alice(), &clock);
    store.create(&updated, &limits).await.unwrap();

    // Just before both would idle out, one is touched, the other updated.
    clock.advance(IDLE - ms(1));
    assert!(store
        .touch(touched.id(), "alice", clock.now())
        .await
        .unwrap()
        .is_some());
    assert!(store
        .update(&updated.touched(clock.now()), clock.now())
        .await
        .unwrap());

    // Past their first idle expiry both are live: no room for a third.
    clock.advance(ms(2));
    let third = new_session(&alice(), &clock);
    let err = store.create(&third, &limits).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity(CapacityScope::Identity)),
        "{err:?}"
    );
    for id in [touched.id(), updated.id()] {
        assert!(store.get(id, clock.now()).await.unwrap().is_some());
    }

    // Once both have expired, two new sessions fit.
    clock.advance(IDLE);
    store
        .create(&new_session(&alice(), &clock), &limits)
        .await
        .unwrap();
    store
        .create(&new_session(&alice(), &clock), &limits)
        .await
        .unwrap();
}

async fn global_cap_refuses<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let limits = limits(10, IdentityLimitPolicy::EvictOldest, 2);
    let s1 = new_session(&alice(), &clock);
    store.create(&s1, &limits).await.unwrap();
    let s2 = new_session(&bob(), &clock);
    store.create(&s2, &limits).await.unwrap();

    let carol = Identity::new("carol", "Carol", ["reader"]);
    let s3 = new_session(&carol, &clock);
    let err = store.create(&s3, &limits).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity(CapacityScope::Global)),
        "{err:?}"
    );
    assert!(
        store.get(s3.id(), clock.now()).await.unwrap().is_none(),
        "not stored"
    );
    assert!(store.get(s1.id(), clock.now()).await.unwrap().is_some());
    assert!(store.get(s2.id(), clock.now()).await.unwrap().is_some());

    // A refused create leaves no trace: after a delete, one slot is free.
    assert!(store.delete(s1.id()).await.unwrap());
    let s4 = new_session(&carol, &clock);
    store.create(&s4, &limits).await.unwrap();
    let s5 = new_session(&carol, &clock);
    let err = store.create(&s5, &limits).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AtCapacity(CapacityScope::Global)),
        "{err:?}"
    );
}

async fn concurrent_creates_never_exceed_the_identity_cap<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let store = Arc::new(store);
    let limits = limits(3, IdentityLimitPolicy::Reject, 1_000);
    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (store, ok, session) = (store.clone(), ok.clone(), new_session(&alice(), &clock));
            tokio::spawn(async move {
                match store.create(&session, &limits).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::AtCapacity(CapacityScope::Identity)) => {}
                    Err(e) => panic!("{e:?}"),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), 3);
}

async fn no_touch_returns_a_session_after_its_delete<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let store = Arc::new(store);
    let session = new_session(&alice(), &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let deleted = Arc::new(AtomicBool::new(false));

    let touchers: Vec<_> = (0..4)
        .map(|_| {
            let (store, deleted, clock) = (store.clone(), deleted.clone(), clock.clone());
            let id = session.id().clone();
            tokio::spawn(async move {
                let mut after_delete = 0;
                let mut before_delete_hits = 0;
                while after_delete < 20 {
                    let started_after_delete = deleted.load(Ordering::SeqCst);
                    let seen = store.touch(&id, "alice", clock.now()).await.unwrap();
                    if started_after_delete {
                        assert!(
                            seen.is_none(),
                            "a touch after the delete returned the session"
                        );
                        after_delete += 1;
                    } else if seen.is_some() {
                        before_delete_hits += 1;
                    }
                    tokio::task::yield_now().await;
                }
                before_delete_hits
            })
        })
        .collect();

    // Let the touchers run against the live session for a moment.
    tokio::time::sleep(ms(30)).await;
    assert!(store.delete(session.id()).await.unwrap());
    deleted.store(true, Ordering::SeqCst);
    let mut hits = 0;
    for toucher in touchers {
        hits += toucher.await.unwrap();
    }
    assert!(hits > 0, "touchers never saw the live session");
    assert!(store
        .get(session.id(), clock.now())
        .await
        .unwrap()
        .is_none());
}

async fn identity_round_trips<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let odd = Identity::new(
        "auth0|user:42 {tag}",
        "Zoë \"Z\" O'Neil\nsecond line: 3:x",
        [
            "admin",
            "",
            "team:blue",
            "rôle with spaces",
            "7:eight",
            "\u{1F600}",
        ],
    );
    let session = new_session(&odd, &clock);
    store.create(&session, &Limits::default()).await.unwrap();

    let got = store.get(session.id(), clock.now()).await.unwrap().unwrap();
    assert!(
        got.identity().same_as(&odd),
        "{:?} vs {:?}",
        got.identity(),
        odd
    );
    assert_eq!(
        got.identity().roles().as_slice(),
        odd.roles().as_slice(),
        "order kept"
    );
    assert_eq!(got.created_at(), session.created_at());
    assert_eq!(got.deadline(), session.deadline());
    assert_eq!(got.idle_timeout(), session.idle_timeout());

    let touched = store
        .touch(session.id(), odd.id(), clock.now() + ms(5))
        .await
        .unwrap()
        .unwrap();
    assert!(touched.identity().same_as(&odd));

    let plain = Identity::new::<&str>("p", "", []);
    let session = new_session(&plain, &clock);
    store.create(&session, &Limits::default()).await.unwrap();
    let got = store.get(session.id(), clock.now()).await.unwrap().unwrap();
    assert!(got.identity().same_as(&plain));
    assert!(got.identity().roles().is_empty());
}

/// An id is taken only by a live session: one that is logically expired
/// but still stored (Redis keeps its key a little past its expiry, moka
/// until its next maintenance) is replaced by a new create, and no longer
/// counts against its old owner's cap.
async fn an_expired_but_stored_id_can_be_created_again<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let unique = SessionId::generate().reveal();
    let id = SessionId::parse_adopted(&format!("reused-{}", &unique[..16])).unwrap();
    let cap = limits(1, IdentityLimitPolicy::Reject, 1_000);
    let first = session_with(id.clone(), &alice(), &clock, IDLE, LIFETIME);
    store.create(&first, &cap).await.unwrap();
    // Still live: taken.
    clock.advance(IDLE - ms(1));
    let early = session_with(id.clone(), &bob(), &clock, IDLE, LIFETIME);
    let err = store.create(&early, &cap).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    // Idle past its expiry (Redis still holds the key: its TTL runs on
    // Redis' clock, which has not moved): free again.
    clock.advance(ms(2));
    let again = session_with(id.clone(), &bob(), &clock, IDLE, LIFETIME);
    let outcome = store.create(&again, &cap).await.unwrap();
    assert!(outcome.evicted.is_empty());
    let got = store.get(&id, clock.now()).await.unwrap().unwrap();
    assert_eq!(got.identity_id(), "bob");
    assert!(store
        .touch(&id, "alice", clock.now())
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch(&id, "bob", clock.now())
        .await
        .unwrap()
        .is_some());
    // Alice's cap of 1 no longer counts the replaced session.
    let alices = new_session(&alice(), &clock);
    store.create(&alices, &cap).await.unwrap();
}

async fn adopted_ids_work<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    // A unique suffix keeps parallel runs on a shared Redis apart.
    let unique = SessionId::generate().reveal();
    for text in [
        format!("6f1c0b6e-0a52-4c1e-9d39-{}", &unique[..12]),
        format!("{{tag}}:s:weird~!@#$%^&*()_+|{}", &unique[..8]),
        format!("x{}", &unique[..1]),
    ] {
        let id = SessionId::parse_adopted(&text).unwrap();
        assert!(!id.is_minted());
        let session = session_with(id.clone(), &alice(), &clock, IDLE, LIFETIME);
        store.create(&session, &Limits::default()).await.unwrap();
        let err = store
            .create(&session, &Limits::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
        let got = store.get(&id, clock.now()).await.unwrap().unwrap();
        assert_eq!(got.id().reveal(), text);
        assert!(store
            .touch(&id, "alice", clock.now() + ms(1))
            .await
            .unwrap()
            .is_some());
        assert!(store.update(&got, clock.now() + ms(2)).await.unwrap());
        assert!(store.delete(&id).await.unwrap());
        assert!(store.get(&id, clock.now()).await.unwrap().is_none());
    }
}

async fn update_never_moves_a_session_to_another_identity<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let cap = limits(1, IdentityLimitPolicy::EvictOldest, 1_000);
    let alices = new_session(&alice(), &clock);
    store.create(&alices, &cap).await.unwrap();
    let moved = Session::from_parts(
        alices.id().clone(),
        bob(),
        alices.created_at(),
        alices.last_access(),
        alices.idle_timeout(),
        alices.deadline(),
    );
    assert!(!store.update(&moved, clock.now()).await.unwrap());
    let stored = store.get(alices.id(), clock.now()).await.unwrap().unwrap();
    assert_eq!(stored.identity_id(), "alice");
    // Bob's own sessions (cap 1, evicting) never reach alice's.
    store
        .create(&new_session(&bob(), &clock), &cap)
        .await
        .unwrap();
    store
        .create(&new_session(&bob(), &clock), &cap)
        .await
        .unwrap();
    assert!(store.get(alices.id(), clock.now()).await.unwrap().is_some());
    // Same identity, new name and roles: allowed.
    let renamed = Session::from_parts(
        alices.id().clone(),
        Identity::new("alice", "Alice B.", ["reader"]),
        alices.created_at(),
        alices.last_access(),
        alices.idle_timeout(),
        alices.deadline(),
    );
    assert!(store.update(&renamed, clock.now()).await.unwrap());
}

async fn delete_all_of_ends_every_session_of_that_identity_only<S: SessionStore>(store: S) {
    let clock = ManualClock::starting_now();
    let cap = limits(3, IdentityLimitPolicy::Reject, 1_000);
    let mut alices = Vec::new();
    for _ in 0..3 {
        let session = new_session(&alice(), &clock);
        store.create(&session, &cap).await.unwrap();
        alices.push(session.id().clone());
    }
    let bobs = new_session(&bob(), &clock);
    store.create(&bobs, &cap).await.unwrap();

    let mut ended: Vec<u64> = store
        .delete_all_of("alice")
        .await
        .unwrap()
        .iter()
        .map(|removed| removed.digest())
        .collect();
    ended.sort_unstable();
    let mut digests: Vec<u64> = alices.iter().map(SessionId::digest).collect();
    digests.sort_unstable();
    assert_eq!(ended, digests);
    for id in &alices {
        assert!(store.get(id, clock.now()).await.unwrap().is_none());
        assert!(store
            .touch(id, "alice", clock.now())
            .await
            .unwrap()
            .is_none());
    }
    assert!(store.get(bobs.id(), clock.now()).await.unwrap().is_some());
    // Their cap slots are free again: three new sessions fit under Reject.
    for _ in 0..3 {
        store
            .create(&new_session(&alice(), &clock), &cap)
            .await
            .unwrap();
    }
    assert!(store.delete_all_of("nobody").await.unwrap().is_empty());
}

/// A store's own listeners hear its channel's state; its own notices are
/// acknowledged but not echoed back (the publisher applied them already).
/// Delivery to other replicas: tests/roles_replicas.rs.
async fn published_notices_reach_subscribers<S: SessionStore>(store: S) {
    use mcp_session::ReplicaNotice;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = store.subscribe(Arc::new(move |notice: &ReplicaNotice| {
        let _ = tx.send(notice.clone());
    }));
    let changed = ReplicaNotice::RolesChanged(Arc::from("alice:x"));
    if !shared {
        // An in-process store: nobody else to tell, and publishing is a no-op.
        store.publish(&changed).await.unwrap();
        assert!(rx.try_recv().is_err());
        return;
    }
    let within = Duration::from_secs(5);
    let first = tokio::time::timeout(within, rx.recv()).await.unwrap();
    assert_eq!(first, Some(ReplicaNotice::Connected));
    // `Ok` only once this store's own subscriber acknowledged it.
    store.publish(&changed).await.unwrap();
    let ended = ReplicaNotice::SessionEnded {
        digest: 7,
        reason: mcp_session::EndReason::Revoked,
    };
    store.publish(&ended).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "its own notices are not echoed");
}

// ---------------------------------------------------------------------------
// Instantiation: every test above, once per store.

#[macro_use]
#[path = "support/store_tests.rs"]
mod store_tests;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        store_tests!(moka, |_test| Some(mcp_session::MokaStore::new(10_000)), [$($test),*]);
        // The run-time choice of store passes everything through unchanged.
        store_tests!(
            any_moka,
            |_test| Some(mcp_session::AnyStore::from(mcp_session::MokaStore::new(10_000))),
            [$($test),*]
        );
        store_tests!(
            #[cfg(feature = "redis")]
            any_redis,
            |test| super::redis::standalone(&format!("any-{test}")).await.map(mcp_session::AnyStore::from),
            [$($test),*]
        );
        store_tests!(
            #[cfg(feature = "redis")]
            redis_standalone,
            |test| super::redis::standalone(test).await,
            [$($test),*]
        );
        store_tests!(
            #[cfg(feature = "redis")]
            redis_cluster,
            |test| super::redis::cluster(test).await,
            [$($test),*]
        );
    };
}

conformance!(
    create_never_overwrites,
    get_missing_or_expired_is_none,
    touch_slides_expiry,
    touch_never_passes_the_deadline,
    touch_refuses_a_foreign_owner_without_changing_it,
    update_replaces_but_never_resurrects,
    delete_then_nothing_finds_it,
    per_identity_cap_evicts_the_oldest,
    per_identity_cap_rejects,
    per_identity_cap_counts_sessions_kept_alive,
    global_cap_refuses,
    concurrent_creates_never_exceed_the_identity_cap,
    no_touch_returns_a_session_after_its_delete,
    identity_round_trips,
    adopted_ids_work,
    an_expired_but_stored_id_can_be_created_again,
    delete_all_of_ends_every_session_of_that_identity_only,
    published_notices_reach_subscribers,
    update_never_moves_a_session_to_another_identity,
);

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[path = "support/redis_stores.rs"]
mod redis;
