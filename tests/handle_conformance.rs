//! One conformance suite for the `HandleStore` contract (through the typed
//! `Handles` API), written once as generic functions and run against every
//! store: `MokaStore` (`moka::*`), `RedisStore` on a `redis-server` this
//! binary starts (`redis_standalone::*`) and on a 3-master Redis Cluster
//! (`redis_cluster::*`).
//!
//! Time is a `ManualClock` shared by the handles and the session manager,
//! so expiry is tested without sleeping.

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_session::handles::{
    Handle, HandleConfig, HandleErrorReason, HandleKey, HandleStore, Handles, Lookup, Replaced,
};
use mcp_session::{
    CapacityScope, Clock, Config, Identity, IdentityLimitPolicy, ManualClock, SessionId,
    SessionManager, SessionStore,
};

const IDLE: Duration = Duration::from_secs(10);
const LIFETIME: Duration = Duration::from_secs(25);
const GRACE: Duration = Duration::from_secs(5);

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["user"])
}

fn bob() -> Identity {
    Identity::new("bob", "Bob", ["user"])
}

fn config() -> HandleConfig {
    HandleConfig::default()
        .idle_timeout(IDLE)
        .max_lifetime(LIFETIME)
        .expired_grace(GRACE)
}

fn notes<S: HandleStore + Clone>(
    store: &S,
    clock: &ManualClock,
    config: HandleConfig,
) -> Handles<Vec<String>, S> {
    Handles::new(store.clone(), "notes", config)
        .create_tool("notes_create")
        .clock(clock.clone())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The message with the handle prefix it shows blanked out, to compare the
/// answers about two different handles.
fn without_handle(message: &str) -> String {
    match message.find("h_") {
        Some(at) => format!(
            "{}h_…{}",
            &message[..at],
            &message[at + "h_12345678…".len()..]
        ),
        None => message.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// The suite

async fn another_principals_handle_looks_unknown<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config());
    let handle = notes
        .create(&alice(), &vec!["secret".into()])
        .await
        .unwrap();
    let text = handle.reveal();
    let unknown = Handle::generate().reveal();

    // Every operation bob tries on alice's handle fails exactly as it does
    // on a handle nobody minted.
    let stolen = [
        notes.get(&bob(), &text).await.unwrap_err(),
        notes
            .update(&bob(), &text, |n| n.clear())
            .await
            .unwrap_err(),
        notes.delete(&bob(), &text).await.unwrap_err(),
    ];
    let made_up = [
        notes.get(&bob(), &unknown).await.unwrap_err(),
        notes
            .update(&bob(), &unknown, |n| n.clear())
            .await
            .unwrap_err(),
        notes.delete(&bob(), &unknown).await.unwrap_err(),
    ];
    for (stolen, made_up) in stolen.iter().zip(&made_up) {
        assert_eq!(stolen.reason(), HandleErrorReason::NotFound);
        assert_eq!(made_up.reason(), HandleErrorReason::NotFound);
        assert_eq!(
            without_handle(&stolen.to_string()),
            without_handle(&made_up.to_string())
        );
        assert!(!stolen.to_string().contains(&text), "{stolen}");
    }
    // At the store too: the same lookup result.
    let key = |owner| HandleKey {
        handle: &handle,
        owner,
        kind: "notes",
    };
    assert_eq!(
        store.open_handle(&key("bob"), clock.now()).await.unwrap(),
        Lookup::Missing
    );
    // Of another kind, it is unknown to its owner too.
    let baskets: Handles<Vec<String>, S> =
        Handles::new(store.clone(), "basket", config()).clock(clock.clone());
    let other_kind = baskets.get(&alice(), &text).await.unwrap_err();
    assert_eq!(other_kind.reason(), HandleErrorReason::NotFound);
    // And bob changed nothing.
    assert_eq!(notes.get(&alice(), &text).await.unwrap(), ["secret"]);
    assert!(notes.list(&bob()).await.unwrap().is_empty());
}

async fn expires_when_idle_and_at_its_lifetime<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config());
    let idle = notes.create(&alice(), &vec![]).await.unwrap().reveal();
    let used = notes.create(&alice(), &vec![]).await.unwrap().reveal();

    // Each use slides the idle expiry.
    clock.advance(secs(8));
    notes
        .update(&alice(), &used, |n| n.push("x".into()))
        .await
        .unwrap();
    clock.advance(secs(4));
    // 12 s: the idle one expired at 10 s, and its owner is told so.
    let expired = notes.get(&alice(), &idle).await.unwrap_err();
    assert_eq!(expired.reason(), HandleErrorReason::Expired);
    assert_eq!(
        without_handle(&expired.to_string()),
        "notes handle h_… has expired; create a new one with notes_create"
    );
    // Nobody else learns it existed.
    let probe = notes.get(&bob(), &idle).await.unwrap_err();
    assert_eq!(probe.reason(), HandleErrorReason::NotFound);
    // Once its grace is over (15 s), the store has forgotten it.
    clock.advance(secs(4));
    let forgotten = notes.get(&alice(), &idle).await.unwrap_err();
    assert_eq!(forgotten.reason(), HandleErrorReason::NotFound);

    // 16 s, 24 s: still used, so still live; never past the lifetime.
    notes
        .update(&alice(), &used, |n| n.push("x".into()))
        .await
        .unwrap();
    clock.advance(secs(8));
    notes
        .update(&alice(), &used, |n| n.push("x".into()))
        .await
        .unwrap();
    assert_eq!(notes.get(&alice(), &used).await.unwrap().len(), 3);
    clock.advance(secs(1)); // 25 s: the lifetime is over
    assert_eq!(
        notes.get(&alice(), &used).await.unwrap_err().reason(),
        HandleErrorReason::Expired
    );
    let update = notes
        .update(&alice(), &used, |n| n.clear())
        .await
        .unwrap_err();
    assert_eq!(update.reason(), HandleErrorReason::Expired);

    clock.advance(GRACE);
    assert_eq!(
        notes.get(&alice(), &used).await.unwrap_err().reason(),
        HandleErrorReason::NotFound
    );
    assert!(notes.list(&alice()).await.unwrap().is_empty());
}

