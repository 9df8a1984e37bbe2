//! The policy layer over HTTP requests, inside a real `SessionLayer`, in
//! front of a scripted MCP server that counts the requests it receives: a
//! denied call never reaches it; list answers (JSON and SSE) come back
//! filtered; mirrored headers are checked against the body; batches.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use mcp_session::policy::{codes, Policy, PolicyLayer, Rule};
use mcp_session::{Identity, SessionLayer, SessionManager};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};

fn policy() -> Policy {
    Policy::default_deny()
        .rule(Rule::allow(["*"]).named("open").tools(["whoami"]))
        .rule(
            Rule::allow(["admin"])
                .named("admin tools")
                .tools(["admin_*", "set_roles"]),
        )
        .rule(Rule::allow(["reader"]).resources(["file:///public/*"]))
        .build()
        .unwrap()
}

/// Answers like an MCP server: `initialize`, the lists, `tools/call` (its
/// text names the tool), batches; SSE when the request says `x-sse`.
async fn server<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let sse = request.headers().contains_key("x-sse");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let message: Value = serde_json::from_slice(&body).unwrap();
    let answer = |m: &Value| -> Option<Value> {
        let id = m.get("id")?.clone();
        let result = match m["method"].as_str()? {
            "initialize" => {
                json!({"protocolVersion": "2025-03-26", "capabilities": {}, "serverInfo": {"name": "s", "version": "1"}})
            }
            "tools/list" => json!({"tools": [
                {"name": "whoami", "inputSchema": {"type": "object"}},
                {"name": "admin_echo", "inputSchema": {"type": "object"}},
                {"name": "set_roles", "inputSchema": {"type": "object"}},
            ]}),
            "resources/list" => json!({"resources": [
                {"uri": "file:///public/a", "name": "a"},
                {"uri": "file:///secret/b", "name": "b"},
            ]}),
            "resources/templates/list" => json!({"resourceTemplates": [
                {"uriTemplate": "file:///public/{path}", "name": "pub"},
                {"uriTemplate": "file:///secret/{path}", "name": "sec"},
            ]}),
            "tools/call" => {
                json!({"content": [{"type": "text", "text": format!("ran {}", m["params"]["name"].as_str().unwrap())}]})
            }
            _ => json!({}),
        };
        Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    };
    let out = match &message {
        Value::Array(ms) => Value::Array(ms.iter().filter_map(answer).collect()),
        m => match answer(m) {
            Some(a) => a,
            None => {
                return Ok(Response::builder()
                    .status(202)
                    .body(Full::default())
                    .unwrap())
            }
        },
    };
    let response = if sse {
        let text = format!(": ping\n\nid: 0\nretry: 1000\ndata:\n\nid: 1\ndata: {out}\n\n");
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
    } else {
        let text = out.to_string();
        Response::builder()
            .header("content-type", "application/json")
            .header("content-length", text.len())
            .body(Full::new(Bytes::from(text)))
    };
    Ok(response.unwrap())
}

struct Stack {
    manager: SessionManager,
    calls: Arc<AtomicUsize>,
    with_session_layer: bool,
    max_list_answer: usize,
}

