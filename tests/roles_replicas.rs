//! Role invalidation and revocation across replicas: two managers, each
//! with its own `RedisStore` connection (and subscriber), sharing one
//! directory and one `redis-server` (or a 3-master Cluster) that this test
//! starts. The cached roles are allowed to live an hour here, so whatever a
//! replica sees fresh came through the notice channel.

#[path = "support/directory.rs"]
mod directory;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;

use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::Directory;
use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
use mcp_session::{Config, Identity, SessionError, SessionManager};
use redis_server::{RedisCluster, RedisServer};
use redis_stores::replica;

const HOUR: Duration = Duration::from_secs(3600);

fn alice() -> Identity {
    Identity::new::<&str>("alice", "Alice", [])
}

const TIMEOUT: Duration = Duration::from_millis(500);

fn manager(store: RedisStore, directory: &Arc<Directory>) -> SessionManager<RedisStore> {
    SessionManager::builder(store)
        .config(Config::default().roles_max_age(HOUR))
        .role_source(directory.clone())
        .build()
}

/// Waits until the manager's notice channel is up: its cache then keeps
/// what it looks up (before that every call is a lookup).
async fn until_cached(manager: &SessionManager<RedisStore>, directory: &Directory) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        manager.roles(&alice()).await.unwrap();
        let before = directory.lookups();
        manager.roles(&alice()).await.unwrap();
        if directory.lookups() == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the notice channel never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn invalidations_reach_the_other_replica_at_once(a: RedisStore, b: RedisStore) {
    let directory = Arc::new(Directory::with([("alice", &["admin"])]));
    let (a, b) = (manager(a, &directory), manager(b, &directory));
    until_cached(&a, &directory).await;
    until_cached(&b, &directory).await;
    let mut delays = Vec::new();
    for round in 0..20 {
        let roles = roles_of(if round % 2 == 0 {
            &["reader"]
        } else {
            &["admin"]
        });
        directory.set("alice", &names(&roles));
        // Not yet told: both replicas still hold the previous roles.
        assert_ne!(b.roles(&alice()).await.unwrap(), roles);
        let started = Instant::now();
        a.invalidate_roles("alice").await.unwrap();
        let took = started.elapsed();
        // `Ok` means every subscribed replica applied it: the very next
        // lookup anywhere sees the change.
        assert_eq!(b.roles(&alice()).await.unwrap(), roles, "round {round}");
        assert_eq!(a.roles(&alice()).await.unwrap(), roles, "round {round}");
        delays.push(took);
    }
    delays.sort();
    eprintln!(
        "invalidate_roles (publish + every replica's acknowledgement): median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

fn names(roles: &mcp_session::Roles) -> Vec<&str> {
    roles.iter().map(|r| r.as_str()).collect()
}

fn roles_of(names: &[&str]) -> mcp_session::Roles {
    mcp_session::Roles::new(names.iter().copied())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_the_other_replica_standalone() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = replica(&server, "roles-standalone:", TIMEOUT).await;
    let b = replica(&server, "roles-standalone:", TIMEOUT).await;
    invalidations_reach_the_other_replica_at_once(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_the_other_replica_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let config = RedisStoreConfig::default()
        .key_prefix("{roles-cluster}:")
        .command_timeout(TIMEOUT);
    let mut urls = cluster.urls();
    let a = RedisStore::connect_cluster_with_config(urls.clone(), config.clone())
        .await
        .unwrap();
    // The other replica subscribes through another node: the publisher
    // counts the subscribers of every seed node.
    urls.rotate_left(1);
    let b = RedisStore::connect_cluster_with_config(urls, config)
        .await
        .unwrap();
    invalidations_reach_the_other_replica_at_once(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_on_one_replica_ends_the_sessions_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let directory = Arc::new(Directory::with([("alice", &["admin"])]));
    let a = replica(&server, "revoke:", TIMEOUT).await;
    let b = replica(&server, "revoke:", TIMEOUT).await;
    let (a, b) = (manager(a, &directory), manager(b, &directory));
    until_cached(&a, &directory).await;
    let sessions = [
        a.create(&alice()).await.unwrap(),
        a.create(&alice()).await.unwrap(),
    ];
    directory.set("alice", &[]);
    assert_eq!(b.revoke_sessions("alice").await.unwrap(), 2);
    for session in &sessions {
        let error = a.refresh(session.id(), &alice()).await.unwrap_err();
        assert!(matches!(error, SessionError::NotFound), "{error:?}");
    }
    // Revocation drops the cached roles everywhere too.
    assert!(a.roles(&alice()).await.unwrap().is_empty());
}

/// A healthy subscription stays up across its health checks: the cache
/// is not dropped every few seconds (a `PING` answered the pub/sub way must
/// count as an answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_subscription_keeps_the_cache() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let directory = Arc::new(Directory::with([("alice", &["admin"])]));
    let replica = manager(replica(&server, "healthy:", TIMEOUT).await, &directory);
    until_cached(&replica, &directory).await;
    let lookups = directory.lookups();
    tokio::time::sleep(Duration::from_millis(4_500)).await; // two health checks
    replica.roles(&alice()).await.unwrap();
    assert_eq!(directory.lookups(), lookups, "the cache was dropped");
}

/// A replica that was cut off from the channel may have missed
/// invalidations: once it is back it drops everything it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_replica_drops_what_it_cached() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let directory = Arc::new(Directory::with([("alice", &["admin"])]));
    let replica = manager(replica(&server, "outage:", TIMEOUT).await, &directory);
    until_cached(&replica, &directory).await;

    // Redis hangs; meanwhile the roles change and nobody can tell the replica.
    server.pause();
    directory.set("alice", &["reader"]);
    tokio::time::sleep(Duration::from_secs(3)).await; // > health check + timeout
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.roles(&alice()).await.unwrap().contains("admin") {
        assert!(
            Instant::now() < deadline,
            "the replica kept roles it cached before the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
