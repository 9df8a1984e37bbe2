//! Sealed request state (`mcp_session::sealed`), attacked the way a client
//! would: tampering with every byte, replaying, opening it as someone else
//! or for another request, after its expiry, with a rotated-out key, and
//! garbage of any shape. Single use is checked on the in-memory store and
//! across two replicas sharing a real `redis-server`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mcp_session::handles::HandleStore;
use mcp_session::sealed::{OpenError, SealError, SealKey, Sealer};
use mcp_session::{Identity, ManualClock, MokaStore};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Step {
    tool: String,
    confirmed: bool,
}

fn step() -> Step {
    Step {
        tool: "deploy".into(),
        confirmed: false,
    }
}

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["user"])
}

const REQUEST: &str = "tools/call deploy";

fn key(id: &str, byte: u8) -> SealKey {
    SealKey::new(id, &[byte; 32]).unwrap()
}

fn sealer<S: HandleStore>(store: S, clock: &ManualClock) -> Sealer<S> {
    Sealer::new(store, key("k1", 1)).clock(clock.clone())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test]
async fn opens_once_for_the_same_caller_and_request() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock);
    let state = sealer.seal(&alice(), REQUEST, &step()).unwrap();
    assert!(!state.contains("alice"), "the principal is bound, not sent");
    let opened: Step = sealer.open(&alice(), REQUEST, &state).await.unwrap();
    assert_eq!(opened, step());
    let replay = sealer.open::<Step>(&alice(), REQUEST, &state).await;
    assert!(matches!(replay, Err(OpenError::Replayed)), "{replay:?}");
    assert!(replay
        .unwrap_err()
        .to_string()
        .contains("start the request over"));
}

#[tokio::test]
async fn another_caller_or_request_is_refused_like_tampering() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock);
    let state = sealer.seal(&alice(), REQUEST, &step()).unwrap();
    let bob = Identity::new("bob", "Bob", ["user"]);
    // Same display name and roles, another subject: still another principal.
    let other_alice = Identity::new("alice2", "Alice", ["user"]);
    for (caller, request) in [
        (&bob, REQUEST),
        (&other_alice, REQUEST),
        (&alice(), "tools/call delete_everything"),
        (&alice(), ""),
    ] {
        let refused = sealer.open::<Step>(caller, request, &state).await;
        assert!(matches!(refused, Err(OpenError::Invalid)), "{refused:?}");
    }
    // Those refusals did not use the state up: it opens for its owner.
    let _: Step = sealer.open(&alice(), REQUEST, &state).await.unwrap();
}

#[tokio::test]
async fn any_changed_byte_is_refused() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock);
    let state = sealer.seal(&alice(), REQUEST, &step()).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&state).unwrap();
    for at in 0..raw.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = raw.clone();
            bad[at] ^= flip;
            let bad = URL_SAFE_NO_PAD.encode(&bad);
            let refused = sealer.open::<Step>(&alice(), REQUEST, &bad).await;
            assert!(
                matches!(
                    refused,
                    Err(OpenError::Invalid | OpenError::UnknownKey | OpenError::Malformed)
                ),
                "byte {at} ^ {flip:#x}: {refused:?}"
            );
        }
    }
    // Truncated or extended.
    for bad in [&raw[..raw.len() - 1], &[raw.as_slice(), b"x"].concat()[..]] {
        let refused = sealer
            .open::<Step>(&alice(), REQUEST, &URL_SAFE_NO_PAD.encode(bad))
            .await;
        assert!(refused.is_err());
    }
    // A forged payload with the original tag: the tag covers the payload.
    let json = serde_json::to_vec(&step()).unwrap();
    let forged_json = serde_json::to_vec(&Step {
        tool: "deploy".into(),
        confirmed: true,
    })
    .unwrap();
    let start = raw
        .windows(json.len())
        .position(|w| w == json.as_slice())
        .expect("payload is in clear");
    let forged = [&raw[..start], &forged_json, &raw[start + json.len()..]].concat();
    let refused = sealer
        .open::<Step>(&alice(), REQUEST, &URL_SAFE_NO_PAD.encode(forged))
        .await;
    assert!(matches!(refused, Err(OpenError::Invalid)), "{refused:?}");
    let _: Step = sealer.open(&alice(), REQUEST, &state).await.unwrap();
}

#[tokio::test]
async fn expires_after_its_ttl() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock).ttl(Duration::from_secs(60));
    let late = sealer.seal(&alice(), REQUEST, &step()).unwrap();
    let in_time = sealer.seal(&alice(), REQUEST, &step()).unwrap();
    clock.advance(Duration::from_millis(59_999));
    let _: Step = sealer.open(&alice(), REQUEST, &in_time).await.unwrap();
    clock.advance(Duration::from_millis(1));
    let refused = sealer.open::<Step>(&alice(), REQUEST, &late).await;
    assert!(matches!(refused, Err(OpenError::Expired)), "{refused:?}");
}

