//! Finding the official MCP Python SDK for the tests that drive it: the
//! interpreter (`PYTHON`, default `python3`) and a loud notice, or under
//! `CI=true` a failure, when it is missing.
//!
//! Include it with `#[path = "support/python_sdk.rs"] mod python_sdk;`.

#![allow(dead_code)]

use std::io::Write;
use std::process::Stdio;

pub const PIP_INSTALL: &str = "python3 -m pip install 'mcp==2.3.0'";

/// The interpreter to run.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether the interpreter can run `imports` (Python statements); if not,
/// says so loudly, naming `check`, and fails under `CI=true`.
pub fn available(imports: &str, check: &str) -> bool {
    let probe = std::process::Command::new(python())
        .args(["-c", imports])
        .stdin(Stdio::null())
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "the MCP Python SDK is not importable: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(error) => format!("cannot run {}: {error}", python()),
    };
    let banner = "!".repeat(78);
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n!! {check} NOT RUN: {problem}\n!! install it with: {PIP_INSTALL}\n{banner}\n"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: the Python SDK check must run ({problem}); {PIP_INSTALL}");
    }
    false
}

/// Runs `script` with `args` on the interpreter, within `limit`; prints its
/// output and fails the test, naming `what`, unless it exits 0 and says
/// `all checks passed`. Returns its stdout.
pub async fn run_checks(
    script: &str,
    args: &[&str],
    limit: std::time::Duration,
    what: &str,
) -> String {
    let run = tokio::process::Command::new(python())
        .arg(script)
        .args(args)
        // No `__pycache__` of the clients' shared module in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{what}: the Python client finishes within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what}: the Python client runs: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "{what} failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
