//! `RedisStore` behind several replicas, on a `redis-server` each test starts:
//!
//! - two independent `SessionManager`s, each with its own connection, see
//!   each other's sessions, deletions, expiry and lifetime cap;
//! - the hot path (`refresh`, i.e. `touch`) costs exactly one command per
//!   call, counted with `INFO commandstats` and with `MONITOR`;
//! - killing Redis makes calls fail with a `StoreError` within the timeout
//!   (no hang, no panic), and restarting it lets the same store recover.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
use mcp_session::{Clock, Config, Identity, ManualClock, SessionError, SessionManager, StoreError};
use redis_server::RedisServer;
use redis_stores::replica;

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["admin", "reader"])
}

fn bob() -> Identity {
    Identity::new("bob", "Bob", ["reader"])
}

fn config() -> Config {
    Config::default()
        .timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(25))
}

/// Two replicas: independent managers, each with its own connection, sharing
/// one Redis and (for the test) one clock.
async fn replicas(
    server: &RedisServer,
    prefix: &str,
) -> (
    SessionManager<RedisStore>,
    SessionManager<RedisStore>,
    ManualClock,
) {
    let clock = ManualClock::starting_now();
    let a = replica(server, prefix, Duration::from_secs(2)).await;
    let b = replica(server, prefix, Duration::from_secs(2)).await;
    (
        SessionManager::with_clock(a, config(), clock.clone()),
        SessionManager::with_clock(b, config(), clock.clone()),
        clock,
    )
}

fn not_found<T: std::fmt::Debug>(result: Result<T, SessionError>) -> bool {
    matches!(result, Err(SessionError::NotFound))
}

#[tokio::test]
async fn a_session_created_on_one_replica_works_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b, _clock) = replicas(&server, "replicas:shared:").await;

    let session = a.create(&alice()).await.unwrap();
    let seen = b.refresh(session.id(), &alice()).await.unwrap();
    assert_eq!(seen.identity_id(), "alice");
    assert!(seen.identity().roles().contains("admin"));
    assert_eq!(seen.created_at(), session.created_at());
    assert!(b.get(session.id(), &alice()).await.is_ok());
    // The owner binding holds across replicas.
    assert!(not_found(b.refresh(session.id(), &bob()).await));
    assert!(not_found(b.get(session.id(), &bob()).await));

    // Deleted through one: not found through the other.
    b.delete_any_owner(session.id()).await.unwrap();
    assert!(not_found(a.refresh(session.id(), &alice()).await));
    assert!(not_found(a.get_any_owner(session.id()).await));
    assert!(not_found(a.delete_any_owner(session.id()).await));

    // And the other way round.
    let session = b.create(&bob()).await.unwrap();
    assert!(a.refresh(session.id(), &bob()).await.is_ok());
    a.delete(session.id(), &bob()).await.unwrap();
    assert!(not_found(b.refresh(session.id(), &bob()).await));
}

#[tokio::test]
async fn idle_expiry_and_lifetime_cap_hold_across_replicas() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b, clock) = replicas(&server, "replicas:expiry:").await;

    // Refreshes on either replica slide the same expiry ...
    let session = a.create(&alice()).await.unwrap();
    let idle = a.create(&alice()).await.unwrap();
    for step in 0..3 {
        clock.advance(Duration::from_secs(8)); // 8, 16, 24 s: each within 10 s idle
        let replica = if step % 2 == 0 { &b } else { &a };
        let s = replica.refresh(session.id(), &alice()).await.unwrap();
        assert_eq!(s.last_access(), clock.now());
    }
    // ... never past the 25 s lifetime cap, on either replica.
    assert_eq!(
        a.get_any_owner(session.id()).await.unwrap().expires_at(),
        session.deadline()
    );
    clock.advance(Duration::from_millis(999)); // 24.999 s
    assert!(b.get_any_owner(session.id()).await.is_ok());
    clock.advance(Duration::from_millis(1)); // 25 s
    assert!(not_found(a.refresh(session.id(), &alice()).await));
    assert!(not_found(b.refresh(session.id(), &alice()).await));
    assert!(not_found(b.get_any_owner(session.id()).await));

    // The session nobody refreshed idled out at 10 s, for both.
    assert!(not_found(a.get_any_owner(idle.id()).await));
    assert!(not_found(b.refresh(idle.id(), &alice()).await));

    // Idle expiry after a refresh on the other replica.
    let fresh = b.create(&bob()).await.unwrap();
    clock.advance(Duration::from_secs(5));
    a.refresh(fresh.id(), &bob()).await.unwrap();
    clock.advance(Duration::from_secs(9));
    assert!(
        b.refresh(fresh.id(), &bob()).await.is_ok(),
        "slid by the other replica"
    );
    clock.advance(Duration::from_secs(10));
    assert!(not_found(a.get_any_owner(fresh.id()).await));
    assert!(not_found(b.get_any_owner(fresh.id()).await));
}

