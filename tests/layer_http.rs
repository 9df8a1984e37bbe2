//! The layer's behaviour over real HTTP on 127.0.0.1: one test per row of
//! the behaviour table in the README, in both protocol eras.

#[path = "support/test_auth.rs"]
mod test_auth;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Extension, Json, Router};
use mcp_session::store::CreateOutcome;
use mcp_session::{
    Config, IdMode, Identity, IdentityLimitPolicy, Limits, ManualClock, MokaStore, Roles, Session,
    SessionId, SessionLayer, SessionManager, SessionStore, StoreError, Timestamp,
};
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};
use test_auth::insert_caller;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const DISCOVER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#;

/// The callers, inserted by an auth middleware in front of the layer (the
/// layer's default resolver reads them there): `Bearer <user>` → `<user>`;
/// `alice` is admin + reader, everyone else reader.
fn callers(user: &str) -> Option<Identity> {
    let roles: &[&str] = if user == "alice" {
        &["admin", "reader"]
    } else {
        &["reader"]
    };
    Some(Identity::new(
        user,
        user.to_uppercase(),
        roles.iter().copied(),
    ))
}

/// What the inner handler saw in the extensions.
async fn echo(
    session: Option<Extension<Session>>,
    identity: Option<Extension<Identity>>,
    extensions: http::Extensions,
) -> Json<Value> {
    let roles = Roles::of(&extensions);
    Json(json!({
        "session_id": session.as_ref().map(|s| s.id().reveal()),
        "session_owner": session.as_ref().map(|s| s.identity_id().to_string()),
        "roles": roles.map(|r| r.iter().map(|r| r.to_string()).collect::<Vec<_>>()),
        "identity": identity.map(|i| i.id().to_string()),
    }))
}

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Server {
    async fn start(router: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server {
            addr,
            client: reqwest::Client::new(),
        }
    }

    async fn with_layer<S: SessionStore>(layer: SessionLayer<S>) -> Server {
        Self::start(
            Router::new()
                .route("/mcp", any(echo))
                .layer(layer)
                .layer(insert_caller(callers)),
        )
        .await
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        user: Option<&str>,
        session: Option<&str>,
        extra: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, self.url())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(user) = user {
            req = req.header("authorization", format!("Bearer {user}"));
        }
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, value)
    }

    async fn post(
        &self,
        user: &str,
        session: Option<&str>,
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        self.send(reqwest::Method::POST, Some(user), session, &[], body)
            .await
    }

    /// Initializes as `user` and returns the new session id.
    async fn initialize(&self, user: &str) -> String {
        let (status, headers, _) = self.post(user, None, INIT).await;
        assert_eq!(status, StatusCode::OK);
        headers["mcp-session-id"].to_str().unwrap().to_string()
    }
}

fn assert_jsonrpc_error(headers: &HeaderMap, body: &Value, code: i64) {
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}

fn manual_manager(clock: &ManualClock, config: Config) -> SessionManager {
    SessionManager::with_clock(MokaStore::new(10_000), config, clock.clone())
}

#[tokio::test]
async fn initialize_mints_a_bound_session_and_later_requests_carry_it() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let (status, headers, body) = server.post("alice", None, INIT).await;
    assert_eq!(status, StatusCode::OK);
    let id = headers["mcp-session-id"].to_str().unwrap();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    // The initialize handler itself already sees the session.
    assert_eq!(body["session_id"], id);

    let (status, _, body) = server.post("alice", Some(id), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session_id"], id);
    assert_eq!(body["session_owner"], "alice");
    assert_eq!(body["roles"], json!(["admin", "reader"]));
    assert_eq!(body["identity"], "alice");
}

#[tokio::test]
async fn missing_identity_is_401_with_jsonrpc_body() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let (status, headers, body) = server
        .send(reqwest::Method::POST, None, None, &[], INIT)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_jsonrpc_error(&headers, &body, -32002);
}

#[tokio::test]
async fn anonymous_sessions_only_when_allowed() {
    let server =
        Server::with_layer(SessionLayer::new(SessionManager::default()).allow_anonymous(true))
            .await;
    let (status, headers, _) = server
        .send(reqwest::Method::POST, None, None, &[], INIT)
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = headers["mcp-session-id"].to_str().unwrap();
    let (status, _, body) = server
        .send(reqwest::Method::POST, None, Some(id), &[], TOOLS_LIST)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session_owner"], Identity::anonymous().id());
    assert_ne!(Identity::anonymous().id(), "anonymous");
}

