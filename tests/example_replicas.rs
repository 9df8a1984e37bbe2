//! Two processes of the example server (`cargo run --example server
//! --all-features -- --redis-url …`), on different ports, sharing one `redis-server` that this
//! test starts: each serves the other's sessions, and a session terminated
//! on one is gone on the other; roles changed and sessions revoked through
//! one replica's admin tools take effect on the other's next request.

#[path = "support/example_server.rs"]
mod example_server;
#[path = "support/mcp_http.rs"]
mod mcp_http;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::process::Command;

use example_server::{example_binary, Replica};
use mcp_http::{answer, call_tool, delete, initialize, post_as, tool_json, whoami};
use redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn replica(redis_url: &str) -> Replica {
    Replica::start(&["--redis-url", redis_url])
}

#[tokio::test]
async fn two_server_processes_share_sessions_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = replica(&redis.url());
    let b = replica(&redis.url());
    assert_ne!(a.url, b.url);
    let client = reqwest::Client::new();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "replicas", "version": "1"}}});
    let res = post_as(&client, &a.url, "alice-token", None, init).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64);

    // Replica B serves the session replica A created.
    let res = whoami(&client, &b.url, "alice-token", &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    let who = tool_json(&answer(res).await);
    assert_eq!(who["identity_id"], "alice");
    assert_eq!(who["session_id"], id.as_str());
    assert_eq!(who["roles"], json!(["admin", "reader"]));

    // Terminated through B, gone on A.
    let status = delete(&client, &b.url, "alice-token", &id).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        whoami(&client, &a.url, "alice-token", &id).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn roles_and_revocations_reach_every_replica_on_the_next_request() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = replica(&redis.url());
    let b = replica(&redis.url());
    let client = reqwest::Client::new();
    let (alice, bob) = ("alice-token", "bob-token");
    let alice_session = initialize(&client, &a.url, alice).await;
    let bob_session = initialize(&client, &b.url, bob).await;
    let echo = json!({"text": "hi"});

    // Bob is a reader: refused, with the role named.
    let (status, failed, text) = call_tool(
        &client,
        &b.url,
        bob,
        &bob_session,
        "admin_echo",
        echo.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(failed && text.contains("`admin`"), "{text}");
    let (_, failed, text) = call_tool(
        &client,
        &b.url,
        bob,
        &bob_session,
        "set_roles",
        json!({"identity_id": "bob", "roles": ["admin"]}),
    )
    .await;
    assert!(
        failed && text.contains("`admin`"),
        "bob cannot promote himself: {text}"
    );

    // Alice (admin) promotes him through replica A; his very next call on B works.
    let (_, failed, text) = call_tool(
        &client,
        &a.url,
        alice,
        &alice_session,
        "set_roles",
        json!({"identity_id": "bob", "roles": ["admin", "reader"]}),
    )
    .await;
    assert!(!failed, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        reply,
        json!({"identity_id": "bob", "roles": ["admin", "reader"]})
    );
    let (_, failed, text) = call_tool(
        &client,
        &b.url,
        bob,
        &bob_session,
        "admin_echo",
        echo.clone(),
    )
    .await;
    assert!(!failed && text == "hi", "{text}");

    // Alice demotes herself: her next admin_echo is refused, in the same
    // session, on this replica and on the other one.
    let (_, failed, text) = call_tool(
        &client,
        &a.url,
        alice,
        &alice_session,
        "set_roles",
        json!({"identity_id": "alice", "roles": ["reader"]}),
    )
    .await;
    assert!(!failed, "{text}");
    for url in [&a.url, &b.url] {
        let (_, failed, text) = call_tool(
            &client,
            url,
            alice,
            &alice_session,
            "admin_echo",
            echo.clone(),
        )
        .await;
        assert!(failed, "alice is no admin any more on {url}: {text}");
        let (_, _, who) = call_tool(&client, url, alice, &alice_session, "whoami", json!({})).await;
        let who: Value = serde_json::from_str(&who).unwrap();
        assert_eq!(who["roles"], json!(["reader"]));
    }

    // Bob (admin now) revokes his own sessions, one on each replica.
    let other_bob_session = initialize(&client, &a.url, bob).await;
    let (_, failed, text) = call_tool(
        &client,
        &b.url,
        bob,
        &bob_session,
        "revoke_sessions",
        json!({"identity_id": "bob"}),
    )
    .await;
    assert!(!failed, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"terminated": 2})
    );
    for url in [&a.url, &b.url] {
        for session in [&bob_session, &other_bob_session] {
            let (status, _, _) = call_tool(&client, url, bob, session, "whoami", json!({})).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
    // A new session works, and alice's was untouched.
    let fresh = initialize(&client, &b.url, bob).await;
    let (status, failed, _) = call_tool(&client, &a.url, bob, &fresh, "whoami", json!({})).await;
    assert!(status == StatusCode::OK && !failed);
    let (status, _, _) =
        call_tool(&client, &b.url, alice, &alice_session, "whoami", json!({})).await;
    assert_eq!(status, StatusCode::OK);
}

/// The example's cap flags, seen at work over HTTP (in memory, both id modes).
#[tokio::test]
async fn the_cap_flags_are_enforced() {
    let client = reqwest::Client::new();
    for mode in ["mint", "adopt"] {
        let reject = Replica::start(&[
            "--mode",
            mode,
            "--max-sessions-per-identity",
            "1",
            "--identity-limit",
            "reject",
        ]);
        let first = initialize(&client, &reject.url, "alice-token").await;
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "caps", "version": "1"}}});
        let res = post_as(&client, &reject.url, "alice-token", None, init.clone()).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{mode}");
        let (status, _, _) = call_tool(
            &client,
            &reject.url,
            "alice-token",
            &first,
            "whoami",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{mode}: the first session stays");

        let evict = Replica::start(&["--mode", mode, "--max-sessions-per-identity", "1"]);
        let first = initialize(&client, &evict.url, "alice-token").await;
        initialize(&client, &evict.url, "alice-token").await;
        let (status, _, _) = call_tool(
            &client,
            &evict.url,
            "alice-token",
            &first,
            "whoami",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{mode}: evicted by default");

        let global = Replica::start(&["--mode", mode, "--max-sessions", "1"]);
        initialize(&client, &global.url, "alice-token").await;
        let res = post_as(&client, &global.url, "bob-token", None, init).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode}");
    }
    // Bad flags: a message and a non-zero exit.
    for bad in [&["--identity-limit", "maybe"][..], &["--max-sessions", "0"]] {
        let out = Command::new(example_binary()).args(bad).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(bad[0]));
    }
}