/// Parses `INFO commandstats` into command → calls.
fn command_calls(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn the_hot_path_is_one_command_per_request() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b, clock) = replicas(&server, "replicas:roundtrips:").await;
    let session = a.create(&alice()).await.unwrap();
    // Warm up both connections (scripts are preloaded at connect anyway).
    a.refresh(session.id(), &alice()).await.unwrap();
    b.refresh(session.id(), &alice()).await.unwrap();

    const N: u64 = 50;
    server.cli(&["CONFIG", "RESETSTAT"]);
    let monitor = server.monitor();
    for i in 0..N {
        clock.advance(Duration::from_millis(1));
        let replica = if i % 2 == 0 { &a } else { &b };
        replica.refresh(session.id(), &alice()).await.unwrap();
    }
    let lines = monitor.stop();
    let calls = command_calls(&server.cli(&["INFO", "commandstats"]));

    // Exactly N commands from clients, all of them EVALSHA ...
    let from_clients: Vec<&String> = lines.iter().filter(|l| !l.contains(" lua]")).collect();
    let evalsha = from_clients
        .iter()
        .filter(|l| l.contains("\"EVALSHA\""))
        .count();
    assert_eq!(evalsha as u64, N, "{from_clients:#?}");
    assert_eq!(from_clients.len() as u64, N, "{from_clients:#?}");
    // ... each of which ran GET, SETRANGE and PEXPIRE inside the script.
    assert_eq!(calls.get("evalsha"), Some(&N), "{calls:?}");
    for inner in ["get", "setrange", "pexpire"] {
        assert_eq!(calls.get(inner), Some(&N), "{inner}: {calls:?}");
    }
    let others: Vec<&String> = calls
        .keys()
        .filter(|k| {
            ![
                "evalsha", "get", "setrange", "pexpire", "info", "monitor", "echo",
            ]
            .contains(&k.as_str())
                && !k.starts_with("config")
        })
        .collect();
    assert!(others.is_empty(), "unexpected commands: {calls:?}");
    println!("hot path: {N} refresh calls -> {evalsha} client commands (EVALSHA); commandstats {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_fast_and_the_same_store_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let margin = Duration::from_millis(250);
    let store = replica(&server, "replicas:fault:", timeout).await;
    let manager = SessionManager::new(store, Config::default());
    let session = manager.create(&alice()).await.unwrap();

    // Requests keep flowing in the background throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = {
        let (manager, stop, id) = (manager.clone(), stop.clone(), session.id().clone());
        tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                match manager.refresh(&id, &alice()).await {
                    Ok(_) => ok += 1,
                    Err(SessionError::Store(e)) => {
                        assert!(e.is_transient(), "{e:?}");
                        failed += 1;
                    }
                    Err(SessionError::NotFound) => ok += 1, // after the restart
                    Err(other) => panic!("{other:?}"),
                }
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(manager.refresh(session.id(), &alice()).await.is_ok());

    tokio::task::block_in_place(|| server.kill());

    // Every kind of call fails with a transient store error, within the timeout.
    for round in 0..10 {
        let started = Instant::now();
        let result = manager.refresh(session.id(), &alice()).await;
        let elapsed = started.elapsed();
        match result {
            Err(SessionError::Store(StoreError::Timeout(_) | StoreError::Unavailable(_))) => {}
            other => panic!("round {round}: expected a store error, got {other:?}"),
        }
        assert!(
            elapsed < timeout + margin,
            "round {round}: took {elapsed:?}"
        );
        println!("down, round {round}: {result:?} after {elapsed:?}");
    }
    let started = Instant::now();
    assert!(
        matches!(manager.create(&bob()).await, Err(SessionError::Store(e)) if e.is_transient())
    );
    assert!(
        matches!(manager.get_any_owner(session.id()).await, Err(SessionError::Store(e)) if e.is_transient())
    );
    assert!(
        matches!(manager.delete_any_owner(session.id()).await, Err(SessionError::Store(e)) if e.is_transient())
    );
    assert!(
        started.elapsed() < 3 * (timeout + margin),
        "took {:?}",
        started.elapsed()
    );

    // A new store cannot even be built while Redis is down: fail fast.
    let started = Instant::now();
    let err = RedisStore::connect_with_config(
        &server.url(),
        RedisStoreConfig::default().connect_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1) + margin);

    // Restart on the same port: the same store recovers, no restart needed.
    tokio::task::block_in_place(|| server.restart());
    let recovered_by = Instant::now() + Duration::from_secs(10);
    loop {
        match manager.refresh(session.id(), &alice()).await {
            // No persistence: the old session is gone, and the store says so.
            Err(SessionError::NotFound) => break,
            Err(SessionError::Store(e)) if e.is_transient() => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < recovered_by, "the store never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = manager.create(&alice()).await.unwrap();
    assert!(manager.refresh(fresh.id(), &alice()).await.is_ok());
    manager.delete_any_owner(fresh.id()).await.unwrap();

    stop.store(true, Ordering::SeqCst);
    let (ok, failed, slowest) = flow.await.expect("the request loop panicked");
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    assert!(
        slowest < timeout + margin,
        "a background request took {slowest:?}"
    );
    println!("background requests: {ok} answered, {failed} failed fast, slowest {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_and_the_same_store_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let margin = Duration::from_millis(250);
    let store = replica(&server, "replicas:hung:", timeout).await;
    let manager = SessionManager::new(store, Config::default());
    let session = manager.create(&alice()).await.unwrap();

    server.pause();
    for round in 0..5 {
        let started = Instant::now();
        let result = manager.refresh(session.id(), &alice()).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(SessionError::Store(ref e)) if e.is_transient()),
            "round {round}: {result:?}"
        );
        assert!(
            elapsed < timeout + margin,
            "round {round}: took {elapsed:?}"
        );
        println!("hung, round {round}: {result:?} after {elapsed:?}");
    }
    let started = Instant::now();
    assert!(
        matches!(manager.create(&bob()).await, Err(SessionError::Store(e)) if e.is_transient())
    );
    assert!(
        started.elapsed() < timeout + margin,
        "create took {:?}",
        started.elapsed()
    );
    server.resume();

    // The session survived (the server was only frozen) and is served again.
    let recovered_by = Instant::now() + Duration::from_secs(10);
    loop {
        match manager.refresh(session.id(), &alice()).await {
            Ok(s) => {
                assert_eq!(s.identity_id(), "alice");
                break;
            }
            Err(SessionError::Store(e)) if e.is_transient() => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < recovered_by, "the store never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Answers are not mixed up after the timeouts: other sessions read right.
    let other = manager.create(&bob()).await.unwrap();
    for _ in 0..20 {
        assert_eq!(
            manager
                .refresh(other.id(), &bob())
                .await
                .unwrap()
                .identity_id(),
            "bob"
        );
        assert_eq!(
            manager
                .refresh(session.id(), &alice())
                .await
                .unwrap()
                .identity_id(),
            "alice"
        );
    }
}
