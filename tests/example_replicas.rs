//! Two processes of the example server (`cargo run --example server --
//! --redis-url …`), on different ports, sharing one `redis-server` that this
//! test starts: each serves the other's sessions, and a session terminated
//! on one is gone on the other.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The example binary next to this test's own (`target/<profile>/examples/server`),
/// built first if this test was run on its own.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join("server");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "server", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "could not build the example server");
    }
    binary
}

/// A server process; killed on drop.
struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    fn start(redis_url: &str) -> Replica {
        let mut child = Command::new(example_binary())
            .args(["--addr", "127.0.0.1:0", "--redis-url", redis_url])
            .env_remove("REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.trim().to_string());
                break;
            }
        }
        Replica {
            child,
            url: url.expect("the server printed `listening on URL`"),
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .bearer_auth("alice-token")
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(id) = session {
        req = req
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18");
    }
    tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .expect("answer within 10 s")
        .unwrap()
}

async fn whoami(client: &reqwest::Client, url: &str, id: &str) -> reqwest::Response {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    post(client, url, Some(id), call).await
}

#[tokio::test]
async fn two_server_processes_share_sessions_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = Replica::start(&redis.url());
    let b = Replica::start(&redis.url());
    assert_ne!(a.url, b.url);
    let client = reqwest::Client::new();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "replicas", "version": "1"}}});
    let res = post(&client, &a.url, None, init).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64);

    // Replica B serves the session replica A created.
    let res = whoami(&client, &b.url, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    let reply: Value = res.json().await.unwrap();
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    let who: Value = serde_json::from_str(text).unwrap();
    assert_eq!(who["identity_id"], "alice");
    assert_eq!(who["session_id"], id.as_str());
    assert_eq!(who["roles"], json!(["admin", "reader"]));

    // Terminated through B, gone on A.
    let res = client
        .delete(&b.url)
        .bearer_auth("alice-token")
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        whoami(&client, &a.url, &id).await.status(),
        StatusCode::NOT_FOUND
    );
}
