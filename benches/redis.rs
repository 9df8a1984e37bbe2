//! With a Redis store (feature `redis`): one request on an existing session,
//! driven through the tower service in-process, the store a `redis-server`
//! on 127.0.0.1 that this bench starts on a free port (and kills after):
//!
//! - `layer`: `SessionLayer` over `RedisStore` (redis-rs, one multiplexed
//!   connection), mint mode;
//! - `tower_sessions`: tower-sessions 0.14 over tower-sessions-redis-store
//!   0.16 (fred, pool of 1), `Expiry::OnInactivity(30 min)` and
//!   `with_always_save(true)`, cookie for an existing session whose record
//!   holds the identity id, name and roles; the inner service reads the
//!   owner from the session, as in benches/hot_path.rs.
//!
//! 10,000 live sessions of 1,000 identities, round-robin; requests one at a
//! time (latency, not throughput). Before the timed runs it counts, with
//! `MONITOR`, the round trips and the commands Redis executes per request
//! for each variant (over 1,000 requests). The layer's manager takes its
//! roles from a `RoleSource` (an in-memory directory), warmed up first: a
//! cached role lookup adds no Redis command.
//!
//! Then `redis/invalidate_roles`: two replicas (managers on their own
//! connections and subscribers); one invalidates an identity's roles, which
//! returns once every subscribed replica acknowledged it: that is the
//! propagation delay of an invalidation. It prints the median and p99 over
//! 1,000 invalidations, and criterion times it too.
//!
//! `cargo bench --features redis --bench redis`. Without `redis-server` on `PATH` it says so
//! and exits successfully.

#[path = "support/driver.rs"]
mod driver;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use driver::{
    identities, ok, request, runtime, tower_sessions_cookies, tower_sessions_service, Directory,
    IDENTITIES, MCP_SESSION_ID,
};
use http::{HeaderValue, Request};
use http_body_util::Empty;
use mcp_session::layer::RequestBody;
use mcp_session::{Config, RedisStore, SessionLayer, SessionManager};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config as FredConfig, Pool};

const SESSIONS: usize = 10_000;
const COUNTED_REQUESTS: usize = 1_000;

fn with_directory(store: RedisStore) -> SessionManager<RedisStore> {
    SessionManager::builder(store)
        .config(Config::default())
        .role_source(Directory)
        .build()
}

/// Summarizes `MONITOR` lines seen over `requests` requests: round trips
/// (commands sent by a client) and commands executed (scripts' included),
/// per request, with a breakdown by command.
fn per_request(lines: &[String], requests: usize) -> String {
    let mut by_name: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let (mut client, mut total) = (0u64, 0u64);
    for line in lines {
        let Some(name) = line.split('"').nth(1) else {
            continue;
        };
        let from_script = line.contains(" lua]");
        total += 1;
        if !from_script {
            client += 1;
        }
        let entry = by_name
            .entry(name.to_ascii_uppercase())
            .or_insert((0, from_script));
        entry.0 += 1;
    }
    let n = requests as f64;
    let parts: Vec<String> = by_name
        .iter()
        .map(|(name, (calls, from_script))| {
            let marker = if *from_script { " (in script)" } else { "" };
            format!("{name} {:.2}{marker}", *calls as f64 / n)
        })
        .collect();
    format!(
        "{:.2} round trips, {:.2} commands executed per request: {}",
        client as f64 / n,
        total as f64 / n,
        parts.join(", ")
    )
}

