//! Abuse limits over real HTTP: axum on 127.0.0.1:0, the layer in front of
//! a trivial handler, reading the caller from a bearer token (`BearerToken`).
//!
//! - a flood of `initialize` from one identity hits the per-identity cap
//!   (EvictOldest: older ids answer 404; Reject: 429 with a JSON-RPC body),
//!   and a flood from many identities hits the global cap (503 +
//!   `Retry-After`), never the server's memory: the store's count never
//!   exceeds the caps, watched while the flood runs;
//! - oversized (10 KB) and repeated `Mcp-Session-Id` headers: 400, no store
//!   call; a header too large for the HTTP server is refused before the layer;
//! - huge `initialize` bodies: 413, and a 100 MB streamed body is cut off
//!   early (the client gets to send only a small part of it);
//! - slow `initialize` bodies: 408 after the configured timeout;
//! - invalid UTF-8 and invalid JSON: 400 with a parse-error body;
//! - (feature `tracing`) no log line ever holds a whole session id, even on
//!   the warning paths (store failures, unusable upstream ids).

mod hardening;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Json, Router};
use hardening::{check_jsonrpc_error, CountingStore};
use mcp_session::layer::codes;
use mcp_session::{
    Config, IdMode, IdentityLimitPolicy, MokaStore, Session, SessionLayer, SessionManager,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use test_auth::{bearer, readers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"abuse","version":"1"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

type Store = CountingStore<MokaStore>;

async fn handler(session: Option<Extension<Session>>) -> Response {
    Json(json!({"ok": true, "session": session.map(|s| s.id().to_string())})).into_response()
}

struct Server {
    addr: SocketAddr,
    store: Store,
    client: reqwest::Client,
}

impl Server {
    async fn start(
        config: Config,
        tune: impl FnOnce(SessionLayer<Store>) -> SessionLayer<Store>,
    ) -> Server {
        Self::start_with(config, tune, any(handler)).await
    }

    async fn start_with(
        config: Config,
        tune: impl FnOnce(SessionLayer<Store>) -> SessionLayer<Store>,
        route: axum::routing::MethodRouter,
    ) -> Server {
        let store = CountingStore::new(MokaStore::new(100_000));
        let layer = tune(SessionLayer::new(SessionManager::new(
            store.clone(),
            config,
        )));
        let router = Router::new()
            .route("/mcp", route)
            .layer(layer.resolve_identity(bearer(readers)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server {
            addr,
            store,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    async fn post(
        &self,
        user: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self
            .client
            .post(self.url())
            .header("authorization", format!("Bearer {user}"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.unwrap().to_vec())
    }

    async fn initialize(&self, user: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let (status, headers, body) = self.post(user, &[], INIT).await;
        let id = headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        (status, id, body)
    }

    async fn ping(&self, user: &str, id: &str) -> StatusCode {
        self.post(user, &[("mcp-session-id", id)], PING).await.0
    }
}

fn assert_error(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8], code: i64) {
    let got = check_jsonrpc_error(status, headers, body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, code, "{}", String::from_utf8_lossy(body));
}

/// Runs `work` while watching `count` every millisecond; returns the
/// highest value seen.
async fn watch_max<F: std::future::Future>(
    count: impl Fn() -> u64 + Send + 'static,
    work: F,
) -> (u64, F::Output) {
    let stop = Arc::new(AtomicBool::new(false));
    let max = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, max) = (stop.clone(), max.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                max.fetch_max(count(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let out = work.await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    (max.load(Ordering::SeqCst), out)
}

/// Sends `n` initialize requests for `user`, `concurrency` at a time, in order
/// of submission; returns (status, id) per request.
async fn flood(
    server: &Arc<Server>,
    user: &str,
    n: usize,
    concurrency: usize,
) -> Vec<(StatusCode, Option<String>, Vec<u8>)> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|_| {
            let (server, user) = (server.clone(), user.to_string());
            async move { server.initialize(&user).await }
        })
        .buffered(concurrency)
        .collect()
        .await
}

// ---------------------------------------------------------------------------
// Floods of initialize.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_flood_evicts_the_identitys_oldest_sessions() {
    const CAP: u32 = 8;
    let config = Config::default()
        .max_sessions_per_identity(CAP)
        .identity_limit(IdentityLimitPolicy::EvictOldest);
    let server = Arc::new(Server::start(config, |l| l).await);
    let (_, bob_id, _) = server.initialize("bob").await;
    let bob_id = bob_id.unwrap();

    let store = server.store.inner().clone();
    let (max, results) = watch_max(move || store.len(), flood(&server, "mallory", 400, 16)).await;
    assert!(
        max <= u64::from(CAP) + 1,
        "store held {max} sessions (cap {CAP} + bob's 1)"
    );
    assert!(results
        .iter()
        .all(|(s, id, _)| *s == StatusCode::OK && id.is_some()));
    assert_eq!(server.store.inner().len(), u64::from(CAP) + 1);

    // Exactly CAP of mallory's ids still work, all among the most recent; the others are 404.
    let mut live = Vec::new();
    for (i, (_, id, _)) in results.iter().enumerate() {
        match server.ping("mallory", id.as_ref().unwrap()).await {
            StatusCode::OK => live.push(i),
            StatusCode::NOT_FOUND => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(live.len(), CAP as usize);
    assert!(
        live.iter().all(|&i| i >= 400 - 2 * 16),
        "old sessions survived: {live:?}"
    );
    // Nobody else's session was touched.
    assert_eq!(server.ping("bob", &bob_id).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_flood_is_refused_with_429_under_reject() {
    const CAP: u32 = 8;
    let config = Config::default()
        .max_sessions_per_identity(CAP)
        .identity_limit(IdentityLimitPolicy::Reject);
    let server = Arc::new(Server::start(config, |l| l).await);
    let store = server.store.inner().clone();
    let (max, results) = watch_max(move || store.len(), flood(&server, "mallory", 300, 16)).await;
    assert!(max <= u64::from(CAP), "store held {max} sessions");
    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), CAP as usize);
    for (status, id, body) in &results {
        if *status == StatusCode::OK {
            continue;
        }
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert!(id.is_none());
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["code"], codes::TOO_MANY_SESSIONS);
        assert!(v["error"]["message"].as_str().unwrap().contains("maximum"));
    }
    // The sessions that got in keep working; after one is deleted, one more gets in.
    let first = ok[0].1.clone().unwrap();
    assert_eq!(server.ping("mallory", &first).await, StatusCode::OK);
    let res = server
        .client
        .delete(server.url())
        .header("authorization", "Bearer mallory")
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.initialize("mallory").await.0, StatusCode::OK);
    assert_eq!(
        server.initialize("mallory").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another identity is not affected by mallory's cap.
    assert_eq!(server.initialize("bob").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_flood_from_many_identities_hits_the_global_cap() {
    const GLOBAL: u64 = 25;
    let config = Config::default().max_sessions(GLOBAL);
    let server = Arc::new(Server::start(config, |l| l).await);
    let store = server.store.inner().clone();
    let work = {
        let server = server.clone();
        async move {
            use futures::StreamExt;
            futures::stream::iter(0..200)
                .map(|i| {
                    let server = server.clone();
                    async move { server.post(&format!("user{}", i % 50), &[], INIT).await }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        }
    };
    let (max, results) = watch_max(move || store.len(), work).await;
    assert!(max <= GLOBAL, "store held {max} sessions");
    let ok = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(ok as u64, GLOBAL);
    for (status, headers, body) in &results {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
            assert_error(*status, headers, body, codes::TOO_MANY_SESSIONS);
            assert!(headers.contains_key("retry-after"));
        }
    }
}

// ---------------------------------------------------------------------------
// Headers.

#[tokio::test]
async fn oversized_and_repeated_session_ids_are_400_without_a_store_call() {
    let server = Server::start(Config::default(), |l| l).await;
    let (_, id, _) = server.initialize("alice").await;
    let id = id.unwrap();
    let before = server.store.calls();

    let huge = "a".repeat(10 * 1024);
    let long_hex = "0123456789abcdef".repeat(640);
    let comma = format!("{id}, {id}");
    for value in [huge.as_str(), long_hex.as_str(), comma.as_str(), "", " "] {
        let (status, headers, body) = server
            .post("alice", &[("mcp-session-id", value)], PING)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{:.40}", value);
        assert_error(status, &headers, &body, codes::INVALID_REQUEST);
    }
    // Repeated: the same valid id twice, or two different ids.
    let other = server.initialize("alice").await.1.unwrap();
    let before_repeats = server.store.calls();
    for (a, b) in [(&id, &id), (&id, &other)] {
        let res = server
            .client
            .post(server.url())
            .header("authorization", "Bearer alice")
            .header("mcp-session-id", a.as_str())
            .header("mcp-session-id", b.as_str())
            .body(PING)
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = res.bytes().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_error(status, &headers, &body, codes::INVALID_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("more than one"));
    }
    assert_eq!(
        server.store.calls().by_id(),
        before.by_id(),
        "the store was asked"
    );
    assert_eq!(server.store.calls(), before_repeats);
    // Adopt mode's looser rule has a length bound too.
    let adopt = Server::start(Config::default(), |l| l.id_mode(IdMode::Adopt)).await;
    let (status, headers, body) = adopt
        .post("alice", &[("mcp-session-id", &"x".repeat(129))], PING)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(status, &headers, &body, codes::INVALID_REQUEST);
    assert_eq!(adopt.store.calls().total(), 0);
    // The session is unharmed.
    assert_eq!(server.ping("alice", &id).await, StatusCode::OK);
}

#[tokio::test]
async fn a_header_too_large_for_the_http_server_never_reaches_the_layer() {
    let server = Server::start(Config::default(), |l| l).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut req = b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Length: 2\r\nMcp-Session-Id: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n{}");
    let _ = stream.write_all(&req).await; // the server may hang up mid-way
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let head = String::from_utf8_lossy(&response);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431") || head.starts_with("HTTP/1.1 400"),
        "{head:.80}"
    );
    assert_eq!(server.store.calls().total(), 0);
    assert_eq!(
        server.initialize("alice").await.0,
        StatusCode::OK,
        "still serving"
    );
}

// ---------------------------------------------------------------------------
// Bodies.

/// Sends a request head and then body bytes from `chunks` as fast as the
/// socket takes them, until the server answers; returns the status line,
/// the whole answer and how many body bytes were written.
async fn stream_body(
    addr: SocketAddr,
    head: &str,
    chunk: Vec<u8>,
    limit: u64,
    pace: Option<Duration>,
) -> (String, Vec<u8>, u64, Duration) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = {
        let answered = answered.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            while sent < limit && !answered.load(Ordering::SeqCst) {
                match tokio::time::timeout(Duration::from_secs(1), wr.write_all(&chunk)).await {
                    Ok(Ok(())) => sent += chunk.len() as u64,
                    _ => break, // closed by the server, or it stopped reading
                }
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
            }
            sent
        })
    };
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !response.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    let elapsed = started.elapsed();
    answered.store(true, Ordering::SeqCst);
    // The rest of a small answer body.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let sent = writer.await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    (
        text.lines().next().unwrap_or("").to_string(),
        response,
        sent,
        elapsed,
    )
}

fn json_body_of(response: &[u8]) -> Value {
    let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &response[at..];
    // The layer answers with a known length; axum may also chunk it.
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let start = text.find('{').unwrap();
        let end = text.rfind('}').unwrap();
        serde_json::from_str(&text[start..=end]).unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_initialize_body_is_refused_early_with_413() {
    const HUNDRED_MB: u64 = 100 * 1024 * 1024;
    let server = Server::start(Config::default(), |l| l).await;

    // Declared length: refused before a byte of the body is read.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\nContent-Length: {HUNDRED_MB}\r\n\r\n"
    );
    let (status, response, sent, elapsed) =
        stream_body(server.addr, &head, vec![b' '; 64 * 1024], HUNDRED_MB, None).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(
        json_body_of(&response)["error"]["code"],
        codes::INVALID_REQUEST
    );
    assert!(sent < 16 * 1024 * 1024, "client got to send {sent} bytes");
    assert!(elapsed < Duration::from_secs(5));
    eprintln!("declared 100 MB body: 413 after {elapsed:?}, client sent {sent} bytes");

    // Chunked, no length: read up to the cap (64 KiB), then refused.
    let head = "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let (status, response, sent, elapsed) =
        stream_body(server.addr, head, chunk, HUNDRED_MB, None).await;
    eprintln!("chunked 100 MB body: {status} after {elapsed:?}, client sent {sent} bytes");
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(
        json_body_of(&response)["error"]["code"],
        codes::INVALID_REQUEST
    );
    assert!(sent < 16 * 1024 * 1024, "client got to send {sent} bytes");

    // A well-formed initialize just over the cap (65,537 bytes and more).
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let (status, response, _, _) = stream_body(
        server.addr,
        &head,
        big.clone().into_bytes(),
        big.len() as u64,
        None,
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(
        text.contains("content-type: application/json"),
        "{text:.300}"
    );
    assert_eq!(
        json_body_of(&response)["error"]["code"],
        codes::INVALID_REQUEST
    );
    assert_eq!(server.store.calls().total(), 0, "no session was created");
    assert_eq!(
        server.initialize("alice").await.0,
        StatusCode::OK,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_initialize_body_is_408_after_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    let server = Server::start(Config::default(), |l| l.initialize_body_timeout(TIMEOUT)).await;

    // Stalls after a few bytes.
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        INIT.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&INIT.as_bytes()[..20]).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&response[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(elapsed >= TIMEOUT, "{elapsed:?}");
    assert!(elapsed < TIMEOUT + Duration::from_secs(2), "{elapsed:?}");
    assert!(text
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    assert_eq!(
        json_body_of(&response[..n])["error"]["code"],
        codes::INVALID_REQUEST
    );

    // Trickles one byte every 50 ms: the timeout bounds the whole body, not each read.
    let (status, response, sent, elapsed) = stream_body(
        server.addr,
        &head,
        b" ".to_vec(),
        INIT.len() as u64,
        Some(Duration::from_millis(50)),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert_eq!(
        json_body_of(&response)["error"]["code"],
        codes::INVALID_REQUEST
    );
    assert!(elapsed >= TIMEOUT, "{elapsed:?}");
    assert!(elapsed < TIMEOUT + Duration::from_secs(2), "{elapsed:?}");
    assert!(
        sent < INIT.len() as u64,
        "cut off before the body was complete"
    );
    assert_eq!(server.store.calls().total(), 0, "no session was created");
}

#[tokio::test]
async fn invalid_utf8_and_invalid_json_are_400_parse_errors() {
    let server = Server::start(Config::default(), |l| l).await;
    let bodies: [&[u8]; 6] = [
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\xff\xfe\"}",
        b"\xff\xfe\xfd",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"",
        b"",
        b"{'method':'initialize'}",
        b"\xef\xbb\xbf{\"method\":\"initialize\"}", // a UTF-8 BOM is not JSON
    ];
    for body in bodies {
        let (status, headers, answer) = server.post("alice", &[], body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_error(status, &headers, &answer, codes::PARSE_ERROR);
        assert!(String::from_utf8_lossy(&answer).contains("not valid JSON"));
    }
    // Valid JSON that is not an initialize needs a session: 400, invalid request.
    for body in [&b"[]"[..], b"42", b"{\"method\":[\"initialize\"]}"] {
        let (status, headers, answer) = server.post("alice", &[], body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_error(status, &headers, &answer, codes::INVALID_REQUEST);
    }
    assert_eq!(server.store.calls().total(), 0);
}

// ---------------------------------------------------------------------------
// Logs never hold a whole session id.

#[cfg(feature = "tracing")]
mod logs {
    use super::*;
    use axum::extract::Request;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    /// Every line logged in this test binary (one global subscriber; tests
    /// run on many threads).
    fn captured() -> &'static Mutex<Vec<u8>> {
        static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
        static INIT: OnceLock<()> = OnceLock::new();
        let log = LOG.get_or_init(Mutex::default);
        INIT.get_or_init(|| {
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::fmt()
                .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
                .with_writer(|| Capture)
                .with_ansi(false)
                .finish()
                .try_init()
                .expect("no other global subscriber");
        });
        log
    }

    struct Capture;

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            captured().lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The inner server of an adopt-mode layer: answers `initialize` with a
    /// session id of its own choosing (from the `x-mint` request header).
    async fn minting(request: Request) -> Response {
        let mint = request.headers().get("x-mint").cloned();
        let mut response = Json(json!({"ok": true})).into_response();
        if let Some(mint) = mint {
            response.headers_mut().insert("mcp-session-id", mint);
        }
        response
    }

    async fn failing(_: Request) -> Response {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_log_line_holds_a_whole_session_id() {
        let log = captured();
        let mut ids: Vec<String> = Vec::new();

        // Mint mode: store failures on every path.
        let server = Server::start(Config::default(), |l| l).await;
        let (_, id, _) = server.initialize("alice").await;
        let id = id.unwrap();
        ids.push(id.clone());
        server.store.set_down(true);
        assert_eq!(
            server.ping("alice", &id).await,
            StatusCode::SERVICE_UNAVAILABLE
        ); // touch
        assert_eq!(
            server.initialize("alice").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        ); // create
        let res = server
            .client
            .delete(server.url())
            .header("authorization", "Bearer alice")
            .header("mcp-session-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE); // delete
        server.store.set_down(false);
        // Delete fails after the lookup succeeded.
        server.store.set_down_for(&["delete"]);
        let res = server
            .client
            .delete(server.url())
            .header("authorization", "Bearer alice")
            .header("mcp-session-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        server.store.set_down_for(&[]);

        // An initialize the inner server fails: the orphan session's delete fails too.
        let orphans = Server::start_with(Config::default(), |l| l, any(failing)).await;
        orphans.store.set_down_for(&["delete"]);
        assert_eq!(
            orphans.initialize("alice").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // the guard's delete runs
        for created in orphans.store.ids_seen() {
            ids.push(created.reveal());
        }

        // Adopt mode: unusable and refused upstream ids.
        let adopt = Server::start_with(
            Config::default()
                .max_sessions_per_identity(1)
                .identity_limit(IdentityLimitPolicy::Reject),
            |l| l.id_mode(IdMode::Adopt),
            any(minting),
        )
        .await;
        let secret_long = format!("upstream-secret-{}", "s".repeat(200));
        let secret_ok = "upstream-secret-0123456789abcdef0123456789";
        let secret_refused = "upstream-secret-refused-0123456789abcdef";
        ids.extend([
            secret_long.clone(),
            secret_ok.to_string(),
            secret_refused.to_string(),
        ]);
        let (status, _, _) = adopt.post("alice", &[("x-mint", &secret_long)], INIT).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let (status, _, _) = adopt.post("alice", &[("x-mint", secret_ok)], INIT).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = adopt
            .post("alice", &[("x-mint", secret_refused)], INIT)
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS); // "could not adopt"
        adopt.store.set_down(true);
        assert_eq!(
            adopt.ping("alice", secret_ok).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        adopt.store.set_down(false);

        let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        eprintln!("captured log:\n{text}");
        let warnings = text.lines().filter(|l| l.contains("WARN")).count();
        assert!(warnings >= 7, "expected the warning paths to log:\n{text}");
        for id in &ids {
            assert!(
                !text.contains(id.as_str()),
                "a log line holds a whole session id:\n{text}"
            );
            assert!(
                !text.contains(&id[..id.len() / 2]),
                "a log line holds half a session id:\n{text}"
            );
        }
        // The lines do identify the session, by a short prefix.
        assert!(text.contains(&id[..8]), "{text}");
        // The request spans and the lifecycle events (issue 15) name it by
        // its digest only; store failures carry their latency.
        let digest = format!(
            "{:016x}",
            mcp_session::SessionId::parse(&id).unwrap().digest()
        );
        let named = |what: &str| {
            text.lines()
                .any(|l| l.contains(what) && l.contains(&digest))
        };
        assert!(named("session created"), "{text}");
        assert!(named("mcp.session.request"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("session store call failed") && l.contains("latency_ms")),
            "{text}"
        );
    }

    /// With Redis: an undecodable stored value and a dead server are logged
    /// by a short prefix of the id, and redis-rs' errors carry no key.
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_warnings_hold_no_whole_session_id() {
        let log = captured();
        let Some(redis) = tokio::task::spawn_blocking(crate::redis_server::RedisServer::start)
            .await
            .unwrap()
        else {
            return;
        };
        let prefix = format!("abuse:{}:", std::process::id());
        let store = crate::redis_stores::replica(&redis, &prefix, Duration::from_millis(300)).await;
        let router = Router::new().route("/mcp", any(handler)).layer(
            SessionLayer::new(SessionManager::new(store, Config::default()))
                .resolve_identity(bearer(readers)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let client = reqwest::Client::new();
        let post = |id: Option<String>, body: &'static str| {
            let mut req = client
                .post(format!("http://{addr}/mcp"))
                .header("authorization", "Bearer alice")
                .body(body);
            if let Some(id) = id {
                req = req.header("mcp-session-id", id);
            }
            req.send()
        };
        let res = post(None, INIT).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let first = res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        // A value this release cannot decode: not found, logged by prefix.
        // (Keys hold a hash of the id: the one session key there is.)
        let keys = redis.cli(&["--scan", "--pattern", &format!("{prefix}s:*")]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let redis_cli = redis.cli(&["SET", keys[0], "not a session value"]);
        assert!(redis_cli.contains("OK"), "{redis_cli}");
        let res = post(None, INIT).await.unwrap();
        let second = res.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let res = post(Some(first.clone()), PING).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // Redis gone: 503, logged.
        tokio::task::spawn_blocking(move || redis.kill())
            .await
            .unwrap();
        let res = post(Some(second.clone()), PING).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let res = post(None, INIT).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

        let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        eprintln!("captured log:\n{text}");
        let ours: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains(&first[..8])
                    || l.contains("store failed")
                    || l.contains("could not create")
            })
            .collect();
        assert!(
            ours.iter()
                .any(|l| l.contains("undecodable") && l.contains(&first[..8])),
            "{text}"
        );
        assert!(ours.len() >= 3, "{text}");
        for id in [&first, &second] {
            assert!(
                !text.contains(id.as_str()),
                "a log line holds a whole session id:\n{text}"
            );
            assert!(
                !text.contains(&id[..32]),
                "a log line holds half a session id:\n{text}"
            );
        }
    }
}

#[cfg(all(feature = "tracing", feature = "redis"))]
#[path = "support/redis_server.rs"]
mod redis_server;

#[cfg(all(feature = "tracing", feature = "redis"))]
#[path = "support/redis_stores.rs"]
mod redis_stores;
