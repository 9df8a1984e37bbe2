//! End to end over loopback HTTP (127.0.0.1 only): requests per second and
//! latency percentiles of MCP requests against three servers, each in its
//! own process, driven by a load generator in another process (this binary
//! re-executes itself: `__serve KIND` runs a server, `__load ...` the load).
//!
//! Servers (all: rmcp 3.11 `StreamableHttpService` on axum, the example's
//! demo bearer auth, TCP_NODELAY on accepted sockets, tokio multi-thread
//! runtime):
//!
//! - `layer`: examples/server/ itself (compiled in as a module), mint
//!   mode: `SessionLayer` over `MokaStore`, rmcp stateless with JSON replies;
//! - `legacy`: the same rmcp app without the layer, in rmcp's default legacy
//!   session mode (`LocalSessionManager`, SSE replies): rmcp's own sessions;
//! - `stateless`: the same rmcp app without the layer and without sessions
//!   (stateless, JSON replies): what the layer's server is minus the layer;
//! - `layer_plain`: `stateless`'s app (same tool code) behind `SessionLayer`
//!   over `MokaStore`: the layer's own cost, without the example's tool
//!   (whose `whoami` also renders the 64-character session id).
//!
//! Loads (closed loop: each connection sends its next request when the
//! previous reply has been read in full; HTTP/1.1 keep-alive):
//!
//! - `call`: `tools/call whoami` on an existing session (each connection
//!   first runs `initialize` + `notifications/initialized`, untimed; no
//!   session for `stateless`);
//! - `init`: `initialize` requests, each creating a session (`layer`: the
//!   layer mints and stores one; `legacy`: rmcp spawns one).
//!
//! Targets (issue 4): `layer` call rps >= 95% of `legacy` call rps; `layer`
//! init rps >= 1.5x `legacy` init rps.
//!
//! `cargo bench --all-features --bench e2e` (the example's features).
//! Environment: `E2E_SECS` (measured seconds per run, default 5),
//! `E2E_WARMUP` (default 1), `E2E_CONNS` (default 8), `E2E_ROUNDS`
//! (default 3; cases alternate within a round).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[allow(dead_code, unused_imports)] // the binary's `main` and the like
#[path = "../examples/server/main.rs"]
mod server;

#[allow(dead_code)]
#[path = "support/plain_server.rs"]
mod plain_server;

const PROTOCOL: &str = "2025-11-25";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e-bench","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__serve") => return run_server(&args[1]),
        Some("__load") => return run_load(&args[1..]),
        _ => {}
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    orchestrate(filter.as_deref());
}

// ---------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------

