//! The example server (`examples/server/`) as a child process, for tests
//! that need several replicas of it.
//!
//! Include it with `#[path = "support/example_server.rs"] mod example_server;`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The example binary next to this test's own (`target/<profile>/examples/server`),
/// built first if this test was run on its own.
pub fn example_binary() -> PathBuf {
    example_binary_named("server")
}

/// `target/<profile>/examples/NAME`, built first if missing, with every
/// feature (the examples' `required-features`): the same build as
/// `cargo test --all-features` and `.ci/run` make, so nothing rebuilds.
pub fn example_binary_named(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join(name);
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--all-features",
                "--example",
                name,
                "--manifest-path",
            ])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "could not build the example {name}");
    }
    binary
}

/// A server process on a free loopback port; killed on drop.
pub struct Replica {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The lines it printed before `listening on …`.
    pub banner: Vec<String>,
    /// What it logged on stderr, when started with [`Replica::start_logging`].
    logs: Arc<Mutex<String>>,
}

impl Replica {
    /// Starts `server --addr 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start(args: &[&str]) -> Replica {
        Self::spawn(args, None)
    }

    /// [`Replica::start`] with `RUST_LOG=rust_log`, keeping what it logs
    /// on stderr (see [`Replica::logs`]).
    pub fn start_logging(args: &[&str], rust_log: &str) -> Replica {
        Self::spawn(args, Some(rust_log))
    }

    fn spawn(args: &[&str], rust_log: Option<&str>) -> Replica {
        let mut command = Command::new(example_binary());
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("MCP_DEMO_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter).stderr(Stdio::piped()),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.trim().to_string());
                break;
            }
            banner.push(line);
        }
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Replica {
            child,
            url: url.expect("the server printed `listening on URL`"),
            banner,
            logs,
        }
    }

    /// What it logged so far (with [`Replica::start_logging`]).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// `http://127.0.0.1:PORT/metrics`, on the MCP port.
    pub fn metrics_url(&self) -> String {
        self.url.trim_end_matches("/mcp").to_string() + "/metrics"
    }

    /// `http://127.0.0.1:PORT/stats`.
    pub fn stats_url(&self) -> String {
        self.url.trim_end_matches("/mcp").to_string() + "/stats"
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
