//! The example server (examples/server.rs, compiled into this test as a
//! module: the same code `cargo run --example server` runs) against the
//! official MCP Python SDK, in its `mode="legacy"` (initialize handshake,
//! sessions), `mode="auto"` (probes `server/discover`, then speaks
//! 2026-07-28 sessionless) and `mode="2026-07-28"` client modes, with the
//! example's policy (bob sees and calls only `whoami`). The client side is
//! tests/python/sdk_client.py.
//!
//! Needs `python3` with the SDK: `python3 -m pip install 'mcp==2.3.0'`.
//! Without it these tests print a loud notice and pass, except under
//! `CI=true`, where they fail. `PYTHON` overrides the interpreter.
#![cfg(feature = "rmcp")]

use std::process::Stdio;
use std::time::Duration;

use mcp_session::IdMode;
use tokio::net::TcpListener;

#[path = "support/python_sdk.rs"]
mod python_sdk;
#[allow(dead_code)] // `main` and the like are the binary's, not the test's
#[path = "../examples/server.rs"]
mod server;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_client.py");

/// Starts the example server in `mode` on a free port, runs the SDK client
/// in both modes against it, then shuts the server down (it must stop).
async fn check_example_server(mode: IdMode, session_ids: &str) {
    if !python_sdk::available(
        "import mcp, mcp.client.streamable_http; from mcp import Client",
        "PYTHON SDK CHECK",
    ) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = server::Options {
        addr,
        timeout: Duration::from_secs(1800),
        mode,
        redis_url: None,
        ..server::Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::serve(listener, options, async {
        let _ = stopped.await;
    }));

    let url = format!("http://{addr}/mcp");
    let client = tokio::process::Command::new(python_sdk::python())
        .arg(SCRIPT)
        .arg(&url)
        .args(["--mode", "all", "--session-ids", session_ids])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), client)
        .await
        .expect("the Python SDK client finishes within 120 s")
        .expect("the Python SDK client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "Python SDK check against the example server ({mode:?}) failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the example server shuts down cleanly within 10 s")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_legacy_and_auto_against_example_server_mint_mode() {
    check_example_server(IdMode::Mint, "hex").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_legacy_and_auto_against_example_server_adopt_mode() {
    check_example_server(IdMode::Adopt, "any").await;
}

#[test]
fn example_server_parses_its_command_line() {
    let args = |a: &[&str]| server::parse_args(a.iter().map(|s| s.to_string()));
    let server::Parsed::Run(default) = args(&[]).unwrap() else {
        panic!("no arguments: run with defaults")
    };
    assert_eq!(default.addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(default.timeout, Duration::from_secs(1800));
    assert_eq!(default.mode, IdMode::Mint);

    let server::Parsed::Run(o) = args(&[
        "--addr",
        "0.0.0.0:9000",
        "--timeout-secs=60",
        "--mode",
        "adopt",
    ])
    .unwrap() else {
        panic!("valid arguments")
    };
    assert_eq!(o.addr, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(o.timeout, Duration::from_secs(60));
    assert_eq!(o.mode, IdMode::Adopt);

    assert!(matches!(args(&["--help"]), Ok(server::Parsed::Help)));
    for bad in [
        &["--mode", "both"][..],
        &["--timeout-secs", "0"],
        &["--timeout-secs", "x"],
        &["--addr", "nowhere"],
        &["--addr"],
        &["--verbose"],
    ] {
        assert!(args(bad).is_err(), "{bad:?} must be refused");
    }
}
