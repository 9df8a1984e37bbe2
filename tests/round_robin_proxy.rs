//! The test tooling behind `.ci/conformance.sh`'s replicas run:
//! `examples/round_robin_proxy.rs`, as a child process, in front of two
//! real HTTP upstreams on loopback. Its guarantees are what the replicas
//! run's verdict rests on: each request of a keep-alive client goes to the
//! next upstream, SSE flows event by event, headers and bodies pass
//! through, and the counts it prints on SIGTERM are right.

#[path = "support/example_server.rs"]
mod example_server;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use example_server::example_binary_named;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Headers an MCP client relies on; each must reach the upstream as sent.
const PASSED_THROUGH: [(&str, &str); 4] = [
    ("mcp-protocol-version", "2025-11-25"),
    ("last-event-id", "stream-1.7"),
    ("authorization", "Bearer alice-token"),
    ("x-custom", "kept"),
];

struct Upstream {
    name: &'static str,
    /// Lets the SSE stream send its second event.
    next_event: Notify,
}

/// Echoes the upstream's name, the headers above, the session id and the
/// body; a request without a session id gets one named after the upstream
/// (as an MCP server answers `initialize`).
async fn echo(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seen: serde_json::Map<String, serde_json::Value> = PASSED_THROUGH
        .iter()
        .filter_map(|(name, _)| Some((name.to_string(), header(name)?.into())))
        .collect();
    let json = serde_json::json!({
        "upstream": up.name,
        "headers": seen,
        "session": header("mcp-session-id"),
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::builder().header("content-type", "application/json");
    if header("mcp-session-id").is_none() {
        response = response.header("mcp-session-id", format!("session-from-{}", up.name));
    }
    response.body(Body::from(json.to_string())).unwrap()
}

/// One SSE event, then the second only once the test has seen the first:
/// a proxy that buffered the body would deliver nothing until the end.
async fn sse(State(up): State<Arc<Upstream>>) -> Response {
    let events = futures::stream::unfold(0, move |step| {
        let up = up.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from("data: one\n\n")), 1)),
                1 => {
                    up.next_event.notified().await;
                    Some((Ok(Bytes::from("data: two\n\n")), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

async fn upstream(name: &'static str) -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream {
        name,
        next_event: Notify::new(),
    });
    let app = Router::new()
        .route("/mcp", post(echo))
        .route("/sse", get(sse))
        .with_state(state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// The proxy process; its stdout lines after `listening on`.
struct Proxy {
    child: Child,
    url: String,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proxy {
    fn start(upstreams: &[&str]) -> Proxy {
        let mut command = Command::new(example_binary_named("round_robin_proxy"));
        command.args(["--listen", "127.0.0.1:0"]);
        for upstream in upstreams {
            command.args(["--upstream", upstream]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the proxy printed a line").unwrap();
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Proxy { child, url, lines }
    }

    /// Stops it with SIGTERM (as .ci/conformance.sh does); its report.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let report = self.lines.by_ref().map(Result::unwrap).collect();
        assert!(
            self.child.wait().unwrap().success(),
            "SIGTERM is a clean stop"
        );
        report
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn each_request_of_a_kept_alive_connection_goes_to_the_next_upstream() {
    let ((a, _), (b, _)) = (upstream("a").await, upstream("b").await);
    let proxy = Proxy::start(&[&a, &b]);
    // One connection, kept alive: at most one idle connection in the pool,
    // and each request waits for the one before.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let mut session = None;
    let mut served = Vec::new();
    for i in 0..6 {
        let mut request = client
            .post(format!("{}/mcp", proxy.url))
            .body(format!("request {i}"));
        for (name, value) in PASSED_THROUGH {
            request = request.header(name, value);
        }
        if let Some(id) = &session {
            request = request.header("mcp-session-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if session.is_none() {
            session = response
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
        }
        let echo: serde_json::Value = response.json().await.unwrap();
        for (name, value) in PASSED_THROUGH {
            assert_eq!(echo["headers"][name], value, "{name} reaches the upstream");
        }
        assert_eq!(echo["body"], format!("request {i}"));
        assert_eq!(
            echo["session"].as_str(),
            session.as_deref().filter(|_| i > 0)
        );
        served.push(echo["upstream"].as_str().unwrap().to_string());
    }
    assert_eq!(served, ["a", "b", "a", "b", "a", "b"]);
    assert_eq!(session.as_deref(), Some("session-from-a"));

    let report = tokio::task::spawn_blocking(move || proxy.stop())
        .await
        .unwrap();
    assert_eq!(
        report,
        [
            format!("round-robin proxy: upstream 0 {a} served 3 requests"),
            format!("round-robin proxy: upstream 1 {b} served 3 requests"),
            // Requests 1, 3 and 5 carried a's session to b.
            "round-robin proxy: 3 requests of a session served by another upstream than the one that created it".to_string(),
        ]
    );
}

#[tokio::test]
async fn sse_flows_event_by_event() {
    let (a, state) = upstream("a").await;
    let proxy = Proxy::start(&[&a]);
    let url = format!("{}/sse", proxy.url);
    // A proxy that buffered the body would send nothing, not even the
    // status, before the upstream ended the stream: bounded by a timeout.
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        let mut response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let first = response.chunk().await.unwrap().unwrap();
        (response, first)
    })
    .await
    .expect("the first event arrives while the stream is still open");
    let (response, first) = first;
    assert_eq!(&first[..], b"data: one\n\n");
    state.next_event.notify_one();
    let rest = response.bytes().await.unwrap();
    assert_eq!(&rest[..], b"data: two\n\n");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_with_a_json_rpc_error() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let proxy = Proxy::start(&[&closed]);
    let response = reqwest::Client::new()
        .post(format!("{}/mcp", proxy.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32603);
}

#[test]
fn bad_arguments_are_refused() {
    let proxy = example_binary_named("round_robin_proxy");
    for args in [
        &["--listen", "127.0.0.1:0"][..],
        &["--upstream", "http://127.0.0.1:1"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "https://127.0.0.1:1",
        ],
        &["--listen", "nowhere", "--upstream", "http://127.0.0.1:1"],
    ] {
        let out = Command::new(&proxy).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
}