struct Outcome {
    requests: u64,
    errors: u64,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

fn orchestrate(filter: Option<&str>) {
    let secs: f64 = env_or("E2E_SECS", 5.0);
    let warmup: f64 = env_or("E2E_WARMUP", 1.0);
    let conns: usize = env_or("E2E_CONNS", 8);
    let rounds: usize = env_or("E2E_ROUNDS", 3);
    let cases: Vec<(&str, &str)> = [
        ("layer", "call"),
        ("legacy", "call"),
        ("stateless", "call"),
        ("layer_plain", "call"),
        ("layer", "init"),
        ("legacy", "init"),
    ]
    .into_iter()
    .filter(|(server, load)| filter.is_none_or(|f| format!("{load}/{server}").contains(f)))
    .collect();
    let exe = std::env::current_exe().expect("own path");
    println!(
        "e2e: {conns} connections, {warmup}s warm-up + {secs}s measured per run, {rounds} round(s)"
    );
    println!(
        "{:<16} {:>5} {:>10} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "case", "round", "requests", "errors", "req/s", "p50 µs", "p99 µs", "p99.9 µs"
    );
    let mut all: Vec<(String, Outcome)> = Vec::new();
    for round in 1..=rounds {
        for (server_kind, load) in &cases {
            let (mut child, addr) = spawn_server(&exe, server_kind);
            let output = Command::new(&exe)
                .args([
                    "__load",
                    load,
                    server_kind,
                    &addr.to_string(),
                    &conns.to_string(),
                    &warmup.to_string(),
                    &secs.to_string(),
                ])
                .stderr(Stdio::inherit())
                .output()
                .expect("run the load generator");
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                output.status.success(),
                "load {load} on {server_kind} failed"
            );
            let text = String::from_utf8_lossy(&output.stdout);
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("LOAD "))
                .expect("LOAD line");
            let f: Vec<f64> = line
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            let outcome = Outcome {
                requests: f[0] as u64,
                errors: f[1] as u64,
                rps: f[2],
                p50: f[3],
                p99: f[4],
                p999: f[5],
            };
            let name = format!("{load}/{server_kind}");
            println!(
                "{:<16} {:>5} {:>10} {:>7} {:>10.0} {:>9.0} {:>9.0} {:>9.0}",
                name,
                round,
                outcome.requests,
                outcome.errors,
                outcome.rps,
                outcome.p50,
                outcome.p99,
                outcome.p999
            );
            all.push((name, outcome));
        }
    }
    // Medians over rounds.
    println!("\nmedian over rounds:");
    let median = |name: &str, pick: fn(&Outcome) -> f64| -> Option<f64> {
        let mut v: Vec<f64> = all
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, o)| pick(o))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Some(if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        })
    };
    for (server_kind, load) in &cases {
        let name = format!("{load}/{server_kind}");
        println!(
            "{:<16} {:>10.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs",
            name,
            median(&name, |o| o.rps).unwrap(),
            median(&name, |o| o.p50).unwrap(),
            median(&name, |o| o.p99).unwrap()
        );
    }
    if let (Some(layer), Some(legacy)) = (
        median("call/layer", |o| o.rps),
        median("call/legacy", |o| o.rps),
    ) {
        let cost = 1.0 - layer / legacy;
        println!(
            "target: layer call rps within 5% of rmcp legacy: layer/legacy = {:.3} (cost {:+.1}%) ({})",
            layer / legacy,
            cost * 100.0,
            if cost <= 0.05 { "met" } else { "MISSED" }
        );
    }
    if let (Some(layer), Some(stateless)) = (
        median("call/layer", |o| o.rps),
        median("call/stateless", |o| o.rps),
    ) {
        println!(
            "layer vs the same stateless rmcp without the layer: layer/stateless = {:.3} (cost {:+.1}%)",
            layer / stateless,
            (1.0 - layer / stateless) * 100.0
        );
    }
    if let (Some(layer), Some(stateless)) = (
        median("call/layer_plain", |o| o.rps),
        median("call/stateless", |o| o.rps),
    ) {
        println!(
            "layer alone (same tool code): layer_plain/stateless = {:.3} (cost {:+.1}%)",
            layer / stateless,
            (1.0 - layer / stateless) * 100.0
        );
    }
    if let (Some(layer), Some(legacy)) = (
        median("init/layer", |o| o.rps),
        median("init/legacy", |o| o.rps),
    ) {
        println!(
            "target: layer initialize rate >= 1.5x rmcp legacy: {:.2}x ({})",
            layer / legacy,
            if layer / legacy >= 1.5 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

/// Starts `__serve KIND` on a free 127.0.0.1 port; returns once it listens.
fn spawn_server(exe: &std::path::Path, kind: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(exe)
        .args(["__serve", kind])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.trim_end_matches("/mcp").parse().unwrap();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn run_server(kind: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        match kind {
            "layer" => {
                let options = server::Options {
                    addr: listener.local_addr().unwrap(),
                    ..server::Options::default()
                };
                server::serve(listener, options, std::future::pending())
                    .await
                    .unwrap();
            }
            "layer_plain" => {
                let layer = mcp_session::SessionLayer::new(mcp_session::SessionManager::new(
                    mcp_session::MokaStore::new(100_000),
                    mcp_session::Config::default(),
                ));
                plain_server::serve_app(listener, plain_server::app_with_layer(layer))
                    .await
                    .unwrap()
            }
            "legacy" => plain_server::serve(listener, plain_server::Sessions::Legacy)
                .await
                .unwrap(),
            "stateless" => plain_server::serve(listener, plain_server::Sessions::None)
                .await
                .unwrap(),
            other => panic!("unknown server {other}"),
        }
    });
}

// ---------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------

struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    token: &'static str,
}