impl Stack {
    fn new() -> Self {
        Stack {
            manager: SessionManager::default(),
            calls: Arc::new(AtomicUsize::new(0)),
            with_session_layer: true,
            max_list_answer: mcp_session::policy::DEFAULT_MAX_LIST_ANSWER,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Sends one request as `user`; (status, headers, body text).
    async fn send(
        &self,
        user: &str,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let calls = self.calls.clone();
        // A macro: each branch hands the server another request body type.
        macro_rules! inner {
            () => {
                tower::service_fn(move |r| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    server(r)
                })
            };
        }
        let roles: &[&str] = if user == "alice" {
            &["admin", "reader"]
        } else {
            &["reader"]
        };
        let identity = Identity::new(user, user, roles.iter().copied());
        let auth = move |mut r: Request<Full<Bytes>>| {
            r.extensions_mut().insert(identity.clone());
            r
        };
        let (parts, body) = if self.with_session_layer {
            let svc = ServiceBuilder::new()
                .map_request(auth)
                .layer(SessionLayer::new(self.manager.clone()))
                .layer(PolicyLayer::new(policy()).max_list_answer(self.max_list_answer))
                .service(inner!());
            let response = svc.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        } else {
            let svc = ServiceBuilder::new()
                .map_request(auth)
                .layer(PolicyLayer::new(policy()))
                .service(inner!());
            let response = svc.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        };
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }
}

fn post() -> http::request::Builder {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

/// A 2026-07-28 request with its mirrored headers.
fn modern(method: &str, name: Option<&str>, body: &Value) -> Request<Full<Bytes>> {
    let mut b = post()
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        b = b.header("mcp-name", name);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

fn list(id: u64, method: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method})
}

/// A handshake-era session for `user`: its id.
async fn session(stack: &Stack, user: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, body) = stack
        .send(
            user,
            post()
                .body(Full::new(Bytes::from(init.to_string())))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    headers["mcp-session-id"].to_str().unwrap().to_string()
}

fn legacy(sid: &str, body: &Value) -> Request<Full<Bytes>> {
    post()
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-03-26")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn tool_names(answer: &Value) -> Vec<&str> {
    answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

fn sse_data(text: &str) -> Value {
    let line = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON event in {text:?}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test]
async fn a_denied_call_never_reaches_the_server_in_either_era() {
    let stack = Stack::new();
    // 2026-07-28
    let (status, _, body) = stack
        .send(
            "bob",
            modern("tools/call", Some("admin_echo"), &call(7, "admin_echo")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], codes::POLICY_DENIED);
    assert_eq!(
        answer["error"]["message"],
        "tool `admin_echo` requires role `admin`"
    );
    assert_eq!(stack.calls(), 0, "the server never saw the denied call");

    // Handshake era.
    let sid = session(&stack, "bob").await;
    let before = stack.calls();
    let (status, _, body) = stack.send("bob", legacy(&sid, &call(8, "set_roles"))).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["id"], 8);
    assert_eq!(
        answer["error"]["message"],
        "tool `set_roles` requires role `admin`"
    );
    assert_eq!(stack.calls(), before);

    // Allowed calls go through.
    let (_, _, body) = stack.send("bob", legacy(&sid, &call(9, "whoami"))).await;
    assert!(body.contains("ran whoami"), "{body}");
    let (_, _, body) = stack
        .send(
            "alice",
            modern("tools/call", Some("admin_echo"), &call(10, "admin_echo")),
        )
        .await;
    assert!(body.contains("ran admin_echo"), "{body}");
    assert_eq!(stack.calls(), before + 2);
}

#[tokio::test]
async fn lists_are_filtered_json_and_sse_and_marked_private() {
    let stack = Stack::new();
    // 2026-07-28, JSON: bob sees whoami only; cacheScope private.
    let (_, headers, body) = stack
        .send("bob", modern("tools/list", None, &list(1, "tools/list")))
        .await;
    assert!(headers
        .get("content-length")
        .is_none_or(|l| l.to_str().unwrap() == body.len().to_string()));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tool_names(&answer), ["whoami"]);
    assert_eq!(answer["result"]["cacheScope"], "private");
    // alice sees all three.
    let (_, _, body) = stack
        .send("alice", modern("tools/list", None, &list(1, "tools/list")))
        .await;
    assert_eq!(
        tool_names(&serde_json::from_str(&body).unwrap()),
        ["whoami", "admin_echo", "set_roles"]
    );

    // Handshake era, SSE.
    let sid = session(&stack, "bob").await;
    let mut request = legacy(&sid, &list(2, "tools/list"));
    request.headers_mut().insert("x-sse", "1".parse().unwrap());
    let (_, headers, body) = stack.send("bob", request).await;
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(
        body.starts_with(": ping\n\nid: 0\nretry: 1000\ndata:\n\nid: 1\n"),
        "{body:?}"
    );
    let answer = sse_data(&body);
    assert_eq!(tool_names(&answer), ["whoami"]);
    assert!(
        answer["result"].get("cacheScope").is_none(),
        "not added before 2026-07-28"
    );

    // Resources and templates by URI.
    let (_, _, body) = stack
        .send("bob", legacy(&sid, &list(3, "resources/list")))
        .await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["result"]["resources"],
        json!([{"uri": "file:///public/a", "name": "a"}])
    );
    let (_, _, body) = stack
        .send("bob", legacy(&sid, &list(4, "resources/templates/list")))
        .await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["result"]["resourceTemplates"],
        json!([{"uriTemplate": "file:///public/{path}", "name": "pub"}])
    );
}

