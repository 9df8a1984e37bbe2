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
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    id
}

/// The JSON-RPC answer in a response body: the body itself (JSON), or the
/// SSE event that carries a `result` or an `error`; `Null` if none.
pub async fn answer(res: reqwest::Response) -> Value {
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).ok().unwrap_or_else(|| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
            .unwrap_or(Value::Null)
    })
}

/// The text of a tool's answer, parsed as JSON (the example's tools answer
/// JSON); `Null` if it is none.
pub fn tool_json(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Calls a tool in session `session`; the HTTP status, and for a 200
/// whether the call failed (`isError`, or a JSON-RPC error such as the
/// example's policy refusing it, naming the role) and its text.
pub async fn call_tool(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    session: &str,
    name: &str,
    arguments: Value,
) -> (StatusCode, bool, String) {
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}});
    let res = post_as(client, url, token, Some(session), call).await;
    let status = res.status();
    if status != StatusCode::OK {
        return (status, false, res.text().await.unwrap());
    }
    let reply = answer(res).await;
    assert!(!reply.is_null(), "{name}: no JSON-RPC answer");
    if let Some(message) = reply["error"]["message"].as_str() {
        return (status, true, message.to_string());
    }
    let result = &reply["result"];
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    (status, result["isError"] == true, text.to_string())
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
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap()
        .status()
}