impl Conn {
    async fn open(addr: SocketAddr, token: &'static str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        Conn {
            sender,
            addr,
            token,
        }
    }

    /// POSTs `body`; returns the status, the session id header and the
    /// whole body, or `None` on a transport error (the connection is then
    /// replaced).
    async fn post(
        &mut self,
        body: &'static str,
        session: Option<&str>,
    ) -> Option<(StatusCode, Option<String>, Bytes)> {
        let mut request = Request::post("/mcp")
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", self.token);
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        if body != INITIALIZE {
            // After initialize, every request names the negotiated revision
            // (sessions or not: rmcp otherwise assumes 2025-03-26).
            request = request.header("mcp-protocol-version", PROTOCOL);
        }
        let request = request.body(Full::new(Bytes::from_static(body.as_bytes())));
        let result = async {
            self.sender.ready().await.ok()?;
            let response = self.sender.send_request(request.unwrap()).await.ok()?;
            let status = response.status();
            let id = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = tokio::time::timeout(Duration::from_secs(5), response.collect())
                .await
                .ok()?
                .ok()?
                .to_bytes();
            Some((status, id, body))
        }
        .await;
        if result.is_none() {
            *self = Conn::open(self.addr, self.token).await;
        }
        result
    }

    /// `initialize` + `notifications/initialized`: the new session's id.
    async fn handshake(&mut self) -> String {
        let (status, id, _) = self.post(INITIALIZE, None).await.expect("initialize");
        assert_eq!(status, StatusCode::OK, "initialize");
        let id = id.expect("Mcp-Session-Id on the initialize answer");
        let (status, _, _) = self
            .post(INITIALIZED, Some(&id))
            .await
            .expect("notifications/initialized");
        assert_eq!(status, StatusCode::ACCEPTED, "notifications/initialized");
        id
    }
}

fn run_load(args: &[String]) {
    let load = args[0].clone();
    let server_kind = args[1].clone();
    let addr: SocketAddr = args[2].parse().unwrap();
    let conns: usize = args[3].parse().unwrap();
    let warmup = Duration::from_secs_f64(args[4].parse().unwrap());
    let secs = Duration::from_secs_f64(args[5].parse().unwrap());
    assert!(addr.ip().is_loopback(), "loopback only");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let start = Instant::now() + Duration::from_millis(200);
        let measure_from = start + warmup;
        let until = measure_from + secs;
        let mut tasks = Vec::new();
        for c in 0..conns {
            let load = load.clone();
            let server_kind = server_kind.clone();
            let token = if c % 2 == 0 {
                "Bearer alice-token"
            } else {
                "Bearer bob-token"
            };
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(addr, token).await;
                let session = match (load.as_str(), server_kind.as_str()) {
                    ("call", "stateless") => None,
                    ("call", _) => Some(conn.handshake().await),
                    _ => None,
                };
                tokio::time::sleep_until(start.into()).await;
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let (mut requests, mut errors) = (0u64, 0u64);
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let reply = match load.as_str() {
                        "call" => conn.post(WHOAMI, session.as_deref()).await,
                        _ => conn.post(INITIALIZE, None).await,
                    };
                    let done = Instant::now();
                    let ok = match &reply {
                        Some((status, id, body)) => {
                            *status == StatusCode::OK
                                && (load != "init" || id.is_some())
                                && body.windows(8).any(|w| w == b"\"result\"")
                        }
                        None => false,
                    };
                    if sent >= measure_from && done <= until {
                        requests += 1;
                        if ok {
                            latencies.push((done - sent).as_micros().min(u32::MAX as u128) as u32);
                        } else {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("e2e load: bad reply: {reply:?}");
                            }
                        }
                    }
                }
                (requests, errors, latencies)
            }));
        }
        let (mut requests, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
        for task in tasks {
            let (r, e, l) = task.await.unwrap();
            requests += r;
            errors += e;
            latencies.extend(l);
        }
        latencies.sort_unstable();
        let pct = |p: f64| -> f64 {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i] as f64
        };
        let good = requests - errors;
        println!(
            "LOAD {requests} {errors} {} {} {} {}",
            good as f64 / secs.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(0.999)
        );
    });
}