#[tokio::test]
async fn mirrored_headers_are_checked_against_the_body() {
    let stack = Stack::new();
    let mismatch = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], codes::HEADER_MISMATCH, "{body}");
        v["error"]["message"].as_str().unwrap().to_string()
    };
    // Mcp-Name says whoami (allowed), the body calls admin_echo.
    let (status, _, body) = stack
        .send(
            "bob",
            modern("tools/call", Some("whoami"), &call(1, "admin_echo")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(mismatch(&body).contains("Mcp-Name"));
    // Mcp-Method says tools/list, the body is tools/call.
    let (status, _, body) = stack
        .send(
            "bob",
            modern("tools/list", Some("whoami"), &call(1, "whoami")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(mismatch(&body).contains("Mcp-Method"));
    // Missing Mcp-Name on tools/call; missing Mcp-Method.
    let (status, _, body) = stack
        .send("bob", modern("tools/call", None, &call(1, "whoami")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(mismatch(&body).contains("missing Mcp-Name"));
    let mut request = modern("tools/call", Some("whoami"), &call(1, "whoami"));
    request.headers_mut().remove("mcp-method");
    let (status, _, body) = stack.send("bob", request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(mismatch(&body).contains("missing Mcp-Method"));
    // A handshake-era request that sends the headers anyway gets them checked.
    let sid = session(&stack, "alice").await;
    let before = stack.calls();
    let mut request = legacy(&sid, &call(2, "admin_echo"));
    request
        .headers_mut()
        .insert("mcp-name", "whoami".parse().unwrap());
    let (status, _, _) = stack.send("alice", request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        stack.calls(),
        before,
        "no mismatched request reaches the server"
    );

    // The base64 form is decoded before matching: "admin_é".
    let name = "admin_\u{e9}";
    let encoded = format!("=?base64?{}?=", "YWRtaW5fw6k=");
    let (status, _, body) = stack
        .send(
            "alice",
            modern("tools/call", Some(&encoded), &call(3, name)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ran admin_\u{e9}"), "{body}");
    let (_, _, body) = stack
        .send("bob", modern("tools/call", Some(&encoded), &call(3, name)))
        .await;
    assert!(
        body.contains("tool `admin_\u{e9}` requires role `admin`"),
        "{body}"
    );
}

#[tokio::test]
async fn batches_run_whole_or_not_at_all() {
    let stack = Stack::new();
    let sid = session(&stack, "bob").await;
    let before = stack.calls();
    let batch = json!([
        call(1, "whoami"),
        call(2, "admin_echo"),
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
    ]);
    let (status, _, body) = stack.send("bob", legacy(&sid, &batch)).await;
    assert_eq!(status, StatusCode::OK);
    let answers: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 2, "{body}");
    assert_eq!(answers[0]["id"], 1);
    assert!(answers[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("element 2"));
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(
        answers[1]["error"]["message"],
        "tool `admin_echo` requires role `admin`"
    );
    assert_eq!(stack.calls(), before, "no element of a refused batch ran");

    // An allowed batch with a list: the list answer inside it is filtered.
    let batch = json!([call(1, "whoami"), list(2, "tools/list")]);
    let (_, _, body) = stack.send("bob", legacy(&sid, &batch)).await;
    let answers: Value = serde_json::from_str(&body).unwrap();
    assert!(answers[0].to_string().contains("ran whoami"));
    assert_eq!(tool_names(&answers[1]), ["whoami"]);

    // No batches in 2026-07-28.
    let (status, _, _) = stack
        .send(
            "alice",
            modern("tools/call", Some("whoami"), &json!([call(1, "whoami")])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fails_closed_outside_the_session_layer_and_on_bad_bodies() {
    let mut stack = Stack::new();
    stack.with_session_layer = false;
    let (status, _, body) = stack
        .send(
            "alice",
            modern("tools/call", Some("whoami"), &call(1, "whoami")),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("inside the SessionLayer"), "{body}");
    assert_eq!(stack.calls(), 0);

    let stack = Stack::new();
    let sid = session(&stack, "alice").await;
    let request = post()
        .header("mcp-session-id", &sid)
        .body(Full::new(Bytes::from_static(b"{not json")))
        .unwrap();
    let (status, _, body) = stack.send("alice", request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("-32700"), "{body}");
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"whoami","arguments":{{"x":"{}"}}}}}}"#,
        "a".repeat(5 * 1024 * 1024)
    );
    let request = post()
        .header("mcp-session-id", &sid)
        .body(Full::new(Bytes::from(big)))
        .unwrap();
    let (status, _, _) = stack.send("alice", request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A tools/call without a name cannot be decided.
    let (status, _, _) = stack
        .send(
            "alice",
            legacy(
                &sid,
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_list_answer_too_large_to_filter_fails_closed() {
    let mut stack = Stack::new();
    stack.max_list_answer = 100; // the scripted tools/list answer is larger
    let (status, _, body) = stack
        .send("bob", modern("tools/list", None, &list(5, "tools/list")))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["error"]["code"], codes::LIST_UNFILTERABLE);
    assert!(!body.contains("admin_echo"));

    // SSE: the stream ends with an error answer for the list request.
    let mut request = modern("tools/list", None, &list(6, "tools/list"));
    request.headers_mut().insert("x-sse", "1".parse().unwrap());
    let (status, _, body) = stack.send("bob", request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("admin_echo"), "{body}");
    let answer = sse_data(&body);
    assert_eq!(answer["id"], 6);
    assert_eq!(answer["error"]["code"], codes::LIST_UNFILTERABLE);
}
