//! MCP over plain HTTP against the example server (demo bearer tokens):
//! the few JSON-RPC requests tests send by hand.
//!
//! Include it with `#[path = "support/mcp_http.rs"] mod mcp_http;`.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs `body` to `url` as `token`'s caller, with the session id if any.
pub async fn post_as(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .bearer_auth(token)
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

/// A new session of `token`'s caller (initialize, then `initialized`).
pub async fn initialize(client: &reqwest::Client, url: &str, token: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "tests", "version": "1"}}});
    let res = post_as(client, url, token, None, init).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = res.bytes().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = post_as(client, url, token, Some(&id), initialized).await;
    assert!(res.status().is_success(), "{}", res.status());
    id
}

/// `tools/call whoami` in session `id`.
pub async fn whoami(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
) -> reqwest::Response {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    post_as(client, url, token, Some(id), call).await
}

/// `DELETE` of session `id`.
pub async fn delete(client: &reqwest::Client, url: &str, token: &str, id: &str) -> StatusCode {
    client
        .delete(url)
        .bearer_auth(token)
        .header("mcp-session-id", id)
        .send()
        .await
        .unwrap()
        .status()
}