async fn caps_are_apart_from_session_caps<S: HandleStore + SessionStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let session_config = Config::default()
        .max_sessions(3)
        .max_sessions_per_identity(2)
        .identity_limit(IdentityLimitPolicy::Reject);
    let manager = SessionManager::with_clock(store.clone(), session_config, clock.clone());
    let notes = notes(&store, &clock, config().max_per_identity(2).max_handles(3));

    // Sessions up to their caps leave every handle slot free...
    let s1 = manager.create(&alice()).await.unwrap();
    let s2 = manager.create(&alice()).await.unwrap();
    let s3 = manager.create(&bob()).await.unwrap();
    let h1 = notes.create(&alice(), &vec![]).await.unwrap();
    let _h2 = notes.create(&alice(), &vec![]).await.unwrap();
    let over = notes.create(&alice(), &vec![]).await.unwrap_err();
    assert_eq!(
        over.reason(),
        HandleErrorReason::AtCapacity(CapacityScope::Identity)
    );
    let _h3 = notes.create(&bob(), &vec![]).await.unwrap();
    let full = notes.create(&bob(), &vec![]).await.unwrap_err();
    assert_eq!(
        full.reason(),
        HandleErrorReason::AtCapacity(CapacityScope::Global)
    );
    // ...and handles at their caps take no session slot, evict no session.
    for session in [&s1, &s2, &s3] {
        assert!(manager.get_any_owner(session.id()).await.is_ok());
    }
    assert!(manager.create(&alice()).await.is_err()); // the session cap itself
    manager.delete(s3.id(), &bob()).await.unwrap();
    manager.create(&bob()).await.unwrap(); // a freed session slot is a session slot

    // Deleting a handle frees a handle slot; so does expiry.
    notes.delete(&alice(), &h1.reveal()).await.unwrap();
    notes.create(&alice(), &vec![]).await.unwrap();
    clock.advance(IDLE);
    notes.create(&alice(), &vec![]).await.unwrap();
    notes.create(&bob(), &vec![]).await.unwrap();
    notes.create(&alice(), &vec![]).await.unwrap();
    // The sessions lived through all of it (their idle timeout is longer).
    assert!(manager.get(s1.id(), &alice()).await.is_ok());
}

