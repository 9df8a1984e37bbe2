//! Adopt mode under control, over real HTTP with the real rmcp server in its
//! legacy session mode behind `SessionLayer` (adopt mode): every way a
//! session ends closes rmcp's own session too (watched in rmcp's
//! `LocalSessionManager`, and by sending the id straight to rmcp, which then
//! answers its own 404); caps hold for rmcp's sessions; open streams keep
//! their session alive and end with it.

#[path = "hardening/mod.rs"]
mod hardening;
#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use futures::StreamExt;
use hardening::CountingStore;
use http::StatusCode;
use in_process::serve_until_cancelled;
use mcp_session::layer::RequestBody;
use mcp_session::{
    Config, IdMode, Identity, IdentityLimitPolicy, MokaStore, SessionLayer, SessionManager,
    SessionStore,
};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServerHandler;
use test_auth::{bearer, readers};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

#[derive(Clone)]
struct Empty;

impl ServerHandler for Empty {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().build())
    }
}

struct Server<S: SessionStore> {
    url: String,
    raw: String,
    http: reqwest::Client,
    manager: SessionManager<S>,
    rmcp_sessions: Arc<LocalSessionManager>,
    stop: CancellationToken,
}

impl<S: SessionStore> Drop for Server<S> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start<S: SessionStore>(manager: SessionManager<S>) -> Server<S> {
    let stop = CancellationToken::new();
    let mut sessions = LocalSessionManager::default();
    // rmcp on its own would keep sessions an hour: what ends them here is the layer.
    sessions.session_config.keep_alive = Some(Duration::from_secs(3600));
    let sessions = Arc::new(sessions);
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_millis(100)))
        .with_cancellation_token(stop.clone());
    let rmcp = StreamableHttpService::new(|| Ok(Empty), sessions.clone(), config);
    // Between the layer and rmcp: requests marked `x-slow` wait first.
    let inner = rmcp.clone();
    let slow_rmcp = tower::service_fn(
        move |request: http::Request<RequestBody<axum::body::Body>>| {
            let mut rmcp = inner.clone();
            async move {
                if request.headers().contains_key("x-slow") {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                tower::Service::call(&mut rmcp, request).await
            }
        },
    );
    let mcp = ServiceBuilder::new()
        .layer(
            SessionLayer::new(manager.clone())
                .id_mode(IdMode::Adopt)
                .resolve_identity(bearer(readers)),
        )
        .service(slow_rmcp);
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .nest_service("/raw", rmcp);
    let addr = serve_until_cancelled(app, &stop).await;
    Server {
        url: format!("http://{addr}/mcp"),
        raw: format!("http://{addr}/raw"),
        http: reqwest::Client::new(),
        manager,
        rmcp_sessions: sessions,
        stop,
    }
}

fn config() -> Config {
    Config::default().timeout(Duration::from_secs(60))
}

impl<S: SessionStore> Server<S> {
    fn post(
        &self,
        url: &str,
        user: &str,
        session: Option<&str>,
        body: &str,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(url)
            .bearer_auth(user)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(id) = session {
            request = request
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-11-25");
        }
        request
    }

    /// A session of `user`, handshake completed; `None` if refused.
    async fn initialize(&self, user: &str) -> Result<String, StatusCode> {
        let res = self.post(&self.url, user, None, INIT).send().await.unwrap();
        if res.status() != StatusCode::OK {
            return Err(res.status());
        }
        let id = res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let _ = res.bytes().await;
        let res = self
            .post(&self.url, user, Some(&id), INITIALIZED)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        Ok(id)
    }

    /// The status of a ping in `session` through the layer.
    async fn ping(&self, user: &str, session: &str) -> StatusCode {
        let res = self
            .post(&self.url, user, Some(session), PING)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let _ = res.bytes().await;
        status
    }

    /// The status of a `DELETE` of `session` through the layer.
    async fn delete(&self, user: &str, session: &str) -> StatusCode {
        let res = self
            .http
            .delete(&self.url)
            .bearer_auth(user)
            .header("mcp-session-id", session)
            .send()
            .await
            .unwrap();
        res.status()
    }

