//! Session creation, in-process, on one core (current-thread runtime):
//!
//! - `id_generate`: `SessionId::generate()` alone (32 bytes from the
//!   operating system, one `getrandom` system call per id);
//! - `manager_create/fresh`: `SessionManager::create` into a `MokaStore`
//!   that starts empty for each criterion sample, 1,000 identities in turn,
//!   no cap in reach (id generation, identity interning, store insert);
//! - `manager_create/at_identity_cap`: the default configuration (64
//!   sessions per identity, evict the oldest) with every one of the 1,000
//!   identities already at its cap: each create also terminates that
//!   identity's oldest session (clients that open a session per tool call
//!   and never send `DELETE` live here).
//!
//! Target (issue 4): >= 300k sessions/s through the manager on one core.
//! `cargo bench --bench creation`.

#[path = "support/driver.rs"]
mod driver;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use driver::{identities, runtime, uncapped, IDENTITIES};
use mcp_session::{Config, MokaStore, SessionId, SessionManager};

fn creation(c: &mut Criterion) {
    let rt = runtime();
    let identities = identities();
    let mut group = c.benchmark_group("creation");
    group.throughput(Throughput::Elements(1));

    group.bench_function("id_generate", |b| b.iter(SessionId::generate));

    group.bench_function("manager_create/fresh", |b| {
        b.iter_custom(|iters| {
            let config = uncapped(iters);
            let manager = SessionManager::new(MokaStore::new(iters.max(1)), config);
            let elapsed = rt.block_on(async {
                let started = Instant::now();
                for k in 0..iters as usize {
                    let session = manager.create(&identities[k % IDENTITIES]).await.unwrap();
                    std::hint::black_box(session);
                }
                started.elapsed()
            });
            drop(manager); // not timed
            elapsed
        })
    });

    // Default config: 64 per identity, evict the oldest. Fill every identity
    // to its cap first.
    let manager = SessionManager::new(MokaStore::new(1_000_000), Config::default());
    let cap = Config::default().limits.max_sessions_per_identity as usize;
    rt.block_on(async {
        for k in 0..IDENTITIES * cap {
            manager.create(&identities[k % IDENTITIES]).await.unwrap();
        }
    });
    let mut k = 0usize;
    group.bench_function("manager_create/at_identity_cap", |b| {
        b.to_async(&rt).iter(|| {
            k = (k + 1) % IDENTITIES;
            let identity = &identities[k];
            let manager = &manager;
            async move {
                let (session, outcome) = manager.create_reporting(identity).await.unwrap();
                debug_assert_eq!(outcome.evicted.len(), 1);
                session
            }
        })
    });
    group.finish();
    manager.store().run_pending_tasks();
    assert_eq!(manager.store().len(), (IDENTITIES * cap) as u64);
}

criterion_group! {
    name = benches;
    config = driver::criterion(Duration::from_millis(500), Duration::from_secs(3));
    targets = creation
}
criterion_main!(benches);