async fn concurrent_updates_are_never_lost<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let counters: Handles<Vec<u32>, S> =
        Handles::new(store, "counter", config()).clock(clock.clone());
    let handle = counters
        .create(&alice(), &Vec::new())
        .await
        .unwrap()
        .reveal();
    let writers: Vec<_> = (0..8u32)
        .map(|writer| {
            let counters = counters.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    counters
                        .update(&alice(), &handle, |v| v.push(writer * 100 + i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = counters.get(&alice(), &handle).await.unwrap();
    assert_eq!(stored.len(), 160, "updates lost");
    let distinct: BTreeSet<_> = stored.iter().collect();
    assert_eq!(distinct.len(), 160);
    // Each writer's values in its own order.
    for writer in 0..8 {
        let mine: Vec<_> = stored.iter().filter(|v| *v / 100 == writer).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

async fn replace_is_a_compare_and_set<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config());
    let handle = notes.create(&alice(), &vec![]).await.unwrap();
    let key = HandleKey {
        handle: &handle,
        owner: "alice",
        kind: "notes",
    };
    let Lookup::Live(first) = store.open_handle(&key, clock.now()).await.unwrap() else {
        panic!("live");
    };
    assert_eq!(
        store
            .replace_handle(&key, first.version, b"[\"a\"]", clock.now())
            .await
            .unwrap(),
        Replaced::Written
    );
    // The same version again: someone else won meanwhile.
    assert_eq!(
        store
            .replace_handle(&key, first.version, b"[\"b\"]", clock.now())
            .await
            .unwrap(),
        Replaced::Stale
    );
    let bob_key = HandleKey {
        owner: "bob",
        ..key
    };
    assert_eq!(
        store
            .replace_handle(&bob_key, first.version + 1, b"[\"c\"]", clock.now())
            .await
            .unwrap(),
        Replaced::Missing
    );
    assert_eq!(notes.get(&alice(), &handle.reveal()).await.unwrap(), ["a"]);
}

async fn list_shows_only_the_callers_live_handles<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config());
    let baskets: Handles<u32, S> =
        Handles::new(store.clone(), "basket", config()).clock(clock.clone());
    let start = clock.now();
    let a1 = notes.create(&alice(), &vec![]).await.unwrap();
    clock.advance(secs(1));
    let a2 = notes.create(&alice(), &vec![]).await.unwrap();
    let b1 = notes.create(&bob(), &vec![]).await.unwrap();
    baskets.create(&alice(), &7).await.unwrap();

    let mine: Vec<_> = notes
        .list(&alice())
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.handle)
        .collect();
    assert_eq!(mine, [a1.clone(), a2.clone()]); // oldest first, no basket, no bob
    let listed = notes.list(&alice()).await.unwrap();
    assert_eq!(listed[0].expires_at, start + IDLE);
    assert_eq!(listed[0].created_at, start);
    let bobs: Vec<_> = notes
        .list(&bob())
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.handle)
        .collect();
    assert_eq!(bobs, [b1]);
    assert_eq!(baskets.list(&alice()).await.unwrap().len(), 1);

    notes.delete(&alice(), &a1.reveal()).await.unwrap();
    let mine: Vec<_> = notes
        .list(&alice())
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.handle)
        .collect();
    assert_eq!(mine, [a2]);
    clock.advance(IDLE);
    assert!(notes.list(&alice()).await.unwrap().is_empty());
}

async fn delete_ends_a_handle<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config());
    let handle = notes
        .create(&alice(), &vec!["x".into()])
        .await
        .unwrap()
        .reveal();
    notes.delete(&alice(), &handle).await.unwrap();
    for error in [
        notes.get(&alice(), &handle).await.unwrap_err(),
        notes.delete(&alice(), &handle).await.unwrap_err(),
        notes
            .update(&alice(), &handle, |n| n.clear())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.reason(), HandleErrorReason::NotFound);
    }
}