#[tokio::test]
async fn keys_rotate_by_id() {
    let clock = ManualClock::starting_now();
    let store = MokaStore::default();
    let old = Sealer::new(store.clone(), key("2026-11", 1)).clock(clock.clone());
    let sealed_before = old.seal(&alice(), REQUEST, &step()).unwrap();
    let sealed_before_2 = old.seal(&alice(), REQUEST, &step()).unwrap();

    // Rotated: seals with the new key, still opens the old one's states.
    let rotated = Sealer::new(store.clone(), key("2026-12", 2))
        .also_open_with(key("2026-11", 1))
        .clock(clock.clone());
    let _: Step = rotated
        .open(&alice(), REQUEST, &sealed_before)
        .await
        .unwrap();
    let sealed_after = rotated.seal(&alice(), REQUEST, &step()).unwrap();
    let refused = old.open::<Step>(&alice(), REQUEST, &sealed_after).await;
    assert!(matches!(refused, Err(OpenError::UnknownKey)), "{refused:?}");

    // The old key removed: its states no longer open.
    let done = Sealer::new(store, key("2026-12", 2)).clock(clock.clone());
    let refused = done.open::<Step>(&alice(), REQUEST, &sealed_before_2).await;
    assert!(matches!(refused, Err(OpenError::UnknownKey)), "{refused:?}");
    let _: Step = done.open(&alice(), REQUEST, &sealed_after).await.unwrap();

    // The same id with another secret is a different key: refused.
    let impostor = Sealer::new(MokaStore::default(), key("2026-12", 3)).clock(clock);
    let forged = impostor.seal(&alice(), REQUEST, &step()).unwrap();
    let refused = done.open::<Step>(&alice(), REQUEST, &forged).await;
    assert!(matches!(refused, Err(OpenError::Invalid)), "{refused:?}");
}

#[tokio::test]
async fn sizes_are_bounded_both_ways() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock).max_len(256);
    let too_big = sealer.seal(&alice(), REQUEST, &"x".repeat(300));
    assert!(matches!(too_big, Err(SealError::TooLarge)));
    let fits = sealer.seal(&alice(), REQUEST, &"x".repeat(100)).unwrap();
    assert!(fits.len() <= 256);
    let huge = "A".repeat(10 * 1024 * 1024);
    let refused = sealer.open::<String>(&alice(), REQUEST, &huge).await;
    assert!(matches!(refused, Err(OpenError::Malformed)));
    assert!(SealKey::new("k", &[0; 31]).is_err());
    assert!(SealKey::new("", &[0; 32]).is_err());
    assert!(SealKey::new("has space", &[0; 32]).is_err());
    assert!(!format!("{:?}", key("k1", 7)).contains("7, 7"));
}

#[tokio::test]
async fn a_payload_of_another_type_is_refused_after_use() {
    let clock = ManualClock::starting_now();
    let sealer = sealer(MokaStore::default(), &clock);
    let state = sealer.seal(&alice(), REQUEST, &42u32).unwrap();
    let wrong = sealer.open::<Step>(&alice(), REQUEST, &state).await;
    assert!(matches!(wrong, Err(OpenError::Payload(_))), "{wrong:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Arbitrary text, and arbitrary bytes dressed as base64url: refused,
    /// never a panic, never opened.
    #[test]
    fn garbage_never_opens(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let clock = ManualClock::starting_now();
        let sealer = sealer(MokaStore::default(), &clock);
        let rt = runtime();
        for input in [text, URL_SAFE_NO_PAD.encode(&bytes), format!("AQJrMQ{}", URL_SAFE_NO_PAD.encode(&bytes))] {
            let opened = rt.block_on(sealer.open::<serde_json::Value>(&alice(), REQUEST, &input));
            prop_assert!(opened.is_err());
        }
    }
}

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/redis_stores.rs"]
mod redis;

/// Two replicas with the same key over one Redis: a state opened on one is
/// a replay on the other (the claim is shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_holds_across_replicas_on_redis() {
    let Some(one) = redis::standalone("sealed_replicas").await else {
        return;
    };
    let two = redis::standalone("sealed_replicas").await.unwrap();
    let clock = ManualClock::starting_now();
    let replica_one = sealer(one, &clock);
    let replica_two = sealer(two, &clock);
    let state = replica_one.seal(&alice(), REQUEST, &step()).unwrap();
    let _: Step = replica_two.open(&alice(), REQUEST, &state).await.unwrap();
    for replica in [&replica_one, &replica_two] {
        let replay = replica.open::<Step>(&alice(), REQUEST, &state).await;
        assert!(matches!(replay, Err(OpenError::Replayed)), "{replay:?}");
    }
    // On a Cluster too.
    let Some(cluster) = redis::cluster("sealed_replicas").await else {
        return;
    };
    let on_cluster = sealer(cluster, &clock);
    let state = on_cluster.seal(&alice(), REQUEST, &step()).unwrap();
    let _: Step = on_cluster.open(&alice(), REQUEST, &state).await.unwrap();
    let replay = on_cluster.open::<Step>(&alice(), REQUEST, &state).await;
    assert!(matches!(replay, Err(OpenError::Replayed)), "{replay:?}");
}
