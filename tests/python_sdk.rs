//! The example server (examples/server/, compiled into this test as a
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

use std::time::Duration;

use in_process::InProcess;
use mcp_session::IdMode;

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/python_sdk.rs"]
mod python_sdk;
#[allow(dead_code)] // `main` and the like are the binary's, not the test's
#[path = "../examples/server/main.rs"]
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
    let example = InProcess::start(|listener, shutdown| {
        let options = server::Options {
            addr: listener.local_addr().unwrap(),
            timeout: Duration::from_secs(1800),
            mode,
            redis_url: None,
            ..server::Options::default()
        };
        server::serve(listener, options, shutdown)
    })
    .await;

    python_sdk::run_checks(
        SCRIPT,
        &[
            &example.url(),
            "--mode",
            "all",
            "--session-ids",
            session_ids,
        ],
        Duration::from_secs(120),
        &format!("Python SDK check against the example server ({mode:?})"),
    )
    .await;
    example.stop().await;
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
    use clap::Parser;
    // Only the command line here: the environment variables are checked in
    // `example_server_reads_its_flags_from_the_environment`.
    let args = |a: &[&str]| {
        server::Options::try_parse_from(std::iter::once("server").chain(a.iter().copied()))
    };
    let default = args(&[]).unwrap();
    assert_eq!(default.addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(default.timeout, Duration::from_secs(1800));
    assert_eq!(default.mode, IdMode::Mint);
    assert_eq!(
        default.max_sessions,
        server::Options::default().max_sessions
    );

    let o = args(&[
        "--addr",
        "0.0.0.0:9000",
        "--timeout-secs=60",
        "--mode",
        "adopt",
        "--identity-limit",
        "reject",
    ])
    .unwrap();
    assert_eq!(o.addr, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(o.timeout, Duration::from_secs(60));
    assert_eq!(o.mode, IdMode::Adopt);
    assert_eq!(o.identity_limit, mcp_session::IdentityLimitPolicy::Reject);

    let help = args(&["--help"]).unwrap_err();
    assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    for flag in [
        "--timeout-secs",
        "--mode",
        "--redis-url",
        "REDIS_URL",
        "MCP_DEMO_MODE",
    ] {
        assert!(help.to_string().contains(flag), "--help names {flag}");
    }
    for bad in [
        &["--mode", "both"][..],
        &["--timeout-secs", "0"],
        &["--timeout-secs", "x"],
        &["--max-sessions", "0"],
        &["--identity-limit", "drop"],
        &["--addr", "nowhere"],
        &["--addr"],
        &["--verbose"],
    ] {
        let error = args(bad).expect_err(&format!("{bad:?} must be refused"));
        assert_eq!(error.exit_code(), 2, "{bad:?}: a usage error");
    }
}

/// Every flag also reads its environment variable; a flag on the command
/// line wins. Run as a child process (this very test binary), so that the
/// variables never leak into the other tests of this process.
#[test]
fn example_server_reads_its_flags_from_the_environment() {
    use clap::Parser;
    if std::env::var_os("EXAMPLE_SERVER_ENV_CHILD").is_some() {
        let o = server::Options::try_parse_from(["server", "--timeout-secs", "7"]).unwrap();
        assert_eq!(o.addr, "127.0.0.2:9999".parse().unwrap());
        assert_eq!(o.mode, IdMode::Adopt);
        assert_eq!(o.timeout, Duration::from_secs(7), "the flag wins");
        assert_eq!(o.max_sessions_per_identity, 3);
        assert_eq!(o.redis_url.as_deref(), Some("redis://10.0.0.1:6379"));
        let mode_flag = server::Options::try_parse_from(["server", "--mode", "mint"]).unwrap();
        assert_eq!(mode_flag.mode, IdMode::Mint, "the flag wins");
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "example_server_reads_its_flags_from_the_environment",
            "--exact",
            "--nocapture",
        ])
        .env("EXAMPLE_SERVER_ENV_CHILD", "1")
        .env("MCP_DEMO_ADDR", "127.0.0.2:9999")
        .env("MCP_DEMO_MODE", "adopt")
        .env("MCP_DEMO_TIMEOUT_SECS", "99")
        .env("MCP_DEMO_MAX_SESSIONS_PER_IDENTITY", "3")
        .env("REDIS_URL", "redis://10.0.0.1:6379")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