    /// What rmcp itself answers for this id (no layer in front).
    async fn rmcp_knows(&self, session: &str) -> bool {
        let res = self
            .post(&self.raw, "x", Some(session), PING)
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("rmcp answered {other}"),
        }
    }

    async fn rmcp_count(&self) -> usize {
        self.rmcp_sessions.sessions.read().await.len()
    }

    /// Waits (up to 3 s) until rmcp holds exactly `n` sessions.
    async fn until_rmcp_holds(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.rmcp_count().await != n {
            assert!(
                Instant::now() < deadline,
                "rmcp holds {} sessions, expected {n}",
                self.rmcp_count().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads what is left of an event stream whose session just ended: it must
/// end within half a second (keep-alives already on their way may arrive).
async fn assert_stream_ends_promptly(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
) {
    let ended = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), body.next()).await {
            Ok(Some(Ok(_))) if ended.elapsed() < Duration::from_secs(1) => continue,
            Ok(None) | Ok(Some(Err(_))) => break,
            _ => panic!("the stream outlived its session by a second"),
        }
    }
    let took = ended.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn delete_closes_rmcps_session() {
    let server = start(SessionManager::new(MokaStore::new(100), config())).await;
    let id = server.initialize("alice").await.unwrap();
    assert!(server.rmcp_knows(&id).await);
    assert_eq!(server.delete("alice", &id).await, StatusCode::NO_CONTENT);
    server.until_rmcp_holds(0).await;
    assert!(!server.rmcp_knows(&id).await);
}

#[tokio::test]
async fn eviction_closes_rmcps_session_and_caps_hold_under_a_flood() {
    let config = config()
        .max_sessions_per_identity(2)
        .identity_limit(IdentityLimitPolicy::EvictOldest);
    let server = start(SessionManager::new(MokaStore::new(100), config)).await;
    let first = server.initialize("alice").await.unwrap();
    for _ in 0..20 {
        server.initialize("alice").await.unwrap();
    }
    assert_eq!(server.manager.store().len(), 2);
    server.until_rmcp_holds(2).await;
    assert!(!server.rmcp_knows(&first).await);
    assert_eq!(server.ping("alice", &first).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refusal_closes_rmcps_session() {
    let config = config()
        .max_sessions_per_identity(1)
        .identity_limit(IdentityLimitPolicy::Reject);
    let server = start(SessionManager::new(MokaStore::new(100), config)).await;
    server.initialize("alice").await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            server.initialize("alice").await,
            Err(StatusCode::TOO_MANY_REQUESTS)
        );
    }
    // The global cap too.
    let global = start(SessionManager::new(
        MokaStore::new(100),
        Config::default().max_sessions(1),
    ))
    .await;
    global.initialize("alice").await.unwrap();
    assert_eq!(
        global.initialize("bob").await,
        Err(StatusCode::SERVICE_UNAVAILABLE)
    );
    server.until_rmcp_holds(1).await;
    global.until_rmcp_holds(1).await;
}

#[tokio::test]
async fn a_store_failure_after_rmcp_created_the_session_closes_it() {
    let store = CountingStore::new(MokaStore::new(100));
    store.set_down_for(&["create"]);
    let server = start(SessionManager::new(store, config())).await;
    assert_eq!(
        server.initialize("alice").await,
        Err(StatusCode::SERVICE_UNAVAILABLE)
    );
    server.until_rmcp_holds(0).await;
}

#[tokio::test]
async fn revocation_closes_rmcps_sessions() {
    let server = start(SessionManager::new(MokaStore::new(100), config())).await;
    let alice = [
        server.initialize("alice").await.unwrap(),
        server.initialize("alice").await.unwrap(),
    ];
    let bob = server.initialize("bob").await.unwrap();
    assert_eq!(server.manager.revoke_sessions("alice").await.unwrap(), 2);
    server.until_rmcp_holds(1).await;
    for id in &alice {
        assert!(!server.rmcp_knows(id).await);
    }
    assert!(server.rmcp_knows(&bob).await);
}

#[tokio::test]
async fn idle_expiry_and_deadline_close_rmcps_sessions() {
    let idle = start(SessionManager::new(
        MokaStore::new(100),
        config().timeout(Duration::from_secs(1)),
    ))
    .await;
    let id = idle.initialize("alice").await.unwrap();
    assert!(idle.rmcp_knows(&id).await);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    idle.until_rmcp_holds(0).await;
    assert_eq!(idle.ping("alice", &id).await, StatusCode::NOT_FOUND);

    // Used all along, but only for its lifetime.
    // (The idle timeout may not exceed the lifetime: both 1 s; the pings
    // keep it from idling out.)
    let lifetime = config()
        .timeout(Duration::from_secs(1))
        .max_lifetime(Duration::from_secs(1));
    let deadline = start(SessionManager::new(MokaStore::new(100), lifetime)).await;
    let id = deadline.initialize("alice").await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        assert_eq!(deadline.ping("alice", &id).await, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    deadline.until_rmcp_holds(0).await;
    assert_eq!(deadline.ping("alice", &id).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_gone_mid_initialize_leaves_nothing_behind() {
    let server = start(SessionManager::new(MokaStore::new(100), config())).await;
    let gave_up = server
        .post(&server.url, "alice", None, INIT)
        .header("x-slow", "1")
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client gave up before the answer");
    // rmcp created the session after the client left; it must not stay.
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.until_rmcp_holds(0).await;
    server.manager.store().run_pending_tasks();
    assert_eq!(server.manager.store().len(), 0);
}

#[tokio::test]
async fn an_open_stream_keeps_its_session_alive_and_ends_with_it() {
    let server = start(SessionManager::new(
        MokaStore::new(100),
        config().timeout(Duration::from_secs(1)),
    ))
    .await;
    let id = server.initialize("alice").await.unwrap();
    let stream = server
        .http
        .get(&server.url)
        .bearer_auth("alice")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut body = stream.bytes_stream();
    // Three idle timeouts with only the stream open: still alive.
    let listening = Instant::now();
    while listening.elapsed() < Duration::from_secs(3) {
        let next = tokio::time::timeout(Duration::from_secs(1), body.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(_)))),
            "the stream stays open (keep-alives flow)"
        );
    }
    assert_eq!(server.ping("alice", &id).await, StatusCode::OK);

    // Its session ends (revoked): the stream ends promptly.
    server.manager.revoke_sessions("alice").await.unwrap();
    assert_stream_ends_promptly(&mut body).await;
}

/// Mint mode: rmcp is stateless; an event-stream answer on a session is
/// governed the same way (here a long SSE answer to a POST).
#[tokio::test]
async fn mint_mode_streams_end_with_their_session() {
    let stop = CancellationToken::new();
    let manager = SessionManager::new(MokaStore::new(100), config());
    // An inner server that answers with a never-ending event stream.
    let inner = tower::service_fn(
        |_req: http::Request<mcp_session::layer::RequestBody<axum::body::Body>>| async {
            let stream = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b": ping\n\n")),
                    (),
                ))
            });
            let mut response = http::Response::new(axum::body::Body::from_stream(stream));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/event-stream"),
            );
            Ok::<_, std::convert::Infallible>(response)
        },
    );
    let mcp = ServiceBuilder::new()
        .layer(SessionLayer::new(manager.clone()).resolve_identity(bearer(readers)))
        .service(inner);
    let app = Router::new().nest_service("/mcp", mcp);
    let addr = serve_until_cancelled(app, &stop).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/mcp");
    let session = manager
        .create(&Identity::new("alice", "alice", ["reader"]))
        .await
        .unwrap();
    let res = http
        .post(&url)
        .bearer_auth("alice")
        .header("mcp-session-id", session.id().reveal())
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    assert!(matches!(body.next().await, Some(Ok(_))));
    manager.delete_any_owner(session.id()).await.unwrap();
    assert_stream_ends_promptly(&mut body).await;
    stop.cancel();
}

