//! Roles from a `RoleSource` through the layer, over real HTTP on 127.0.0.1:
//! the max-age bound (under a `ManualClock`), invalidation, single flight,
//! failing closed, revocation, the cache's bound — the same in both
//! protocol eras. The callers' tokens carry no roles: only the directory
//! can grant them.

#[path = "support/directory.rs"]
mod directory;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::{Extension, Json, Router};
use directory::Directory;
use http::StatusCode;
use mcp_session::{
    Config, Identity, ManualClock, MokaStore, Roles, Session, SessionLayer, SessionManager,
};
use serde_json::{json, Value};
use test_auth::{bearer, without_roles};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#;
const MAX_AGE: Duration = Duration::from_secs(60);

async fn echo(session: Option<Extension<Session>>, extensions: http::Extensions) -> Json<Value> {
    let roles = Roles::of(&extensions).map(|roles| {
        roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect::<Vec<_>>()
    });
    Json(json!({"roles": roles, "session": session.is_some()}))
}

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    manager: SessionManager,
    directory: Arc<Directory>,
    clock: ManualClock,
}

impl Server {
    async fn start(config: Config, directory: Directory) -> Server {
        let directory = Arc::new(directory);
        let clock = ManualClock::starting_now();
        let manager = SessionManager::builder(MokaStore::new(10_000))
            .config(config)
            .clock(clock.clone())
            .role_source(directory.clone())
            .build();
        let app = Router::new()
            .route("/mcp", any(echo))
            // Tokens name the caller, never its roles.
            .layer(SessionLayer::new(manager.clone()).resolve_identity(bearer(without_roles)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            addr,
            client: reqwest::Client::new(),
            manager,
            directory,
            clock,
        }
    }

    async fn default() -> Server {
        let directory = Directory::with([("alice", &["admin", "reader"]), ("bob", &["reader"])]);
        Self::start(Config::default().roles_max_age(MAX_AGE), directory).await
    }

    /// POST as `user`, with a session id (handshake era) or without one
    /// (2026-07-28).
    async fn post(
        &self,
        user: &str,
        session: Option<&str>,
        body: &str,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = self
            .client
            .post(format!("http://{}/mcp", self.addr))
            .bearer_auth(user)
            .header("content-type", "application/json")
            .body(body.to_string());
        req = match session {
            Some(id) => req
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-11-25"),
            None => req.header("mcp-protocol-version", "2026-07-28"),
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body: Value = res.json().await.unwrap();
        (status, headers, body)
    }

    async fn initialize(&self, user: &str) -> String {
        let res = self
            .client
            .post(format!("http://{}/mcp", self.addr))
            .bearer_auth(user)
            .header("content-type", "application/json")
            .body(INIT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The roles the handler saw, with a session and without one.
    async fn roles_in_both_eras(&self, user: &str, session: &str) -> (Value, Value) {
        let (status, _, with) = self.post(user, Some(session), CALL).await;
        assert_eq!(status, StatusCode::OK, "{with}");
        assert_eq!(with["session"], true);
        let (status, _, without) = self.post(user, None, CALL).await;
        assert_eq!(status, StatusCode::OK, "{without}");
        assert_eq!(without["session"], false);
        (with["roles"].clone(), without["roles"].clone())
    }
}

#[tokio::test]
async fn roles_come_from_the_source_and_are_never_older_than_max_age() {
    let server = Server::default().await;
    let session = server.initialize("alice").await;
    let admin = json!(["admin", "reader"]);
    assert_eq!(
        server.roles_in_both_eras("alice", &session).await,
        (admin.clone(), admin.clone())
    );
    let lookups = server.directory.lookups();
    assert_eq!(
        lookups, 1,
        "one lookup serves the session and the sessionless requests"
    );

    // Demoted in the directory, nobody invalidates: the cached roles may be
    // used until they are MAX_AGE old, and not a millisecond longer.
    server.directory.set("alice", &["reader"]);
    server.clock.advance(MAX_AGE - Duration::from_millis(1));
    assert_eq!(
        server.roles_in_both_eras("alice", &session).await,
        (admin.clone(), admin)
    );
    assert_eq!(server.directory.lookups(), lookups);
    server.clock.advance(Duration::from_millis(1));
    let reader = json!(["reader"]);
    assert_eq!(
        server.roles_in_both_eras("alice", &session).await,
        (reader.clone(), reader)
    );
    assert_eq!(server.directory.lookups(), lookups + 1);
}

#[tokio::test]
async fn invalidation_takes_effect_on_the_next_request() {
    let server = Server::default().await;
    let session = server.initialize("bob").await;
    let reader = json!(["reader"]);
    assert_eq!(
        server.roles_in_both_eras("bob", &session).await,
        (reader.clone(), reader)
    );

    server.directory.set("bob", &["admin", "reader"]);
    server.manager.invalidate_roles("bob").await.unwrap();
    let admin = json!(["admin", "reader"]);
    assert_eq!(
        server.roles_in_both_eras("bob", &session).await,
        (admin.clone(), admin)
    );
}

#[tokio::test]
async fn concurrent_requests_of_one_identity_share_one_lookup() {
    let server = Arc::new(Server::default().await);
    server.directory.delay(Duration::from_millis(300));
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { server.post("alice", None, CALL).await })
        })
        .collect();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["roles"], json!(["admin", "reader"]));
    }
    assert_eq!(server.directory.lookups(), 1);
}

