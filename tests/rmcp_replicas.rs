//! Stateful rmcp (adopt mode) on several replicas without sticky routing:
//! `mcp_session::rmcp::SessionStateStore` keeps rmcp's session states (the
//! client's `initialize` parameters) in Redis, so a replica that never saw
//! a session restores it.
//!
//! - The adapter itself, on two replicas (managers) sharing one Redis: a
//!   state stored on one is loaded on the other, under a key named by the
//!   id's digest; it is gone once the session ends (DELETE, revocation) on
//!   either replica, or once rmcp closes an expired session; it stays while
//!   the session lives elsewhere.
//! - Two example server processes (`--mode adopt --redis-url …`): requests
//!   of one session alternate between them, raw HTTP and with the official
//!   MCP Python SDK (tests/python/replicas_client.py, whose HTTP transport
//!   sends each request to the other replica). Without the adapter the
//!   second replica answers 404 to the first one's session.
//! - One process with the in-memory variant: rmcp restores a session its
//!   own keep-alive dropped while the layer still holds it (404 without).
//!
//! Needs `redis-server` (and `python3` with `mcp==2.3.0` for the SDK test):
//! without them the tests say so loudly and pass, except under `CI=true`.

#[path = "support/example_server.rs"]
mod example_server;
#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/mcp_http.rs"]
mod mcp_http;
#[path = "support/python_sdk.rs"]
mod python_sdk;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;

use std::sync::Arc;
use std::time::{Duration, Instant};

use example_server::Replica;
use mcp_session::rmcp::SessionStateStore;
use mcp_session::store::redis::RedisStore;
use mcp_session::{Config, Identity, ManualClock, SessionId, SessionManager};
use redis_server::RedisServer;
use reqwest::StatusCode;
use rmcp::model::{ClientCapabilities, Implementation, InitializeRequestParams};
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The adapter

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["reader"])
}

fn state(name: &str) -> SessionState {
    SessionState::new(InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new(name, "1"),
    ))
}

async fn client_name(states: &dyn SessionStore, id: &SessionId) -> Option<String> {
    states
        .load(&id.reveal())
        .await
        .unwrap()
        .map(|s| s.initialize_params.client_info.name)
}

/// Waits (at most 3 s) until `id`'s state is gone from `states`: an end's
/// `DEL` runs in the background.
async fn gone(states: &dyn SessionStore, id: &SessionId) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if client_name(states, id).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A replica: its own connection and manager, rmcp's states over them.
async fn replica(
    server: &RedisServer,
    prefix: &str,
    clock: &ManualClock,
) -> (SessionManager<RedisStore>, Arc<SessionStateStore>) {
    let store = redis_stores::replica(server, prefix, Duration::from_secs(2)).await;
    let config = Config::default()
        .timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(25));
    let manager = SessionManager::with_clock(store.clone(), config, clock.clone());
    let states = SessionStateStore::redis(&manager, &store);
    (manager, states)
}

