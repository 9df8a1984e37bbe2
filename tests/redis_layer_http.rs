//! The layer over `RedisStore`, over real HTTP: two replicas (two servers,
//! two connections) share sessions through one `redis-server`, and a Redis
//! that dies makes the layer answer 503 + `Retry-After` within the store
//! timeout, then recover in the same process when Redis returns.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::any;
use axum::{Extension, Router};
use mcp_session::{Config, Session, SessionLayer, SessionManager};
use redis_server::RedisServer;
use reqwest::StatusCode;
use test_auth::{bearer, readers};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const TIMEOUT: Duration = Duration::from_millis(300);

async fn replica(redis: &RedisServer, prefix: &str) -> SocketAddr {
    let store = redis_stores::replica(redis, prefix, TIMEOUT).await;
    let manager = SessionManager::new(store, Config::default());
    let app = Router::new()
        .route(
            "/mcp",
            any(|Extension(s): Extension<Session>| async move { s.identity_id().to_string() }),
        )
        .layer(SessionLayer::new(manager).resolve_identity(bearer(readers)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    user: &str,
    session: Option<&str>,
    body: &'static str,
) -> reqwest::Response {
    let mut req = client
        .post(format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {user}"))
        .body(body);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.unwrap()
}

fn session_id(res: &reqwest::Response) -> String {
    res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn replicas_serve_each_others_sessions() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        replica(&redis, "replicas:").await,
        replica(&redis, "replicas:").await,
    );
    let client = reqwest::Client::new();
    let res = post(&client, a, "alice", None, INIT).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = session_id(&res);

    let res = post(&client, b, "alice", Some(&id), CALL).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "alice");
    // Binding holds across replicas.
    assert_eq!(
        post(&client, b, "bob", Some(&id), CALL).await.status(),
        StatusCode::NOT_FOUND
    );

    let res = client
        .delete(format!("http://{b}/mcp"))
        .header("authorization", "Bearer alice")
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        post(&client, a, "alice", Some(&id), CALL).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn dead_redis_is_503_within_the_timeout_and_the_process_recovers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let addr = replica(&redis, "fault:").await;
    let client = reqwest::Client::new();
    let id = session_id(&post(&client, addr, "alice", None, INIT).await);
    assert_eq!(
        post(&client, addr, "alice", Some(&id), CALL).await.status(),
        StatusCode::OK
    );

    redis.kill();
    for body in [CALL, INIT] {
        let session = (body == CALL).then_some(id.as_str());
        let started = Instant::now();
        let res = post(&client, addr, "alice", session, body).await;
        let elapsed = started.elapsed();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(res.headers()["content-type"], "application/json");
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], -32003);
        // Two store calls at most on these paths (create + rollback), each bounded.
        assert!(
            elapsed < TIMEOUT * 2 + Duration::from_millis(500),
            "took {elapsed:?}"
        );
    }

    redis.restart();
    // Same process, same store: requests succeed again (the restarted Redis
    // kept nothing, so the old session is gone and a new one works).
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let res = post(&client, addr, "alice", None, INIT).await;
        if res.status() == StatusCode::OK {
            break session_id(&res);
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "the layer did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        post(&client, addr, "alice", Some(&fresh), CALL)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&client, addr, "alice", Some(&id), CALL).await.status(),
        StatusCode::NOT_FOUND
    );
}