#[tokio::test]
async fn a_failing_source_fails_closed_and_recovers() {
    let server = Server::default().await;
    let session = server.initialize("alice").await;
    server.roles_in_both_eras("alice", &session).await;

    // The cached roles are too old now and the directory is down: the
    // request is refused, never served with the old roles.
    server.clock.advance(MAX_AGE);
    server.directory.fail(true);
    for id in [Some(session.as_str()), None] {
        let (status, headers, body) = server.post("alice", id, CALL).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(body["error"]["code"], -32006);
        assert_eq!(body["id"], Value::Null);
    }
    // An initialize is refused too (no session is created).
    let res = server
        .client
        .post(format!("http://{}/mcp", server.addr))
        .bearer_auth("alice")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("mcp-session-id").is_none());

    server.directory.fail(false);
    let admin = json!(["admin", "reader"]);
    assert_eq!(
        server.roles_in_both_eras("alice", &session).await,
        (admin.clone(), admin)
    );
}

#[tokio::test]
async fn a_slow_source_times_out_with_503() {
    let directory = Directory::with([("alice", &["admin"])]);
    directory.delay(Duration::from_secs(5));
    let config = Config::default().roles_lookup_timeout(Duration::from_millis(100));
    let server = Server::start(config, directory).await;
    let started = std::time::Instant::now();
    let (status, _, body) = server.post("alice", None, CALL).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], -32006);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn revoking_ends_every_session_of_the_identity_and_nobody_elses() {
    let server = Server::default().await;
    let alice = [
        server.initialize("alice").await,
        server.initialize("alice").await,
    ];
    let bob = server.initialize("bob").await;
    assert_eq!(server.manager.revoke_sessions("alice").await.unwrap(), 2);
    for id in &alice {
        let (status, _, body) = server.post("alice", Some(id), CALL).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], -32001);
    }
    assert_eq!(server.post("bob", Some(&bob), CALL).await.0, StatusCode::OK);
    // Alice can start over.
    let again = server.initialize("alice").await;
    assert_eq!(
        server.post("alice", Some(&again), CALL).await.0,
        StatusCode::OK
    );
    assert_eq!(server.manager.revoke_sessions("nobody").await.unwrap(), 0);
}

#[tokio::test]
async fn the_role_cache_is_bounded() {
    let config = Config::default().max_cached_identities(32);
    let server = Server::start(config, Directory::default()).await;
    for n in 0..200 {
        let (status, _, _) = server.post(&format!("user{n}"), None, CALL).await;
        assert_eq!(status, StatusCode::OK);
        assert!(server.manager.cached_identities() <= 32);
    }
    assert!(server.manager.cached_identities() > 0);
}

#[tokio::test]
async fn without_a_source_the_identitys_own_roles_are_used_fresh() {
    // The default source: the token's roles of this very request.
    let manager = SessionManager::new(MokaStore::default(), Config::default());
    let old = Identity::new("carol", "Carol", ["admin"]);
    let new = Identity::new("carol", "Carol", ["reader"]);
    assert!(manager.roles(&old).await.unwrap().contains("admin"));
    assert!(!manager.roles(&new).await.unwrap().contains("admin"));
    assert_eq!(manager.cached_identities(), 0);
}