async fn handles_and_session_ids_never_cross<S: HandleStore + SessionStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let manager = SessionManager::with_clock(store.clone(), Config::default(), clock.clone());
    let notes = notes(&store, &clock, config());
    let session = manager.create(&alice()).await.unwrap();
    let handle = notes.create(&alice(), &vec![]).await.unwrap();

    // A session id is not a handle, to its owner either.
    let error = notes
        .get(&alice(), &session.id().reveal())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), HandleErrorReason::NotFound);
    assert!(
        !error.to_string().contains(&session.id().reveal()[..16]),
        "{error}"
    );
    // The handle's bytes as a session id (hex), or its text as an adopted
    // id (what an `Mcp-Session-Id` header carrying it becomes in adopt
    // mode), find no session.
    let as_hex = SessionId::parse(&handle.reveal()[2..]).unwrap();
    let as_adopted = SessionId::parse_adopted(&handle.reveal()).unwrap();
    assert!(SessionId::parse(&handle.reveal()).is_err());
    for id in [as_hex, as_adopted] {
        assert!(manager.get(&id, &alice()).await.unwrap_err().is_not_found());
        assert!(store
            .touch(&id, "alice", clock.now())
            .await
            .unwrap()
            .is_none());
    }
    // Both still work as what they are.
    assert!(manager.get(session.id(), &alice()).await.is_ok());
    assert!(notes.get(&alice(), &handle.reveal()).await.is_ok());
}

async fn nonces_are_claimed_once<S: HandleStore + Clone>(store: S) {
    let now = ManualClock::starting_now().now();
    let until = now + secs(60);
    let mut nonce = [0u8; 16];
    getrandom_fill(&mut nonce);
    assert!(store.claim_once(&nonce, until, now).await.unwrap());
    assert!(!store.claim_once(&nonce, until, now).await.unwrap());
    nonce[0] ^= 1;
    assert!(store.claim_once(&nonce, until, now).await.unwrap());
}

fn getrandom_fill(bytes: &mut [u8]) {
    // A fresh handle is 32 random bytes: borrow some.
    let handle = Handle::generate();
    bytes.copy_from_slice(&handle.as_bytes()[..bytes.len()]);
}

async fn payload_too_large_changes_nothing<S: HandleStore + Clone>(store: S) {
    let clock = ManualClock::starting_now();
    let notes = notes(&store, &clock, config().max_payload_bytes(64));
    let handle = notes
        .create(&alice(), &vec!["small".into()])
        .await
        .unwrap()
        .reveal();
    let error = notes
        .update(&alice(), &handle, |n| n.push("x".repeat(100)))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), HandleErrorReason::TooLarge);
    assert_eq!(notes.get(&alice(), &handle).await.unwrap(), ["small"]);
    let error = notes
        .create(&alice(), &vec!["y".repeat(100)])
        .await
        .unwrap_err();
    assert_eq!(error.reason(), HandleErrorReason::TooLarge);
}

// ---------------------------------------------------------------------------
// Every test on every store

#[macro_use]
#[path = "support/store_tests.rs"]
mod store_tests;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        store_tests!(moka, |_test| Some(mcp_session::MokaStore::new(10_000)), [$($test),*]);
        store_tests!(redis_standalone, |test| super::redis::standalone(test).await, [$($test),*]);
        store_tests!(redis_cluster, |test| super::redis::cluster(test).await, [$($test),*]);
    };
}

conformance!(
    another_principals_handle_looks_unknown,
    expires_when_idle_and_at_its_lifetime,
    caps_are_apart_from_session_caps,
    concurrent_updates_are_never_lost,
    replace_is_a_compare_and_set,
    list_shows_only_the_callers_live_handles,
    delete_ends_a_handle,
    handles_and_session_ids_never_cross,
    nonces_are_claimed_once,
    payload_too_large_changes_nothing,
);

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/redis_stores.rs"]
mod redis;