/// A real subject whose id is `anonymous` and the unauthenticated callers
/// of `allow_anonymous` are two principals: neither can use the other's
/// session.
#[tokio::test]
async fn a_user_named_anonymous_shares_nothing_with_anonymous_callers() {
    let server =
        Server::with_layer(SessionLayer::new(SessionManager::default()).allow_anonymous(true))
            .await;
    let (status, headers, _) = server
        .send(reqwest::Method::POST, None, None, &[], INIT)
        .await;
    assert_eq!(status, StatusCode::OK);
    let unauthenticated = headers["mcp-session-id"].to_str().unwrap().to_string();
    let (status, _, _) = server
        .post("anonymous", Some(&unauthenticated), TOOLS_LIST)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let real = server.initialize("anonymous").await;
    let (status, _, _) = server
        .send(reqwest::Method::POST, None, Some(&real), &[], TOOLS_LIST)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = server.post("anonymous", Some(&real), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session_owner"], "anonymous");
}

#[tokio::test]
async fn malformed_ids_are_400_without_a_store_call() {
    let store = CountingStore::default();
    let calls = store.calls.clone();
    let manager = SessionManager::new(store, Config::default());
    let server = Server::with_layer(SessionLayer::new(manager)).await;
    let long = "a".repeat(10_000);
    for bad in [
        "",
        "xyz",
        &"A".repeat(64),
        &"a".repeat(63),
        &"a".repeat(65),
        "zz café",
        long.as_str(),
    ] {
        let (status, headers, body) = server.post("alice", Some(bad), TOOLS_LIST).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_jsonrpc_error(&headers, &body, -32600);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a malformed id reached the store"
    );
}

#[tokio::test]
async fn repeated_session_headers_are_400() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let id = server.initialize("alice").await;
    let res = server
        .client
        .post(server.url())
        .header("authorization", "Bearer alice")
        .header("mcp-session-id", &id)
        .header("mcp-session-id", &id)
        .body(TOOLS_LIST)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap();
    assert_jsonrpc_error(&headers, &body, -32600);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("more than one"));
}

#[tokio::test]
async fn unknown_and_foreign_sessions_are_the_same_404() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let id = server.initialize("alice").await;
    let (s1, h1, unknown) = server
        .post("alice", Some(&SessionId::generate().reveal()), TOOLS_LIST)
        .await;
    let (s2, h2, foreign) = server.post("bob", Some(&id), TOOLS_LIST).await;
    assert_eq!(s1, StatusCode::NOT_FOUND);
    assert_eq!(s2, StatusCode::NOT_FOUND);
    assert_jsonrpc_error(&h1, &unknown, -32001);
    assert_eq!(
        unknown, foreign,
        "a foreign session must look exactly like an unknown one"
    );
    assert_eq!(h1.get("content-length"), h2.get("content-length"));
    // Bob's attempt did not harm Alice's session.
    let (status, _, _) = server.post("alice", Some(&id), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn idle_sessions_expire_and_use_slides_the_expiry() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let config = Config::default().timeout(Duration::from_secs(60));
    let server = Server::with_layer(SessionLayer::new(manual_manager(&clock, config))).await;
    let id = server.initialize("alice").await;
    // Used every 50 s: stays alive well past one timeout.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(50));
        let (status, _, _) = server.post("alice", Some(&id), TOOLS_LIST).await;
        assert_eq!(status, StatusCode::OK);
    }
    clock.advance(Duration::from_secs(61));
    let (status, headers, body) = server.post("alice", Some(&id), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_jsonrpc_error(&headers, &body, -32001);
}