fn redis(c: &mut Criterion) {
    let Some(server) = redis_server::RedisServer::start() else {
        eprintln!("redis bench skipped: no redis-server");
        return;
    };
    let url = server.url();
    let rt = runtime();
    let identities = identities();

    // Ours.
    let store = rt
        .block_on(RedisStore::connect(&url))
        .expect("connect RedisStore");
    let manager = rt.block_on(async { with_directory(store) });
    let ours: Vec<HeaderValue> = rt.block_on(async {
        // The notice channel up, then every identity's roles cached.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for identity in &identities {
            manager.roles(identity).await.unwrap();
        }
        let mut ids = Vec::with_capacity(SESSIONS);
        for k in 0..SESSIONS {
            let session = manager.create(&identities[k % IDENTITIES]).await.unwrap();
            ids.push(session.id().to_header_value());
        }
        ids
    });
    assert_eq!(manager.cached_identities(), IDENTITIES);
    let inner = service_fn(|r: Request<RequestBody<Empty<Bytes>>>| async move {
        std::hint::black_box(&r);
        ok()
    });
    let mut layer_svc = SessionLayer::new(manager.clone()).layer(inner);

    // tower-sessions over its Redis store.
    let pool = Pool::new(FredConfig::from_url(&url).unwrap(), None, None, None, 1).unwrap();
    let ts_store = rt.block_on(async {
        pool.connect();
        pool.wait_for_connect().await.unwrap();
        tower_sessions_redis_store::RedisStore::new(pool.clone())
    });
    let cookies = rt.block_on(tower_sessions_cookies(&ts_store, &identities, SESSIONS));
    let mut ts_svc = tower_sessions_service(ts_store);
    rt.block_on(async { ts_svc.ready().await.unwrap() });

    // Commands per request, seen by MONITOR.
    let cookie = http::header::COOKIE;
    let monitor = server.monitor();
    rt.block_on(async {
        for k in 0..COUNTED_REQUESTS {
            let req = request(&MCP_SESSION_ID, &ours[k], &identities[k % IDENTITIES]);
            let response = layer_svc.call(req).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    });
    let ours_lines = monitor.stop();
    let monitor = server.monitor();
    rt.block_on(async {
        for k in 0..COUNTED_REQUESTS {
            let req = request(&cookie, &cookies[k], &identities[k % IDENTITIES]);
            let response = ts_svc.call(req).await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers().contains_key("set-cookie"));
        }
    });
    let theirs_lines = monitor.stop();
    println!(
        "redis, layer (RedisStore): {}",
        per_request(&ours_lines, COUNTED_REQUESTS)
    );
    println!(
        "redis, tower-sessions-redis-store (always save): {}",
        per_request(&theirs_lines, COUNTED_REQUESTS)
    );

    let mut group = c.benchmark_group("redis/round_robin");
    let size = format!("{}k", SESSIONS / 1000);
    {
        let next = Cell::new(0usize);
        group.bench_function(BenchmarkId::new("layer", &size), |b| {
            b.to_async(&rt).iter(|| {
                let k = next.get();
                next.set((k + 1) % SESSIONS);
                let req = request(&MCP_SESSION_ID, &ours[k], &identities[k % IDENTITIES]);
                let fut = layer_svc.call(req);
                async move {
                    let response = fut.await.unwrap();
                    debug_assert_eq!(response.status(), 200);
                    response
                }
            })
        });
    }
    {
        let next = Cell::new(0usize);
        group.bench_function(BenchmarkId::new("tower_sessions", &size), |b| {
            b.to_async(&rt).iter(|| {
                let k = next.get();
                next.set((k + 1) % SESSIONS);
                let req = request(&cookie, &cookies[k], &identities[k % IDENTITIES]);
                let fut = ts_svc.call(req);
                async move {
                    let response = fut.await.unwrap();
                    debug_assert_eq!(response.status(), 200);
                    response
                }
            })
        });
    }
    group.finish();

    // Propagation of an invalidation between two replicas.
    let other = rt
        .block_on(async { RedisStore::connect(&url).await.map(with_directory) })
        .expect("connect the second replica");
    let alice = &identities[0];
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await; // its channel up
        other.roles(alice).await.unwrap();
        let mut delays = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let started = std::time::Instant::now();
            manager.invalidate_roles(alice.id()).await.unwrap();
            delays.push(started.elapsed());
        }
        delays.sort();
        println!(
            "redis, invalidate_roles until every replica acknowledged (2 replicas, 1,000 runs): \
             median {:?}, p99 {:?}, max {:?}",
            delays[delays.len() / 2],
            delays[delays.len() * 99 / 100],
            delays[delays.len() - 1]
        );
    });
    let mut group = c.benchmark_group("redis/invalidate_roles");
    group.bench_function("two_replicas", |b| {
        b.to_async(&rt)
            .iter(|| async { manager.invalidate_roles(alice.id()).await.unwrap() })
    });
    group.finish();
    drop(other);
    drop(server);
}

criterion_group! {
    name = benches;
    config = driver::criterion(Duration::from_millis(500), Duration::from_secs(3));
    targets = redis
}
criterion_main!(benches);