/// Two replicas over one Redis: a session ended through one (DELETE,
/// revocation, eviction) closes rmcp's session on the other, which holds it.
#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[path = "support/redis_stores.rs"]
mod redis_stores;

#[cfg(feature = "redis")]
mod across_replicas {
    use super::*;
    use crate::redis_server::RedisServer;
    use mcp_session::store::redis::RedisStore;

    async fn replica(redis: &RedisServer, config: Config) -> Server<RedisStore> {
        let store = crate::redis_stores::replica(redis, "across:", Duration::from_secs(2)).await;
        let server = start(SessionManager::new(store, config)).await;
        // Let its notice subscriber come up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_end_on_one_replica_closes_rmcps_session_on_the_other() {
        let Some(redis) = RedisServer::start() else {
            return;
        };
        let config = config()
            .max_sessions_per_identity(1)
            .identity_limit(IdentityLimitPolicy::EvictOldest);
        let a = replica(&redis, config).await;
        let b = replica(&redis, config).await;

        // DELETE through B of a session A holds.
        let id = a.initialize("alice").await.unwrap();
        a.until_rmcp_holds(1).await;
        assert_eq!(b.delete("alice", &id).await, StatusCode::NO_CONTENT);
        a.until_rmcp_holds(0).await;
        assert!(!a.rmcp_knows(&id).await);

        // Revoked through B.
        let id = a.initialize("bob").await.unwrap();
        a.until_rmcp_holds(1).await;
        assert_eq!(b.manager.revoke_sessions("bob").await.unwrap(), 1);
        a.until_rmcp_holds(0).await;
        assert!(!a.rmcp_knows(&id).await);

        // Evicted by a new session of the same identity on B.
        let id = a.initialize("carol").await.unwrap();
        a.until_rmcp_holds(1).await;
        b.initialize("carol").await.unwrap();
        a.until_rmcp_holds(0).await;
        assert!(!a.rmcp_knows(&id).await);
        assert_eq!(b.rmcp_count().await, 1);
    }
}
