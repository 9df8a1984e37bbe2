//! Handles and sealed request state (feature `handles`), one call at a time
//! (latency, not throughput), each next to its baseline in the same run:
//!
//! - `handles/resolve`: `Handles::get` of a live handle (owner check,
//!   sliding expiry, JSON decode of a 3-line payload) among 10,000 handles
//!   of 1,000 identities, round-robin — on `MokaStore` and on `RedisStore`
//!   (a `redis-server` on 127.0.0.1 this bench starts on a free port).
//!   Baseline: `SessionStore::touch` of a session (the layer's per-request
//!   hot path) on the same store, 10,000 sessions.
//! - `handles/update`: `Handles::update` (read, change, compare-and-set).
//! - `sealed`: `Sealer::seal` and `Sealer::open` (HMAC-SHA-256 both ways;
//!   open also claims the nonce: in memory, or `SET NX PX` on Redis) of a
//!   small payload; baseline: one HMAC-SHA-256 over the same bytes.
//!
//! `cargo bench --bench handles --features "handles redis"`. Without
//! `redis-server` on `PATH` the Redis rows are skipped (it says so).

#[path = "support/driver.rs"]
mod driver;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::cell::Cell;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use mcp_session::handles::{HandleConfig, HandleStore, Handles};
use mcp_session::sealed::{SealKey, Sealer};
use mcp_session::{
    Clock, Identity, Limits, MokaStore, RedisStore, Session, SessionId, SessionStore, SystemClock,
};

const HANDLES: usize = 10_000;
const IDENTITIES: usize = 1_000;

type Notes = Vec<String>;

fn identities() -> Vec<Identity> {
    (0..IDENTITIES)
        .map(|i| Identity::new(format!("user-{i}"), format!("User {i}"), ["reader"]))
        .collect()
}

struct Fixture<S> {
    notes: Handles<Notes, S>,
    handles: Vec<String>,
    sessions: Vec<SessionId>,
    store: S,
}

async fn fixture<S: HandleStore + SessionStore + Clone>(
    store: S,
    people: &[Identity],
) -> Fixture<S> {
    let config = HandleConfig::default()
        .max_per_identity(HANDLES as u64)
        .max_handles(HANDLES as u64 * 2);
    let notes: Handles<Notes, S> = Handles::new(store.clone(), "notes", config);
    let lines: Notes = vec!["first line".into(), "second line".into(), "third".into()];
    let mut handles = Vec::with_capacity(HANDLES);
    let mut sessions = Vec::with_capacity(HANDLES);
    let now = SystemClock.now();
    for k in 0..HANDLES {
        let who = &people[k % IDENTITIES];
        handles.push(notes.create(who, &lines).await.unwrap().reveal());
        let session = Session::new(
            SessionId::generate(),
            who.clone(),
            now,
            Duration::from_secs(1800),
            Duration::from_secs(86_400),
        );
        store.create(&session, &Limits::default()).await.unwrap();
        sessions.push(session.id().clone());
    }
    Fixture {
        notes,
        handles,
        sessions,
        store,
    }
}

fn bench_store<S: HandleStore + SessionStore + Clone>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    fixture: &Fixture<S>,
    people: &[Identity],
) {
    let mut group = c.benchmark_group("handles/resolve");
    let next = Cell::new(0usize);
    let pick = || {
        let k = next.get();
        next.set((k + 1) % HANDLES);
        k
    };
    group.bench_function(BenchmarkId::new("handle_get", name), |b| {
        b.to_async(rt).iter(|| {
            let k = pick();
            let notes = &fixture.notes;
            let who = &people[k % IDENTITIES];
            let handle = &fixture.handles[k];
            async move { notes.get(who, handle).await.unwrap() }
        })
    });
    group.bench_function(BenchmarkId::new("session_touch_baseline", name), |b| {
        b.to_async(rt).iter(|| {
            let k = pick();
            let fut = fixture.store.touch(
                &fixture.sessions[k],
                people[k % IDENTITIES].id(),
                SystemClock.now(),
            );
            async move { fut.await.unwrap().unwrap() }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handles/update");
    group.bench_function(BenchmarkId::new("handle_update", name), |b| {
        b.to_async(rt).iter(|| {
            let k = pick();
            let notes = &fixture.notes;
            let who = &people[k % IDENTITIES];
            let handle = &fixture.handles[k];
            async move {
                // Same size each time: replace the last line.
                notes
                    .update(who, handle, |lines| {
                        if let Some(last) = lines.last_mut() {
                            last.clear();
                            last.push_str("third");
                        }
                    })
                    .await
                    .unwrap()
            }
        })
    });
    group.finish();
}

fn bench_sealed<S: HandleStore + Clone>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: S,
) {
    let sealer = Sealer::new(store, SealKey::new("bench", &[7; 32]).unwrap());
    let alice = Identity::new("alice", "Alice", ["user"]);
    let payload = ("deploy", 2u32, "confirm the production rollout");
    let mut group = c.benchmark_group("sealed");
    if name == "moka" {
        group.bench_function("seal", |b| {
            b.iter(|| sealer.seal(&alice, "tools/call deploy", &payload).unwrap())
        });
        let bytes = sealer.seal(&alice, "tools/call deploy", &payload).unwrap();
        group.bench_function("hmac_sha256_baseline", |b| {
            b.iter(|| {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[7; 32]).unwrap();
                mac.update(bytes.as_bytes());
                mac.finalize().into_bytes()
            })
        });
    }
    // Each open needs a fresh state (single use): sealing is part of the
    // measured work; subtract `seal` to get open alone.
    group.bench_function(BenchmarkId::new("seal_then_open", name), |b| {
        b.to_async(rt).iter(|| {
            let sealed = sealer.seal(&alice, "tools/call deploy", &payload).unwrap();
            let sealer = &sealer;
            let alice = &alice;
            async move {
                let opened: (String, u32, String) = sealer
                    .open(alice, "tools/call deploy", &sealed)
                    .await
                    .unwrap();
                opened
            }
        })
    });
    group.finish();
}

fn handles(c: &mut Criterion) {
    let rt = driver::runtime();
    let people = identities();

    let moka = rt.block_on(fixture(MokaStore::new(HANDLES as u64 * 2), &people));
    bench_store(c, &rt, "moka", &moka, &people);
    bench_sealed(c, &rt, "moka", moka.store.clone());

    let Some(server) = redis_server::RedisServer::start() else {
        eprintln!("handles bench: Redis rows skipped (no redis-server)");
        return;
    };
    let redis = rt.block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        fixture(store, &people).await
    });
    bench_store(c, &rt, "redis", &redis, &people);
    bench_sealed(c, &rt, "redis", redis.store.clone());
    drop(server);
}

criterion_group! {
    name = benches;
    config = driver::criterion(Duration::from_millis(500), Duration::from_secs(3));
    targets = handles
}
criterion_main!(benches);
