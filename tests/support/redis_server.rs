//! Throwaway `redis-server` processes for tests: a standalone server or a
//! 3-master Cluster on free loopback ports, with no persistence.
//!
//! Include it from a test file with
//! `#[path = "support/redis_server.rs"] mod redis_server;`.
//!
//! - Without `redis-server`/`redis-cli` on `PATH` the constructors print a
//!   loud notice and return `None` (the caller skips); with `CI=true` they
//!   panic instead, so CI cannot pass by skipping.
//! - Each server runs under a tiny `sh` watchdog that kills it when the test
//!   process is gone, so servers held in `static`s (which are never dropped)
//!   or left behind by a killed test run do not outlive it. Dropping a
//!   server kills it at once.
//! - A standalone server can be killed (`SIGKILL`) and restarted on the same
//!   port, for fault tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether `redis-server` and `redis-cli` can be run. Prints a loud notice if
/// not; panics if not and `CI=true`.
pub fn redis_available() -> bool {
    let found = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found("redis-server") && found("redis-cli") {
        return true;
    }
    let message = "\n\
        ************************************************************************\n\
        *  redis-server / redis-cli NOT FOUND on PATH: Redis tests are SKIPPED. *\n\
        *  Install Redis (e.g. `apt-get install redis-server`) to run them.     *\n\
        ************************************************************************\n";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}CI=true: a missing redis-server is a test failure");
    }
    eprintln!("{message}");
    false
}

/// One `redis-server` process (standalone, or a node of a [`RedisCluster`]).
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    process: Mutex<Option<Process>>,
    owns_dir: bool,
}

struct Process {
    /// The `sh` watchdog.
    watchdog: Child,
    /// The redis-server's own pid.
    pid: u32,
}

impl RedisServer {
    /// A standalone server on a free port, answering `PING`; `None` (after a
    /// loud notice) if Redis is not installed.
    pub fn start() -> Option<RedisServer> {
        if !redis_available() {
            return None;
        }
        Some(Self::start_with(Vec::new(), None))
    }

    fn start_with(extra_args: Vec<String>, dir: Option<&Path>) -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port(!extra_args.is_empty());
            let (dir, owns_dir) = match dir {
                Some(dir) => (dir.to_path_buf(), false),
                None => (temp_dir(port), true),
            };
            let server = RedisServer {
                port,
                dir,
                extra_args: extra_args.clone(),
                process: Mutex::new(None),
                owns_dir,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with `SIGKILL` (no shutdown, connections reset) and
    /// waits until its port refuses connections.
    pub fn kill(&self) {
        let process = self.process.lock().unwrap().take();
        if let Some(mut process) = process {
            let _ = Command::new("kill")
                .args(["-9", &process.pid.to_string()])
                .status();
            let _ = process.watchdog.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not die",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing is
    /// answered — a hung Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`RedisServer::pause`]d server (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let guard = self.process.lock().unwrap();
        let process = guard.as_ref().expect("server is running");
        let status = Command::new("kill")
            .args([signal, &process.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port (empty: no persistence) and
    /// waits until it answers `PING`.
    pub fn restart(&self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs `redis-cli -p <port> <args…>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// Starts `redis-cli MONITOR` on this server; returns once it is
    /// attached. See [`Monitor::stop`].
    pub fn monitor(&self) -> Monitor {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "MONITOR"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-cli MONITOR");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let monitor = Monitor {
            child,
            lines: rx,
            port: self.port,
        };
        // Attached once it echoes a marker sent after it started.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            redis_cli(self.port, &["ECHO", "monitor-attached"]);
            let got = monitor.lines.recv_timeout(Duration::from_millis(200));
            if got.is_ok_and(|l| l.contains("monitor-attached")) {
                break;
            }
            assert!(Instant::now() < deadline, "MONITOR never attached");
        }
        while monitor.lines.try_recv().is_ok() {}
        monitor
    }

    fn spawn(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let log = self.dir.join(format!("redis-{}.log", self.port));
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--logfile".into(),
            log.display().to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        // The watchdog: start redis-server, report its pid, and kill it as
        // soon as the test process (our pid) is gone, then remove its
        // directory (otherwise `Drop` does that).
        let script = r#"
parent="$1"; dir="$2"; shift 2
redis-server "$@" >/dev/null 2>&1 &
r=$!
echo "$r"
while kill -0 "$parent" 2>/dev/null && kill -0 "$r" 2>/dev/null; do sleep 0.5; done
kill -9 "$r" 2>/dev/null
wait "$r" 2>/dev/null
kill -0 "$parent" 2>/dev/null || rm -rf "$dir"
"#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("redis-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn sh: {e}"))?;
        let mut line = String::new();
        let stdout = watchdog.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| format!("watchdog printed {line:?}"))?;
        let process = Process { watchdog, pid };
        *self.process.lock().unwrap() = Some(process);

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if redis_cli(self.port, &["PING"]).trim() == "PONG" {
                return Ok(());
            }
            let exited = {
                let mut guard = self.process.lock().unwrap();
                let exited = guard
                    .as_mut()
                    .is_some_and(|p| matches!(p.watchdog.try_wait(), Ok(Some(_))));
                if exited {
                    guard.take();
                }
                exited
            };
            if exited {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server on {} exited: {log}", self.port));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("redis-server on {} never answered PING", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running `redis-cli MONITOR`: every command the server executes, one
/// line each, e.g. `1700000000.123 [0 127.0.0.1:5555] "EVALSHA" "…"`;
/// commands run by scripts show `[0 lua]` instead of a client address.
pub struct Monitor {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    port: u16,
}

impl Monitor {
    /// Stops monitoring and returns the lines seen since it attached (up to
    /// an end marker it sends itself, which is not included).
    pub fn stop(self) -> Vec<String> {
        redis_cli(self.port, &["ECHO", "monitor-end"]);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("MONITOR end marker");
            if line.contains("\"monitor-end\"") {
                break;
            }
            if !line.contains("\"monitor-attached\"") {
                seen.push(line);
            }
        }
        seen
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of 3 masters (no replicas) on free loopback ports.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled servers, joins them with
    /// `redis-cli --cluster create` and waits for `cluster_state:ok` on every
    /// node; `None` (after a loud notice) if Redis is not installed.
    pub fn start() -> Option<RedisCluster> {
        if !redis_available() {
            return None;
        }
        let dir = temp_dir(free_port(false));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let args = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{i}-{}.conf", std::process::id()),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ];
                RedisServer::start_with(args, Some(&dir))
            })
            .collect();
        let cluster = RedisCluster { nodes, dir };
        let mut create: Vec<String> = vec!["--cluster".into(), "create".into()];
        create.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        let output = Command::new("redis-cli")
            .args(&create)
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let info = node.cli(&["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never became ok: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(cluster)
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A port that is free right now (and, for cluster nodes, whose bus port
/// `port + 10000` is free too). Ports are picked from a range unlikely to
/// collide with other services and spread across concurrently running tests.
fn free_port(cluster_bus: bool) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + ((seed.wrapping_add(n.wrapping_mul(104_729))) % 30_000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && (!cluster_bus || free(port + 10_000)) {
            return port;
        }
    }
}

fn temp_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("mcp-session-redis-{}-{port}", std::process::id()))
}
