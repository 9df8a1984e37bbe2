//! `RedisStore`s for store test suites: one standalone server and one
//! 3-master Cluster per test binary (started on first use, killed by their
//! watchdogs when the process exits); each test keeps apart by key prefix.
//! Stores made under the same name share their keys (replicas of one
//! test); [`unique`] names one that shares nothing (a property test's case).
//! [`replica`] connects to a server the test started itself.
//!
//! Include it (after `redis_server.rs`, as `mod redis_server`) with
//! `#[path = "support/redis_stores.rs"] mod redis;`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use mcp_session::store::redis::{RedisStore, RedisStoreConfig};

use super::redis_server::{RedisCluster, RedisServer};

static STANDALONE: OnceLock<Option<RedisServer>> = OnceLock::new();
static CLUSTER: OnceLock<Option<RedisCluster>> = OnceLock::new();
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// `test` and a number no other call returns: a store made under this name
/// shares no key with any other store of the binary.
pub fn unique(test: &str) -> String {
    format!("{test}:{}", CALLS.fetch_add(1, Ordering::SeqCst))
}

fn config(test: &str) -> RedisStoreConfig {
    RedisStoreConfig::default()
        .key_prefix(format!("tests:{test}:{}:", std::process::id()))
        // Generous: the machine running the suite may be busy.
        .command_timeout(Duration::from_secs(5))
}

/// One replica's store on `server` (a connection of its own): keys under
/// `prefix`, each command timed out after `timeout`. Replicas of one test
/// share a prefix; a test that starts its own server picks it.
pub async fn replica(server: &RedisServer, prefix: &str, timeout: Duration) -> RedisStore {
    let config = RedisStoreConfig::default()
        .key_prefix(prefix)
        .command_timeout(timeout);
    RedisStore::connect_with_config(&server.url(), config)
        .await
        .unwrap()
}

/// A store on the binary's standalone server, `None` (after a loud notice)
/// if `redis-server` is missing outside CI.
pub async fn standalone(test: &str) -> Option<RedisStore> {
    let server = tokio::task::spawn_blocking(|| {
        STANDALONE
            .get_or_init(RedisServer::start)
            .as_ref()
            .map(RedisServer::url)
    })
    .await
    .unwrap()?;
    let store = RedisStore::connect_with_config(&server, config(test))
        .await
        .unwrap();
    assert!(!store.is_cluster());
    Some(store)
}

/// A store on the binary's Cluster.
pub async fn cluster(test: &str) -> Option<RedisStore> {
    let urls = tokio::task::spawn_blocking(|| {
        CLUSTER
            .get_or_init(RedisCluster::start)
            .as_ref()
            .map(RedisCluster::urls)
    })
    .await
    .unwrap()?;
    let store = RedisStore::connect_cluster_with_config(urls, config(test))
        .await
        .unwrap();
    assert!(store.is_cluster());
    Some(store)
}
