//! Soak: runs the example server (`examples/server/`) under load for a
//! bounded time, on 127.0.0.1 only, and reports what it served and how its
//! memory behaved.
//!
//! ```text
//! cargo build --release --all-features --example server --example soak
//! target/release/examples/soak [--duration-secs 60] [--clients 32] [--timeout-secs 5]
//!                              [--mode mint|adopt] [--redis-url redis://127.0.0.1:6379]
//!                              [--server-bin PATH] [--settle-secs N] [--abandon-percent 50]
//! ```
//!
//! Many concurrent clients (as the demo users `alice` and `bob`) each loop:
//! `initialize` → `notifications/initialized` → a few `tools/call whoami`
//! → then either `DELETE` (and, sometimes, one more request with the
//! deleted id, which must be 404) or abandon the session (it must expire
//! after `--timeout-secs`). Some clients speak the sessionless 2026-07-28
//! revision instead (`server/discover` + `tools/call` without a session).
//!
//! Reported: requests served, answers by status and kind (every kind is
//! either intended — and listed as such — or counted as unexpected, which
//! makes the exit code 1), the server's RSS (VmRSS from /proc/PID/status)
//! at start, middle and end plus one sample per second, and, with
//! `--redis-url`, Redis `used_memory` at baseline, at the end of the load,
//! and after the sessions expired.
//!
//! Also sampled once a second from the server's `GET /stats`: how many
//! sessions rmcp holds (adopt mode) against how many the in-memory session
//! store holds. In adopt mode the run fails unless rmcp's count follows the
//! store's (never more than the store's plus the sessions being created
//! and closed at that moment, at most one per client, plus 5%) and drops
//! to 0 once the abandoned sessions have expired.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str = "\
usage: soak [--duration-secs 60] [--clients 32] [--timeout-secs 5] [--mode mint|adopt]
            [--redis-url URL] [--server-bin PATH] [--settle-secs N] [--abandon-percent 50]";

#[derive(Clone, Debug)]
struct Options {
    duration: Duration,
    clients: usize,
    timeout_secs: u64,
    mode: String,
    redis_url: Option<String>,
    server_bin: String,
    settle: Option<Duration>,
    abandon_percent: u64,
}

fn parse_args() -> Result<Options, String> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut o = Options {
        duration: Duration::from_secs(60),
        clients: 32,
        timeout_secs: 5,
        mode: "mint".into(),
        redis_url: None,
        server_bin: format!("{target}/release/examples/server"),
        settle: None,
        abandon_percent: 50,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
        match flag.as_str() {
            "--duration-secs" => o.duration = Duration::from_secs(number(value()?)?),
            "--clients" => o.clients = number(value()?)?.max(1) as usize,
            "--timeout-secs" => o.timeout_secs = number(value()?)?.max(1),
            "--mode" => o.mode = value()?,
            "--redis-url" => o.redis_url = Some(value()?),
            "--server-bin" => o.server_bin = value()?,
            "--settle-secs" => o.settle = Some(Duration::from_secs(number(value()?)?)),
            "--abandon-percent" => o.abandon_percent = number(value()?)?.min(100),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.mode != "mint" && o.mode != "adopt" {
        return Err(format!("--mode {:?}: expected mint or adopt", o.mode));
    }
    if let Some(url) = &o.redis_url {
        let host = url
            .trim_start_matches("redis://")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        if host != "127.0.0.1" && host != "localhost" {
            return Err("--redis-url must point at 127.0.0.1 (the soak is local only)".into());
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// The server process.

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(o: &Options) -> Result<Server, String> {
        let mut cmd = Command::new(&o.server_bin);
        cmd.args(["--addr", "127.0.0.1:0", "--timeout-secs"])
            .arg(o.timeout_secs.to_string())
            .args(["--mode", &o.mode])
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = &o.redis_url {
            cmd.args(["--redis-url", url]);
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {}: {e} (build it with `cargo build --release --all-features --example server`)",
                o.server_bin
            )
        })?;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    return Err("the server exited before listening".into());
                }
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, url })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_used_memory(url: &str) -> Option<u64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "info", "memory"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))?
        .trim()
        .parse()
        .ok()
}

