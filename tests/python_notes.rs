//! The example server's notes tools (examples/server/notes.rs, principal-
//! bound handles) against the official MCP Python SDK, in `mode="legacy"`
//! and `mode="2026-07-28"` (tests/python/notes_client.py): the flows, bob
//! with alice's handle answered like an unknown one, a handle refused as
//! `Mcp-Session-Id`, and expiry after `--timeout-secs` idle — over the
//! in-memory store and over a real `redis-server`.
//!
//! Needs `python3` with `mcp==2.3.0` (a loud notice without it; a failure
//! under `CI=true`).

use std::time::Duration;

use in_process::InProcess;
use mcp_session::IdMode;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/python_sdk.rs"]
mod python_sdk;
#[path = "support/redis_server.rs"]
mod redis_server;
#[allow(dead_code)] // `main` and the like are the binary's, not the test's
#[path = "../examples/server/main.rs"]
mod server;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/notes_client.py");

/// Serves the example with `options` on a free port and runs the notes
/// client's `check` against it; then stops the server.
async fn run(mode: IdMode, timeout_secs: u64, redis_url: Option<String>, check: &[&str]) {
    if !python_sdk::available(
        "import mcp, mcp.client.streamable_http; from mcp import Client",
        "PYTHON SDK NOTES CHECK",
    ) {
        return;
    }
    let example = InProcess::start(|listener, shutdown| {
        let options = server::Options {
            addr: listener.local_addr().unwrap(),
            timeout: Duration::from_secs(timeout_secs),
            mode,
            redis_url,
            ..server::Options::default()
        };
        server::serve(listener, options, shutdown)
    })
    .await;
    let url = example.url();
    let args: Vec<&str> = std::iter::once(url.as_str())
        .chain(check.iter().copied())
        .collect();
    python_sdk::run_checks(
        SCRIPT,
        &args,
        Duration::from_secs(180),
        &format!("notes check {check:?} ({mode:?})"),
    )
    .await;
    example.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_flows_in_memory_mint_mode() {
    run(IdMode::Mint, 1800, None, &["--check", "flows"]).await;
}

/// A `redis-server` of the test's own; `None` (skip) without one.
async fn redis() -> Option<redis_server::RedisServer> {
    tokio::task::spawn_blocking(redis_server::RedisServer::start)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_flows_on_redis_adopt_mode() {
    let Some(redis) = redis().await else {
        return;
    };
    run(
        IdMode::Adopt,
        1800,
        Some(redis.url()),
        &["--check", "flows"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_expire_after_the_idle_timeout() {
    run(IdMode::Mint, 3, None, &["--check", "expiry", "--wait", "4"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_expire_after_the_idle_timeout_on_redis() {
    let Some(redis) = redis().await else {
        return;
    };
    run(
        IdMode::Mint,
        3,
        Some(redis.url()),
        &["--check", "expiry", "--wait", "4"],
    )
    .await;
}
