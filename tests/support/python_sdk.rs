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