/// The keys the example server's store left (default prefix) and the bytes
/// `MEMORY USAGE` reports for them.
fn redis_keys_usage(url: &str) -> (u64, u64) {
    let Ok(out) = Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", "mcp-session:*"])
        .output()
    else {
        return (0, 0);
    };
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut bytes = 0;
    for key in &keys {
        if let Ok(out) = Command::new("redis-cli")
            .args(["-u", url, "memory", "usage", key])
            .output()
        {
            bytes += String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    (keys.len() as u64, bytes)
}

fn redis_dbsize(url: &str) -> Option<u64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "dbsize"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

// ---------------------------------------------------------------------------
// Tallies.

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    kinds: Mutex<BTreeMap<String, u64>>,
    unexpected: Mutex<BTreeMap<String, u64>>,
    sessions_created: AtomicU64,
    sessions_deleted: AtomicU64,
    sessions_abandoned: AtomicU64,
}

impl Tally {
    fn count(&self, kind: &str) {
        *self.kinds.lock().unwrap().entry(kind.into()).or_default() += 1;
    }
    fn unexpected(&self, kind: String) {
        *self.unexpected.lock().unwrap().entry(kind).or_default() += 1;
    }
}

// ---------------------------------------------------------------------------
// One client.

struct Client {
    http: reqwest::Client,
    url: String,
    token: &'static str,
    tally: Arc<Tally>,
    abandon_percent: u64,
}

enum Answer {
    Ok(Option<String>, Value),
    Status(u16, Value),
    Transport(String),
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        session: Option<&str>,
        version: &str,
        body: Option<Value>,
    ) -> Answer {
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .request(method, &self.url)
            .header("authorization", self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version);
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        if let Some(body) = body {
            if let Some(m) = body.get("method").and_then(Value::as_str) {
                req = req.header("mcp-method", m);
            }
            if let Some(name) = body["params"]["name"].as_str() {
                req = req.header("mcp-name", name);
            }
            req = req.header("content-type", "application/json").json(&body);
        }
        let res = match req.send().await {
            Ok(res) => res,
            Err(e) => return Answer::Transport(e.to_string()),
        };
        let status = res.status().as_u16();
        let id = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let sse = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = match res.text().await {
            Ok(text) => text,
            Err(e) => return Answer::Transport(e.to_string()),
        };
        let value = if sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|v| v.get("result").is_some() || v.get("error").is_some())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            Answer::Ok(id, value)
        } else {
            Answer::Status(status, value)
        }
    }

    /// Classifies an answer: `true` if it was the wanted success.
    fn expect(&self, what: &str, answer: &Answer, ok_kind: &str, allowed: &[(u16, &str)]) -> bool {
        match answer {
            Answer::Ok(..) => {
                self.tally.count(ok_kind);
                true
            }
            Answer::Status(status, body) => {
                match allowed.iter().find(|(s, _)| s == status) {
                    Some((_, kind)) => self.tally.count(kind),
                    None => self.tally.unexpected(format!(
                        "{what}: {status} {}",
                        body["error"]["message"].as_str().unwrap_or("")
                    )),
                }
                false
            }
            Answer::Transport(e) => {
                self.tally
                    .unexpected(format!("{what}: transport error: {e}"));
                false
            }
        }
    }

    async fn handshake_session(&self, rng: &mut u64) {
        const V: &str = "2025-06-18";
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": V, "capabilities": {}, "clientInfo": {"name":"soak","version":"1"}}});
        let answer = self.send(reqwest::Method::POST, None, V, Some(init)).await;
        // 429/503 cannot happen with the demo server's caps (per identity:
        // evict oldest; global: 100,000).
        if !self.expect("initialize", &answer, "200 initialize", &[]) {
            return;
        }
        let Answer::Ok(Some(id), _) = answer else {
            self.tally
                .unexpected("initialize: no Mcp-Session-Id".into());
            return;
        };
        self.tally.sessions_created.fetch_add(1, Ordering::Relaxed);
        // Evicted by a newer session of the same user (per-identity cap,
        // evict-oldest policy): 404, and the client starts over.
        let evicted = [(
            404,
            "404 session evicted by the per-identity cap (intended)",
        )];
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let answer = self
            .send(reqwest::Method::POST, Some(&id), V, Some(note))
            .await;
        if !self.expect(
            "notifications/initialized",
            &answer,
            "202 notification",
            &evicted,
        ) {
            return;
        }
        for call in 0..1 + next(rng) % 4 {
            let body = json!({"jsonrpc":"2.0","id":10 + call,"method":"tools/call",
                "params":{"name":"whoami","arguments":{}}});
            let answer = self
                .send(reqwest::Method::POST, Some(&id), V, Some(body))
                .await;
            if !self.expect("tools/call", &answer, "200 tools/call", &evicted) {
                return;
            }
            if let Answer::Ok(_, value) = &answer {
                let text = value["result"]["content"][0]["text"].as_str().unwrap_or("");
                let who: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                if who["session_id"].as_str() != Some(id.as_str()) {
                    self.tally
                        .unexpected(format!("whoami: wrong session in {text:.120}"));
                }
            }
        }
        if next(rng) % 100 >= self.abandon_percent {
            let answer = self.send(reqwest::Method::DELETE, Some(&id), V, None).await;
            if self.expect("DELETE", &answer, "204 DELETE", &evicted) {
                self.tally.sessions_deleted.fetch_add(1, Ordering::Relaxed);
                if next(rng) % 4 == 0 {
                    let body = json!({"jsonrpc":"2.0","id":99,"method":"tools/list"});
                    let answer = self
                        .send(reqwest::Method::POST, Some(&id), V, Some(body))
                        .await;
                    match answer {
                        Answer::Status(404, _) => {
                            self.tally.count("404 deleted session reused (intended)")
                        }
                        Answer::Ok(..) => {
                            self.tally.unexpected("a deleted session was served".into())
                        }
                        other => {
                            self.expect("reuse after DELETE", &other, "", &[]);
                        }
                    }
                }
            }
        } else {
            self.tally
                .sessions_abandoned
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn sessionless(&self) {
        const V: &str = "2026-07-28";
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let discover =
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta": meta}});
        let answer = self
            .send(reqwest::Method::POST, None, V, Some(discover))
            .await;
        if !self.expect(
            "server/discover",
            &answer,
            "200 server/discover (sessionless)",
            &[],
        ) {
            return;
        }
        let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":"whoami","arguments":{},"_meta": meta}});
        let answer = self.send(reqwest::Method::POST, None, V, Some(call)).await;
        if self.expect(
            "sessionless tools/call",
            &answer,
            "200 tools/call (sessionless)",
            &[],
        ) {
            if let Answer::Ok(id, value) = &answer {
                let text = value["result"]["content"][0]["text"].as_str().unwrap_or("");
                let who: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                if id.is_some() || !who["session_id"].is_null() || !who["identity_id"].is_string() {
                    self.tally
                        .unexpected(format!("sessionless whoami: {text:.120}"));
                }
            }
        }
    }
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*: good enough to vary what clients do.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(o: Options) -> Result<bool, String> {
    let server = Server::start(&o)?;
    // Redis baseline: after a warm-up of a few complete sessions (Redis
    // allocates per-command statistics the first time a command is used, and
    // the store loads its scripts), before the load.
    let redis_baseline = match o.redis_url.as_deref() {
        Some(url) => {
            let warm_up = Client {
                http: reqwest::Client::new(),
                url: server.url.clone(),
                token: "Bearer alice-token",
                tally: Arc::default(),
                abandon_percent: 0,
            };
            let mut rng = 1;
            for _ in 0..8 {
                warm_up.handshake_session(&mut rng).await;
            }
            // Also the eviction path (more sessions than the per-identity
            // cap of 64), then delete what is left, so nothing stays behind.
            let mut ids = Vec::new();
            for _ in 0..70 {
                let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                    "protocolVersion":"2025-06-18","capabilities":{},
                    "clientInfo":{"name":"soak","version":"1"}}});
                if let Answer::Ok(Some(id), _) = warm_up
                    .send(reqwest::Method::POST, None, "2025-06-18", Some(init))
                    .await
                {
                    ids.push(id);
                }
            }
            for id in &ids {
                let _ = warm_up
                    .send(reqwest::Method::DELETE, Some(id), "2025-06-18", None)
                    .await;
            }
            let _ = (
                redis_used_memory(url),
                redis_dbsize(url),
                redis_keys_usage(url),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some((
                redis_used_memory(url).unwrap_or(0),
                redis_dbsize(url).unwrap_or(0),
            ))
        }
        None => None,
    };
    println!(
        "soak: server pid {} at {} (mode {}, timeout {} s, {}), {} clients for {:?}",
        server.pid(),
        server.url,
        o.mode,
        o.timeout_secs,
        o.redis_url
            .as_deref()
            .map_or("in-memory store".to_string(), |u| format!("Redis at {u}")),
        o.clients,
        o.duration
    );
    let rss_start = server.rss_kib().unwrap_or(0);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let mut workers = Vec::new();
    for c in 0..o.clients {
        let client = Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            url: server.url.clone(),
            token: if c % 2 == 0 {
                "Bearer alice-token"
            } else {
                "Bearer bob-token"
            },
            tally: tally.clone(),
            abandon_percent: o.abandon_percent,
        };
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            while !stop.load(Ordering::Relaxed) {
                if next(&mut rng) % 10 == 0 {
                    client.sessionless().await;
                } else {
                    client.handshake_session(&mut rng).await;
                }
            }
        }));
    }

    // Sample RSS (and the session counts) once a second while the load runs.
    let mut samples = Vec::new();
    let mut counts = Vec::new();
    let stats_http = reqwest::Client::new();
    let mut redis_peak = 0;
    while started.elapsed() < o.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = server.rss_kib().unwrap_or(0);
        samples.push((
            started.elapsed().as_secs(),
            rss,
            tally.requests.load(Ordering::Relaxed),
        ));
        counts.push(session_counts(&stats_http, &server.url).await);
        if let Some(url) = &o.redis_url {
            redis_peak = redis_peak.max(redis_used_memory(url).unwrap_or(0));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    let rss_end = server.rss_kib().unwrap_or(0);
    let redis_end = o.redis_url.as_deref().map(|url| {
        (
            redis_used_memory(url).unwrap_or(0),
            redis_dbsize(url).unwrap_or(0),
        )
    });

    // Let the abandoned sessions expire.
    let settle = o.settle.unwrap_or(Duration::from_secs(o.timeout_secs + 3));
    tokio::time::sleep(settle).await;
    let rss_settled = server.rss_kib().unwrap_or(0);
    let counts_settled = session_counts(&stats_http, &server.url).await;
    let redis_settled = o.redis_url.as_deref().map(|url| {
        (
            redis_used_memory(url).unwrap_or(0),
            redis_dbsize(url).unwrap_or(0),
            redis_keys_usage(url),
        )
    });

    // Report.
    let requests = tally.requests.load(Ordering::Relaxed);
    println!(
        "\nrequests served: {requests} in {:.1} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!(
        "sessions: {} created, {} deleted, {} abandoned (left to expire)",
        tally.sessions_created.load(Ordering::Relaxed),
        tally.sessions_deleted.load(Ordering::Relaxed),
        tally.sessions_abandoned.load(Ordering::Relaxed)
    );
    println!("answers by kind:");
    for (kind, n) in tally.kinds.lock().unwrap().iter() {
        println!("  {n:>9}  {kind}");
    }
    let unexpected = tally.unexpected.lock().unwrap().clone();
    println!("unexpected answers: {}", unexpected.values().sum::<u64>());
    for (kind, n) in &unexpected {
        println!("  {n:>9}  {kind}");
    }
    let mid = samples.get(samples.len() / 2).map_or(0, |s| s.1);
    println!(
        "server RSS: start {} MiB, middle {} MiB, end of load {} MiB, after {} s idle {} MiB",
        mib(rss_start),
        mib(mid),
        mib(rss_end),
        settle.as_secs(),
        mib(rss_settled)
    );
    let series: Vec<String> = samples
        .iter()
        .map(|(t, rss, _)| format!("{t}s:{}", mib(*rss)))
        .collect();
    println!("RSS samples (MiB): {}", series.join(" "));
    // Plateau: the second half of the run grows by less than 10% over the first half's peak.
    let half = samples.len() / 2;
    let first_peak = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let second_peak = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    let plateau = second_peak <= first_peak + first_peak / 10;
    println!(
        "RSS plateau: first-half peak {} MiB, second-half peak {} MiB → {}",
        mib(first_peak),
        mib(second_peak),
        if plateau { "plateau" } else { "STILL GROWING" }
    );
    let sessions_ok = report_session_counts(&o, &counts, counts_settled, settle);
    let mut redis_ok = true;
    if let (
        Some((base, base_keys)),
        Some((end, end_keys)),
        Some((settled, settled_keys, (left, left_bytes))),
    ) = (redis_baseline, redis_end, redis_settled)
    {
        println!(
            "Redis used_memory: baseline {} KiB ({base_keys} keys), peak {} KiB, end of load {} KiB ({end_keys} keys), after {} s {} KiB ({settled_keys} keys)",
            base / 1024,
            redis_peak / 1024,
            end / 1024,
            settle.as_secs(),
            settled / 1024
        );
        println!(
            "Redis keys left by the store: {left} ({} KiB by MEMORY USAGE): index entries of expired sessions (dropped when a create at a cap checks them, or with the index key's TTL)",
            left_bytes / 1024
        );
        // "Back to baseline": apart from the index entries of expired
        // sessions the store still holds (bounded by the caps), within 64 KiB
        // of allocator noise.
        redis_ok = settled <= base + left_bytes + 64 * 1024;
        println!(
            "Redis memory back to baseline: {} ({:+} KiB, of which {} KiB index entries)",
            if redis_ok { "yes" } else { "NO" },
            (settled as i64 - base as i64) / 1024,
            left_bytes / 1024
        );
    }
    Ok(unexpected.is_empty() && plateau && redis_ok && sessions_ok)
}

