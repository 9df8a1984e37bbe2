//! No whole session id ever reaches Redis (issue 13, item 8): not in a key
//! name, an index member, a value, nor any command argument, so `MONITOR`,
//! `SLOWLOG`, keyspace notifications, `ZRANGE` of an identity's index or an
//! RDB dump never show a bearer secret.
//!
//! - Through the example server (`--redis-url`, both id modes): `initialize`,
//!   a tool call (the `touch` hot path) and `DELETE`, under `MONITOR`, and a
//!   scan of everything stored after the create.
//! - In process, the paths the example does not take on its own: an
//!   eviction at the per-identity cap, `update`, and a revocation.

#[path = "support/example_server.rs"]
mod example_server;
#[path = "support/mcp_http.rs"]
mod mcp_http;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use example_server::Replica;
use mcp_http::{delete, initialize, post_as, whoami};
use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
use mcp_session::{Config, Identity, IdentityLimitPolicy, Session, SessionManager};
use redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::json;

const ALICE: &str = "alice-token";

/// Everything stored under any key: each key name, then by its type every
/// member and score (zset), member (set), field and value (hash), element
/// (list) or the value (string).
fn everything_stored(redis: &RedisServer) -> Vec<String> {
    let mut seen = Vec::new();
    let keys = redis.cli(&["--scan"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        seen.push(format!("key {key}"));
        let kind = redis.cli(&["TYPE", key]);
        let content = match kind.trim() {
            "string" => redis.cli(&["GET", key]),
            "zset" => redis.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            "set" => redis.cli(&["SMEMBERS", key]),
            "hash" => redis.cli(&["HGETALL", key]),
            "list" => redis.cli(&["LRANGE", key, "0", "-1"]),
            other => panic!("unexpected type {other:?} of {key}"),
        };
        seen.push(format!("{} {key}: {content}", kind.trim()));
    }
    seen
}

fn assert_nowhere(id: &str, lines: &[String], what: &str) {
    assert!(id.len() >= 32, "a real id: {id}");
    let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(id)).collect();
    assert!(leaks.is_empty(), "{what}: the whole id {id} in {leaks:#?}");
}

#[tokio::test]
async fn the_example_server_never_sends_a_whole_id_to_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let client = reqwest::Client::new();
    for mode in ["mint", "adopt"] {
        let server = Replica::start(&["--mode", mode, "--redis-url", &redis.url()]);
        let monitor = redis.monitor();

        let id = initialize(&client, &server.url, ALICE).await;

        // Stored: the session, its index entries (and in adopt mode rmcp's
        // state), none holding the id.
        let stored = everything_stored(&redis);
        assert!(
            stored.iter().filter(|l| l.starts_with("key ")).count() >= 3,
            "{mode}: session, identity index, global index: {stored:#?}"
        );
        assert_nowhere(&id, &stored, &format!("{mode}: stored after create"));

        let res = whoami(&client, &server.url, ALICE, &id).await;
        assert_eq!(res.status(), StatusCode::OK, "{mode}");
        let _ = res.bytes().await;
        let status = delete(&client, &server.url, ALICE, &id).await;
        assert!(status.is_success(), "{mode}: {status}");
        let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
        let res = post_as(&client, &server.url, ALICE, Some(&id), list).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{mode}: deleted");

        let commands = monitor.stop();
        // The session really went through Redis: the scripts (create, the
        // two indexes, touch, delete) and the writes they made.
        let scripts = commands
            .iter()
            .filter(|l| l.contains("\"EVALSHA\""))
            .count();
        assert!(scripts >= 5, "{mode}: {commands:#?}");
        assert!(
            commands.iter().any(|l| l.contains(" lua] \"SET\"")),
            "{mode}: {commands:#?}"
        );
        assert_nowhere(&id, &commands, &format!("{mode}: MONITOR"));
        assert_nowhere(
            &id,
            &everything_stored(&redis),
            &format!("{mode}: stored at the end"),
        );
        redis.cli(&["FLUSHALL"]);
    }
}

#[tokio::test]
async fn evictions_updates_and_revocations_never_send_a_whole_id() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect_with_config(
        &redis.url(),
        RedisStoreConfig::default().command_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let config = Config::default()
        .max_sessions_per_identity(1)
        .identity_limit(IdentityLimitPolicy::EvictOldest);
    let manager = SessionManager::new(store, config);
    let alice = Identity::new("alice", "Alice", ["reader"]);

    let monitor = redis.monitor();
    let first = manager.create(&alice).await.unwrap();
    let (second, outcome) = manager.create_reporting(&alice).await.unwrap();
    assert_eq!(outcome.evicted.len(), 1);
    assert!(
        outcome.evicted[0].is(first.id()),
        "the eviction is reported"
    );
    assert!(manager
        .get_any_owner(first.id())
        .await
        .unwrap_err()
        .is_not_found());
    let renamed = Session::from_parts(
        second.id().clone(),
        Identity::new("alice", "Alice B.", ["reader", "writer"]),
        second.created_at(),
        second.last_access(),
        second.idle_timeout(),
        second.deadline(),
    );
    manager.update(&renamed).await.unwrap();
    assert_eq!(
        manager
            .get_any_owner(second.id())
            .await
            .unwrap()
            .identity_name(),
        "Alice B."
    );
    let stored = everything_stored(&redis);
    assert_eq!(manager.revoke_sessions("alice").await.unwrap(), 1);
    let commands = monitor.stop();

    assert!(
        commands.iter().any(|l| l.contains("\"GETDEL\"")),
        "{commands:#?}"
    );
    for id in [first.id().reveal(), second.id().reveal()] {
        assert_nowhere(&id, &stored, "stored");
        assert_nowhere(&id, &commands, "MONITOR");
    }
}