#[tokio::test]
async fn states_move_between_replicas_and_end_with_their_session() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::starting_now();
    let (a, states_a) = replica(&server, "rr:", &clock).await;
    let (b, states_b) = replica(&server, "rr:", &clock).await;
    let (rmcp_a, rmcp_b): (&dyn SessionStore, &dyn SessionStore) = (&*states_a, &*states_b);

    // Stored by A's rmcp (after `initialize`), loaded by B's (a restore).
    let one = a.create(&alice()).await.unwrap();
    rmcp_a
        .store(&one.id().reveal(), &state("one"))
        .await
        .unwrap();
    assert_eq!(client_name(rmcp_b, one.id()).await.as_deref(), Some("one"));

    // One key, named by the digest (never the whole id), living no longer
    // than the session's lifetime cap.
    let keys = server.cli(&["--scan", "--pattern", "rr:rmcp:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys, [format!("rr:rmcp:{:016x}", one.id().digest())]);
    assert!(!keys[0].contains(&one.id().reveal()));
    let ttl: i64 = server.cli(&["pttl", keys[0]]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 25_000, "TTL {ttl} ms");

    // B's rmcp closes its copy (idle on B) while the session lives: kept.
    rmcp_b.delete(&one.id().reveal()).await.unwrap();
    assert_eq!(client_name(rmcp_a, one.id()).await.as_deref(), Some("one"));

    // Ended on B (DELETE): gone for A too.
    b.delete_any_owner(one.id()).await.unwrap();
    assert!(
        gone(rmcp_a, one.id()).await,
        "a deleted session's state is dropped"
    );

    // Stored by B, the identity's sessions revoked on A: gone.
    let two = a.create(&alice()).await.unwrap();
    let three = b.create(&alice()).await.unwrap();
    rmcp_b
        .store(&two.id().reveal(), &state("two"))
        .await
        .unwrap();
    rmcp_a
        .store(&three.id().reveal(), &state("three"))
        .await
        .unwrap();
    assert_eq!(client_name(rmcp_a, two.id()).await.as_deref(), Some("two"));
    assert_eq!(a.revoke_sessions("alice").await.unwrap(), 2);
    assert!(gone(rmcp_b, two.id()).await, "revoked: state dropped");
    assert!(gone(rmcp_b, three.id()).await, "revoked: state dropped");

    // Idle expiry is no event: the last rmcp to close its copy of the
    // expired session drops the state.
    let four = a.create(&alice()).await.unwrap();
    rmcp_a
        .store(&four.id().reveal(), &state("four"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    rmcp_b.delete(&four.id().reveal()).await.unwrap();
    assert_eq!(client_name(rmcp_a, four.id()).await, None);

    let left = server.cli(&["--scan", "--pattern", "rr:rmcp:*"]);
    assert_eq!(left.trim(), "", "every state is gone");
}

// ---------------------------------------------------------------------------
// Two example server processes

fn adopt_replica(redis: &RedisServer) -> Replica {
    Replica::start(&["--mode", "adopt", "--redis-url", &redis.url()])
}

/// POSTs a JSON-RPC message as `token`'s caller; the status, the session
/// id on the answer and the JSON-RPC answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let res = mcp_http::post_as(client, url, token, session, body).await;
    let status = res.status();
    let id = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (status, id, mcp_http::answer(res).await)
}

async fn rmcp_sessions(client: &reqwest::Client, replica: &Replica) -> u64 {
    let stats: Value = client
        .get(replica.stats_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["rmcp_sessions"].as_u64().unwrap()
}

/// Waits (at most 5 s) until neither replica's rmcp holds a session.
async fn rmcp_empty(client: &reqwest::Client, replicas: [&Replica; 2]) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let mut total = 0;
        for replica in replicas {
            total += rmcp_sessions(client, replica).await;
        }
        if total == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn rmcp_keys(redis: &RedisServer) -> Vec<String> {
    let keys = redis.cli(&["--scan", "--pattern", "mcp-session:rmcp:*"]);
    keys.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn adopt_replicas_serve_each_others_sessions_without_sticky_routing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (adopt_replica(&redis), adopt_replica(&redis));
    let client = reqwest::Client::new();
    let alice = "alice-token";

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "alternating", "version": "1"}}});
    let (status, id, _) = post(&client, &a.url, alice, None, init).await;
    assert_eq!(status, StatusCode::OK);
    let id = id.expect("Mcp-Session-Id");
    assert_ne!(id.len(), 64, "adopt mode: rmcp's own id ({id:.8}…)");

    // Every later request goes to the other replica than the one before.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(&client, &b.url, alice, Some(&id), note).await;
    assert_eq!(status, StatusCode::ACCEPTED, "B restored A's session");
    let digest = SessionId::parse_adopted(&id).unwrap().digest();
    assert_eq!(
        rmcp_keys(&redis),
        [format!("mcp-session:rmcp:{digest:016x}")]
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, answer) = post(&client, &a.url, alice, Some(&id), list).await;
    assert_eq!(status, StatusCode::OK);
    // whoami, the three admin tools, the four notes tools.
    assert_eq!(answer["result"]["tools"].as_array().map(Vec::len), Some(8));
    for (n, replica) in [&b, &a, &b].into_iter().enumerate() {
        let call = json!({"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}});
        let (status, _, answer) = post(&client, &replica.url, alice, Some(&id), call).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let who = mcp_http::tool_json(&answer);
        assert_eq!(who["identity_id"], "alice");
        assert_eq!(who["session_id"], id.as_str());
    }
    assert_eq!(rmcp_sessions(&client, &a).await, 1);
    assert_eq!(
        rmcp_sessions(&client, &b).await,
        1,
        "B holds a restored copy"
    );

    // Binding holds on the restored copy: bob gets the unknown-session 404.
    let call = json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let (status, _, _) = post(&client, &b.url, "bob-token", Some(&id), call.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // DELETE on B: gone on both, rmcp's copies closed on both, state dropped.
    let status = mcp_http::delete(&client, &b.url, alice, &id).await;
    assert!(status.is_success(), "{status}");
    for replica in [&a, &b] {
        let (status, _, _) = post(&client, &replica.url, alice, Some(&id), call.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert!(
        rmcp_empty(&client, [&a, &b]).await,
        "rmcp's copies on both replicas are closed"
    );
    assert_eq!(rmcp_keys(&redis), Vec::<String>::new(), "state deleted");
}

// ---------------------------------------------------------------------------
// The official Python SDK, its requests alternating between two replicas

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/replicas_client.py"
);

#[tokio::test]
async fn python_sdk_session_alternates_between_two_adopt_replicas() {
    if !python_sdk::available(
        "import mcp, mcp.client.streamable_http, httpx2; from mcp import Client",
        "PYTHON SDK REPLICAS CHECK",
    ) {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (adopt_replica(&redis), adopt_replica(&redis));
    python_sdk::run_checks(
        SCRIPT,
        &[&a.url, &b.url],
        Duration::from_secs(120),
        "Python SDK client alternating between two replicas",
    )
    .await;
    // The client ended its sessions (DELETE): nothing left anywhere.
    let client = reqwest::Client::new();
    assert!(rmcp_empty(&client, [&a, &b]).await);
    assert_eq!(rmcp_keys(&redis), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// One process: the in-memory variant

#[derive(Clone)]
struct Empty;

impl rmcp::ServerHandler for Empty {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(rmcp::model::ServerCapabilities::builder().build())
    }
}

/// rmcp behind the layer (adopt mode) with a keep-alive far shorter than
/// the layer's idle timeout, with or without in-memory states: after rmcp
/// dropped the idle session on its own, the status of the next request and
/// how many sessions rmcp holds then.
async fn after_rmcp_dropped_the_session(with_states: bool) -> (StatusCode, usize) {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    let manager = SessionManager::new(
        mcp_session::MokaStore::new(100),
        Config::default().timeout(Duration::from_secs(60)),
    );
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(Duration::from_millis(300));
    let sessions = Arc::new(sessions);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop.clone());
    if with_states {
        config.session_store = Some(SessionStateStore::in_memory(&manager));
    }
    let rmcp = StreamableHttpService::new(|| Ok(Empty), sessions.clone(), config);
    // Every token is alice.
    let layer = mcp_session::SessionLayer::new(manager)
        .id_mode(mcp_session::IdMode::Adopt)
        .resolve_identity(mcp_session::BearerToken::new(|_: &str| Some(alice())));
    let mcp = tower::ServiceBuilder::new().layer(layer).service(rmcp);
    let app = axum::Router::new().nest_service("/mcp", mcp);
    let addr = in_process::serve_until_cancelled(app, &stop).await;
    let url = format!("http://{addr}/mcp");

    let client = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "idle", "version": "1"}}});
    let (status, id, _) = post(&client, &url, "any", None, init).await;
    assert_eq!(status, StatusCode::OK);
    let id = id.unwrap();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(&client, &url, "any", Some(&id), note).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // rmcp's keep-alive ends its idle session; the layer's does not.
    let started = Instant::now();
    while !sessions.sessions.read().await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "rmcp drops its idle session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let (status, _, _) = post(&client, &url, "any", Some(&id), ping).await;
    let held = sessions.sessions.read().await.len();
    stop.cancel();
    (status, held)
}

#[tokio::test]
async fn in_memory_states_restore_a_session_rmcp_dropped_on_its_own() {
    assert_eq!(
        after_rmcp_dropped_the_session(true).await,
        (StatusCode::OK, 1),
        "restored from the in-memory state"
    );
    assert_eq!(
        after_rmcp_dropped_the_session(false).await.0,
        StatusCode::NOT_FOUND,
        "without states, rmcp's own 404 for a session the layer still holds"
    );
}