// ---------------------------------------------------------------------------
// Sessions rmcp holds against sessions the layer's store holds.

/// The server's `GET /stats`: (sessions rmcp holds, sessions the in-memory
/// store holds — `None` over Redis); `None` if unreadable.
async fn session_counts(http: &reqwest::Client, mcp_url: &str) -> Option<(u64, Option<u64>)> {
    let url = mcp_url.trim_end_matches("/mcp").to_string() + "/stats";
    let stats: Value = http.get(url).send().await.ok()?.json().await.ok()?;
    Some((
        stats["rmcp_sessions"].as_u64()?,
        stats["store_sessions"].as_u64(),
    ))
}

/// Prints the samples; in adopt mode, whether rmcp's count followed the
/// store's and fell to 0 after the sessions expired.
fn report_session_counts(
    o: &Options,
    counts: &[Option<(u64, Option<u64>)>],
    settled: Option<(u64, Option<u64>)>,
    settle: Duration,
) -> bool {
    let show = |c: &Option<(u64, Option<u64>)>| match c {
        Some((rmcp, Some(store))) => format!("{rmcp}/{store}"),
        Some((rmcp, None)) => format!("{rmcp}/-"),
        None => "?".into(),
    };
    let series: Vec<String> = counts.iter().map(show).collect();
    println!(
        "sessions held by rmcp / by the session store, once a second: {}",
        series.join(" ")
    );
    println!("after {} s idle: {}", settle.as_secs(), show(&settled));
    if o.mode != "adopt" {
        return true;
    }
    // In flight at a sample: per client, at most one session rmcp created
    // whose initialize the layer has not stored yet, or one the layer ended
    // whose close has not reached rmcp yet.
    let slack = |store: u64| o.clients as u64 + store / 20;
    let excess = counts
        .iter()
        .flatten()
        .filter_map(|&(rmcp, store)| Some(rmcp as i64 - store? as i64))
        .max();
    let tracked = counts
        .iter()
        .flatten()
        .all(|&(rmcp, store)| store.is_none_or(|store| rmcp <= store + slack(store)));
    let drained = matches!(settled, Some((0, None | Some(0))));
    println!(
        "rmcp follows the layer: {} (largest rmcp − store: {}, allowed {} in flight + 5%); rmcp empty after expiry: {}",
        if tracked { "yes" } else { "NO" },
        excess.map_or("-".into(), |e| e.to_string()),
        o.clients,
        if drained { "yes" } else { "NO" }
    );
    tracked && drained && !counts.is_empty() && counts.iter().all(Option::is_some)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}