#[tokio::test]
async fn lifetime_cap_ends_a_session_however_often_it_is_used() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let config = Config::default()
        .timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(150));
    let server = Server::with_layer(SessionLayer::new(manual_manager(&clock, config))).await;
    let id = server.initialize("alice").await;
    for _ in 0..2 {
        clock.advance(Duration::from_secs(50));
        assert_eq!(
            server.post("alice", Some(&id), TOOLS_LIST).await.0,
            StatusCode::OK
        );
    }
    clock.advance(Duration::from_secs(49)); // 149 s: still inside the cap
    assert_eq!(
        server.post("alice", Some(&id), TOOLS_LIST).await.0,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1)); // 150 s: the cap
    assert_eq!(
        server.post("alice", Some(&id), TOOLS_LIST).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_terminates_and_the_id_then_answers_404() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let id = server.initialize("alice").await;
    // Someone else cannot terminate it.
    let (status, _, _) = server
        .send(reqwest::Method::DELETE, Some("bob"), Some(&id), &[], "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = server
        .send(reqwest::Method::DELETE, Some("alice"), Some(&id), &[], "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let (status, headers, body) = server
            .send(method, Some("alice"), Some(&id), &[], TOOLS_LIST)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_jsonrpc_error(&headers, &body, -32001);
    }
}

#[tokio::test]
async fn handshake_requests_without_a_session_id_are_400() {
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    let (status, headers, body) = server.post("alice", None, TOOLS_LIST).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_jsonrpc_error(&headers, &body, -32600);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Session-Id"));
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, headers, body) = server.send(method, Some("alice"), None, &[], "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_jsonrpc_error(&headers, &body, -32600);
    }
    let (status, headers, body) = server.post("alice", None, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_jsonrpc_error(&headers, &body, -32700);
}

#[tokio::test]
async fn sessionless_era_passes_through_with_identity_and_roles() {
    let manager = SessionManager::default();
    let server = Server::with_layer(SessionLayer::new(manager.clone())).await;
    let headers_2026 = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "whoami"),
    ];
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}"#;
    let (status, headers, body) = server
        .send(
            reqwest::Method::POST,
            Some("alice"),
            None,
            &headers_2026,
            call,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("mcp-session-id").is_none(),
        "no id may be minted in the 2026 era"
    );
    assert_eq!(body["session_id"], Value::Null);
    assert_eq!(body["identity"], "alice");
    assert_eq!(body["roles"], json!(["admin", "reader"]));

    // The discovery probe passes without any version header too.
    let (status, headers, body) = server.post("bob", None, DISCOVER).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("mcp-session-id").is_none());
    assert_eq!(body["identity"], "bob");
    assert_eq!(body["roles"], json!(["reader"]));
    assert!(
        manager.store().is_empty(),
        "sessionless traffic created a session"
    );

    // Still authenticated: no identity, no entry.
    let (status, _, _) = server
        .send(reqwest::Method::POST, None, None, &headers_2026, call)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_initialize_leaves_no_orphan_session() {
    let manager = SessionManager::default();
    let router = Router::new()
        .route(
            "/mcp",
            any(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(SessionLayer::new(manager.clone()))
        .layer(insert_caller(callers));
    let server = Server::start(router).await;
    let res = server
        .client
        .post(server.url())
        .header("authorization", "Bearer alice")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get("mcp-session-id").is_none());
    // The guard deletes on a spawned task: give it a moment.
    for _ in 0..100 {
        manager.store().run_pending_tasks();
        if manager.store().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the failed initialize left a session behind");
}

#[tokio::test]
async fn per_identity_cap_evicts_oldest_by_default_or_rejects_with_429() {
    let config = Config::default()
        .max_sessions_per_identity(2)
        .identity_limit(IdentityLimitPolicy::EvictOldest);
    let server = Server::with_layer(SessionLayer::new(SessionManager::new(
        MokaStore::new(100),
        config,
    )))
    .await;
    let first = server.initialize("alice").await;
    let second = server.initialize("alice").await;
    let third = server.initialize("alice").await;
    assert_eq!(
        server.post("alice", Some(&first), TOOLS_LIST).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.post("alice", Some(&second), TOOLS_LIST).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.post("alice", Some(&third), TOOLS_LIST).await.0,
        StatusCode::OK
    );
    // Bob is unaffected by Alice's churn.
    server.initialize("bob").await;

    let config = Config::default()
        .max_sessions_per_identity(1)
        .identity_limit(IdentityLimitPolicy::Reject);
    let server = Server::with_layer(SessionLayer::new(SessionManager::new(
        MokaStore::new(100),
        config,
    )))
    .await;
    let only = server.initialize("alice").await;
    let (status, headers, body) = server.post("alice", None, INIT).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_jsonrpc_error(&headers, &body, -32004);
    assert_eq!(
        server.post("alice", Some(&only), TOOLS_LIST).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn global_cap_is_503_with_retry_after() {
    let config = Config::default().max_sessions(2);
    let server = Server::with_layer(SessionLayer::new(SessionManager::new(
        MokaStore::new(100),
        config,
    )))
    .await;
    server.initialize("alice").await;
    server.initialize("bob").await;
    let (status, headers, body) = server.post("carol", None, INIT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert_jsonrpc_error(&headers, &body, -32004);
}

#[tokio::test]
async fn store_failure_is_503_with_retry_after_never_500() {
    let store = CountingStore::default();
    let failing = store.fail.clone();
    let server = Server::with_layer(
        SessionLayer::new(SessionManager::new(store, Config::default()))
            .retry_after(Duration::from_secs(3)),
    )
    .await;
    let id = server.initialize("alice").await;
    failing.store(true, Ordering::SeqCst);
    for body in [TOOLS_LIST, INIT] {
        let session = (body == TOOLS_LIST).then_some(id.as_str());
        let (status, headers, err) = server.post("alice", session, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "3");
        assert_jsonrpc_error(&headers, &err, -32003);
    }
    failing.store(false, Ordering::SeqCst);
    assert_eq!(
        server.post("alice", Some(&id), TOOLS_LIST).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn adopt_mode_binds_the_inner_servers_id() {
    let upstream_id = "6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e";
    let manager = SessionManager::default();
    let router = Router::new()
        .route(
            "/mcp",
            any(move |req: Request| async move {
                let is_init = req.headers().get("mcp-session-id").is_none();
                let session = req.extensions().get::<Session>().map(|s| s.id().reveal());
                let mut res = Json(json!({ "session_id": session })).into_response();
                if is_init {
                    res.headers_mut()
                        .insert("mcp-session-id", upstream_id.parse().unwrap());
                }
                res
            }),
        )
        .layer(SessionLayer::new(manager.clone()).id_mode(IdMode::Adopt))
        .layer(insert_caller(callers));
    let server = Server::start(router).await;
    let id = server.initialize("alice").await;
    assert_eq!(id, upstream_id);
    let (status, _, body) = server.post("alice", Some(&id), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session_id"], upstream_id);
    assert_eq!(
        server.post("bob", Some(&id), TOOLS_LIST).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _, _) = server
        .send(reqwest::Method::DELETE, Some("alice"), Some(&id), &[], "")
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the inner 2xx is reported as 204"
    );
    assert_eq!(
        server.post("alice", Some(&id), TOOLS_LIST).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn adopt_mode_refuses_an_untrackable_inner_id() {
    let router = Router::new()
        .route(
            "/mcp",
            any(|| async {
                let mut res = Json(json!({})).into_response();
                res.headers_mut()
                    .insert("mcp-session-id", "x".repeat(200).parse().unwrap());
                res
            }),
        )
        .layer(SessionLayer::new(SessionManager::default()).id_mode(IdMode::Adopt))
        .layer(insert_caller(callers));
    let server = Server::start(router).await;
    let (status, headers, body) = server.post("alice", None, INIT).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_jsonrpc_error(&headers, &body, -32005);
}

#[tokio::test]
async fn plain_hyper_service_with_service_builder() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;

    let manager = SessionManager::default();
    let service = ServiceBuilder::new()
        // Outermost: a demo auth step that inserts the identity.
        .map_request(|mut req: http::Request<Incoming>| {
            req.extensions_mut()
                .insert(Identity::new("alice", "Alice", ["admin"]));
            req
        })
        .layer(SessionLayer::new(manager))
        .service_fn(
            |req: http::Request<mcp_session::layer::RequestBody<Incoming>>| async move {
                let session = req.extensions().get::<Session>().map(|s| s.id().reveal());
                let roles = Roles::of(req.extensions()).map(|r| r.len());
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().len())
                    .unwrap_or(0);
                let text =
                    json!({ "session_id": session, "roles": roles, "body_len": body }).to_string();
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    bytes::Bytes::from(text),
                )))
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let server = Server {
        addr,
        client: reqwest::Client::new(),
    };
    let (status, headers, body) = server.post("ignored", None, INIT).await;
    assert_eq!(status, StatusCode::OK);
    let id = headers["mcp-session-id"].to_str().unwrap().to_string();
    assert_eq!(
        body["body_len"],
        INIT.len(),
        "the buffered initialize body reached the inner service"
    );
    let (status, _, body) = server.post("ignored", Some(&id), TOOLS_LIST).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session_id"], id.as_str());
    assert_eq!(body["roles"], 1);
    assert_eq!(body["body_len"], TOOLS_LIST.len());
}

#[tokio::test]
async fn control_bytes_in_headers_never_crash_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::with_layer(SessionLayer::new(SessionManager::default())).await;
    for value in [&b"\x01\x02"[..], b"\xff\xfe\xfd", b"a\x7fb", b"\t"] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut req = b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Length: 2\r\nMcp-Session-Id: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\nConnection: close\r\n\r\n{}");
        stream.write_all(&req).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let head = String::from_utf8_lossy(&response);
        assert!(head.starts_with("HTTP/1.1 400"), "{value:?} → {head}");
    }
    // The server is still serving.
    server.initialize("alice").await;
}

/// A MokaStore that counts calls and can be told to fail like a store that is down.
#[derive(Clone, Default)]
struct CountingStore {
    inner: MokaStore,
    calls: Arc<AtomicUsize>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl CountingStore {
    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("test store is down".into()))
        } else {
            Ok(())
        }
    }
}

impl SessionStore for CountingStore {
    type TouchFuture = std::future::Ready<Result<Option<Session>, StoreError>>;

    async fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        self.check()?;
        self.inner.create(session, limits).await
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.check()?;
        self.inner.get(id, now).await
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture {
        match self.check() {
            Ok(()) => self.inner.touch(id, owner, now),
            Err(e) => std::future::ready(Err(e)),
        }
    }

    async fn update(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update(session, now).await
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete(id).await
    }

    async fn delete_all_of(
        &self,
        identity_id: &str,
    ) -> Result<Vec<mcp_session::RemovedSession>, StoreError> {
        self.check()?;
        self.inner.delete_all_of(identity_id).await
    }
}
