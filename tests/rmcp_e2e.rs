//! End to end with the real rmcp server: rmcp's `StreamableHttpService`
//! behind `SessionLayer` (callers from the demo bearer tokens), on
//! 127.0.0.1 over real HTTP, with tools that take the
//! `mcp_session::rmcp::Caller` extractor.
//!
//! - mint mode: rmcp stateless (`legacy_session_mode = false`), the layer
//!   mints 64-hex ids;
//! - adopt mode: rmcp's legacy sessions, the layer adopts rmcp's UUIDs;
//! - sessionless 2026-07-28 requests in both modes.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::StreamExt;
use http::StatusCode;
use in_process::serve_until_cancelled;
use mcp_session::rmcp::{Caller, MissingRole};
use mcp_session::{Config, IdMode, MokaStore, Role, SessionId, SessionLayer, SessionManager};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde_json::{json, Value};
use test_auth::{bearer, demo_tokens, insert_caller};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

const HANDSHAKE_VERSION: &str = "2025-11-25";
const SESSIONLESS_VERSION: &str = "2026-07-28";
const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "who is calling")]
    fn whoami(&self, caller: Caller) -> String {
        let roles: Vec<&str> = caller.roles().iter().map(Role::as_str).collect();
        json!({
            "identity_id": caller.identity().id(),
            "identity_name": caller.identity().name(),
            "roles": roles,
            "session_id": caller.session_id().map(SessionId::reveal),
        })
        .to_string()
    }

    #[tool(description = "echo, for admins")]
    fn admin_echo(
        &self,
        caller: Caller,
        Parameters(args): Parameters<EchoArgs>,
    ) -> Result<String, MissingRole> {
        caller.require_role("admin")?;
        Ok(args.text)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn rmcp_service(
    legacy_sessions: bool,
    stop: &CancellationToken,
) -> StreamableHttpService<Tools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(legacy_sessions)
        .with_sse_keep_alive(None)
        .with_cancellation_token(stop.clone());
    StreamableHttpService::new(
        || {
            Ok(Tools {
                tool_router: Tools::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

struct Server {
    url: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// rmcp behind the layer (in `mode`) behind the test auth, rmcp in the
/// session mode that `mode` needs.
async fn start(mode: IdMode) -> Server {
    start_with(mode, mode == IdMode::Adopt).await
}

/// rmcp (with or without its legacy sessions) behind the layer in `mode`:
/// `legacy_sessions != (mode == Adopt)` is the misconfiguration.
async fn start_with(mode: IdMode, legacy_sessions: bool) -> Server {
    let stop = CancellationToken::new();
    let layer = SessionLayer::new(SessionManager::new(
        MokaStore::new(1_000),
        Config::default().timeout(Duration::from_secs(60)),
    ))
    .id_mode(mode)
    .resolve_identity(bearer(demo_tokens));
    let rmcp = rmcp_service(legacy_sessions, &stop);
    let mcp = ServiceBuilder::new().layer(layer).service(rmcp);
    serve(Router::new().nest_service("/mcp", mcp), stop).await
}

/// rmcp behind an auth middleware only (it inserts the caller): no
/// session layer.
async fn start_without_layer() -> Server {
    let stop = CancellationToken::new();
    let mcp = ServiceBuilder::new()
        .layer(insert_caller(demo_tokens))
        .service(rmcp_service(false, &stop));
    serve(Router::new().nest_service("/mcp", mcp), stop).await
}

async fn serve(app: Router, stop: CancellationToken) -> Server {
    let addr = serve_until_cancelled(app, &stop).await;
    Server {
        url: format!("http://{addr}/mcp"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        stop,
    }
}

// ---------------------------------------------------------------------------
// A small MCP client over reqwest
// ---------------------------------------------------------------------------

/// How a request is sent: handshake era (optionally in a session) or
/// sessionless (2026-07-28 headers and `_meta`).
#[derive(Clone, Copy)]
enum Era<'a> {
    Handshake(Option<&'a str>),
    Sessionless,
}

impl Server {
    async fn post(&self, token: &str, era: Era<'_>, body: Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        match era {
            Era::Handshake(session) => {
                if let Some(id) = session {
                    request = request
                        .header("mcp-session-id", id)
                        .header("mcp-protocol-version", HANDSHAKE_VERSION);
                }
            }
            Era::Sessionless => {
                let method = body["method"].as_str().unwrap().to_string();
                request = request
                    .header("mcp-protocol-version", SESSIONLESS_VERSION)
                    .header("mcp-method", method);
                if let Some(name) = body["params"]["name"].as_str() {
                    request = request.header("mcp-name", name);
                }
            }
        }
        request.json(&body).send().await.unwrap()
    }

    /// `initialize`; returns the session id from the response header.
    async fn initialize(&self, token: &str) -> String {
        let response = self
            .post(token, Era::Handshake(None), initialize_request())
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let id = response
            .headers()
            .get("mcp-session-id")
            .expect("initialize answer carries Mcp-Session-Id")
            .to_str()
            .unwrap()
            .to_string();
        let reply = rpc_reply(response, 1).await;
        assert_eq!(reply["result"]["protocolVersion"], HANDSHAKE_VERSION);

        let response = self
            .post(
                token,
                Era::Handshake(Some(&id)),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        id
    }

    async fn call_tool(&self, token: &str, era: Era<'_>, name: &str, args: Value) -> Value {
        let response = self.call_tool_raw(token, era, name, args).await;
        assert_eq!(response.status(), StatusCode::OK, "tools/call {name}");
        rpc_reply(response, 7).await
    }

    async fn call_tool_raw(
        &self,
        token: &str,
        era: Era<'_>,
        name: &str,
        args: Value,
    ) -> reqwest::Response {
        let mut params = json!({"name": name, "arguments": args});
        if let Era::Sessionless = era {
            params["_meta"] = sessionless_meta();
        }
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params});
        self.post(token, era, body).await
    }

    async fn whoami(&self, token: &str, era: Era<'_>) -> Value {
        let reply = self.call_tool(token, era, "whoami", json!({})).await;
        assert_eq!(reply["result"]["isError"], false, "{reply}");
        serde_json::from_str(&tool_text(&reply)).unwrap()
    }

    async fn delete(&self, token: &str, id: &str) -> reqwest::Response {
        self.http
            .delete(&self.url)
            .bearer_auth(token)
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", HANDSHAKE_VERSION)
            .send()
            .await
            .unwrap()
    }
}

/// A handshake-era `initialize` (id 1).
fn initialize_request() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "rmcp-e2e", "version": "1"}
        }
    })
}

fn sessionless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": SESSIONLESS_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "rmcp-e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// The JSON-RPC reply with `id`, from a JSON body or an SSE stream (read
/// only until that reply arrives: rmcp may keep the stream open).
async fn rpc_reply(response: reqwest::Response, id: u64) -> Value {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["id"], id, "{reply}");
        return reply;
    }
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            let normalized = buffer.replace("\r\n", "\n");
            for event in normalized.split("\n\n") {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) else {
                    continue; // priming event, partial event, keep-alive
                };
                if message["id"] == id
                    && (message.get("result").is_some() || message.get("error").is_some())
                {
                    return message;
                }
            }
        }
        panic!("SSE stream ended without the reply to {id}: {buffer:?}");
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("reply within 10 s")
}

/// The single text content item of a tool result.
fn tool_text(reply: &Value) -> String {
    let content = reply["result"]["content"].as_array().expect("content");
    assert_eq!(content.len(), 1, "{reply}");
    assert_eq!(content[0]["type"], "text");
    content[0]["text"].as_str().unwrap().to_string()
}

fn is_minted_hex(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// initialize → tool calls that see the session's identity and roles → RBAC
/// → another identity cannot use the id → DELETE → the id is gone.
async fn session_lifecycle(server: &Server, id_format: fn(&str) -> bool) {
    let alice = server.initialize(ALICE).await;
    assert!(id_format(&alice), "unexpected session id format: {alice}");
    let in_alice = Era::Handshake(Some(&alice));

    let me = server.whoami(ALICE, in_alice).await;
    assert_eq!(
        me,
        json!({
            "identity_id": "alice",
            "identity_name": "Alice",
            "roles": ["admin", "reader"],
            "session_id": alice,
        })
    );
    let echo = server
        .call_tool(ALICE, in_alice, "admin_echo", json!({"text": "hi"}))
        .await;
    assert_eq!(echo["result"]["isError"], false, "{echo}");
    assert_eq!(tool_text(&echo), "hi");

    let bob = server.initialize(BOB).await;
    assert!(id_format(&bob));
    assert_ne!(bob, alice);
    let in_bob = Era::Handshake(Some(&bob));
    let me = server.whoami(BOB, in_bob).await;
    assert_eq!(me["identity_id"], "bob");
    assert_eq!(me["roles"], json!(["reader"]));
    assert_eq!(me["session_id"], bob.as_str());
    let refused = server
        .call_tool(BOB, in_bob, "admin_echo", json!({"text": "hi"}))
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(tool_text(&refused).contains("`admin`"), "{refused}");

    // Bob holding Alice's id: 404, as for an unknown session.
    let stolen = server
        .call_tool_raw(BOB, in_alice, "whoami", json!({}))
        .await;
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server.delete(BOB, &alice).await.status(),
        StatusCode::NOT_FOUND
    );
    // …and Alice's session is untouched by it.
    assert_eq!(
        server.whoami(ALICE, in_alice).await["session_id"],
        alice.as_str()
    );

    let deleted = server.delete(ALICE, &alice).await;
    assert!(
        deleted.status().is_success(),
        "DELETE: {}",
        deleted.status()
    );
    let gone = server
        .call_tool_raw(ALICE, in_alice, "whoami", json!({}))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server.delete(ALICE, &alice).await.status(),
        StatusCode::NOT_FOUND
    );

    // Bob's session lives on.
    assert_eq!(server.whoami(BOB, in_bob).await["session_id"], bob.as_str());
}

#[tokio::test]
async fn mint_mode_session_lifecycle() {
    let server = start(IdMode::Mint).await;
    session_lifecycle(&server, is_minted_hex).await;
}

#[tokio::test]
async fn adopt_mode_session_lifecycle() {
    let server = start(IdMode::Adopt).await;
    session_lifecycle(&server, is_uuid).await;
}

/// Adopt mode keeps rmcp's server-to-client stream (GET) for the owner only.
#[tokio::test]
async fn adopt_mode_keeps_rmcps_stream_for_the_owner_only() {
    let server = start(IdMode::Adopt).await;
    let alice = server.initialize(ALICE).await;
    let get = |token: &'static str| {
        server
            .http
            .get(&server.url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &alice)
            .header("mcp-protocol-version", HANDSHAKE_VERSION)
            .send()
    };
    let stream = get(ALICE).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(stream);
    assert_eq!(get(BOB).await.unwrap().status(), StatusCode::NOT_FOUND);
}

/// 2026-07-28: no initialize, no session id; identity and roles still reach
/// the tools, `session_id` is null.
async fn sessionless(server: &Server) {
    let discover = server
        .post(
            ALICE,
            Era::Sessionless,
            json!({
                "jsonrpc": "2.0", "id": 7, "method": "server/discover",
                "params": {"_meta": sessionless_meta()}
            }),
        )
        .await;
    assert_eq!(discover.status(), StatusCode::OK);
    assert!(discover.headers().get("mcp-session-id").is_none());
    let reply = rpc_reply(discover, 7).await;
    let versions = reply["result"]["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!(SESSIONLESS_VERSION)), "{reply}");

    let list = server
        .post(
            BOB,
            Era::Sessionless,
            json!({
                "jsonrpc": "2.0", "id": 7, "method": "tools/list",
                "params": {"_meta": sessionless_meta()}
            }),
        )
        .await;
    assert_eq!(list.status(), StatusCode::OK);
    assert!(list.headers().get("mcp-session-id").is_none());
    let tools = rpc_reply(list, 7).await;
    let mut names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin_echo", "whoami"]);

    let call = server
        .call_tool_raw(ALICE, Era::Sessionless, "whoami", json!({}))
        .await;
    assert_eq!(call.status(), StatusCode::OK);
    assert!(call.headers().get("mcp-session-id").is_none());
    let reply = rpc_reply(call, 7).await;
    let me: Value = serde_json::from_str(&tool_text(&reply)).unwrap();
    assert_eq!(
        me,
        json!({
            "identity_id": "alice",
            "identity_name": "Alice",
            "roles": ["admin", "reader"],
            "session_id": null,
        })
    );
    let echo = server
        .call_tool(ALICE, Era::Sessionless, "admin_echo", json!({"text": "x"}))
        .await;
    assert_eq!(tool_text(&echo), "x");

    let me = server.whoami(BOB, Era::Sessionless).await;
    assert_eq!(me["identity_id"], "bob");
    assert_eq!(me["roles"], json!(["reader"]));
    assert_eq!(me["session_id"], Value::Null);
    let refused = server
        .call_tool(BOB, Era::Sessionless, "admin_echo", json!({"text": "x"}))
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(tool_text(&refused).contains("`admin`"));
}

#[tokio::test]
async fn sessionless_requests_in_mint_mode() {
    sessionless(&start(IdMode::Mint).await).await;
}

#[tokio::test]
async fn sessionless_requests_in_adopt_mode() {
    sessionless(&start(IdMode::Adopt).await).await;
}

/// Without the layer in front, the extractor fails the call with an error
/// that says what is missing; the tool never runs.
#[tokio::test]
async fn caller_without_the_layer_is_a_clear_error() {
    let server = start_without_layer().await;
    let response = server
        .call_tool_raw(ALICE, Era::Sessionless, "whoami", json!({}))
        .await;
    let reply = rpc_reply(response, 7).await;
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SessionLayer"), "{reply}");
    assert!(reply.get("result").is_none());
}

/// The natural mistakes, rmcp's defaults behind the wrong id mode, fail at
/// `initialize` with a 502 whose JSON-RPC error names the fix, rather than
/// a session that 404s on every later request.
#[tokio::test]
async fn misconfigured_id_mode_fails_initialize_loudly() {
    for (mode, legacy_sessions, fix) in [
        (IdMode::Mint, true, "use adopt mode"),
        (IdMode::Adopt, false, "use mint mode"),
    ] {
        let server = start_with(mode, legacy_sessions).await;
        let response = server
            .post(ALICE, Era::Handshake(None), initialize_request())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{mode:?}");
        assert!(
            response.headers().get("mcp-session-id").is_none(),
            "{mode:?}: no session the client could not use"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"],
            mcp_session::layer::codes::UPSTREAM_ERROR
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("misconfigured server") && message.contains(fix),
            "{message}"
        );
    }
}

/// The check costs the right setups nothing: sessions still work in both
/// modes (the lifecycle tests above), and the minted session of a refused
/// mint-mode initialize is not left behind.
#[tokio::test]
async fn refused_misconfigured_initialize_leaves_no_session() {
    let stop = CancellationToken::new();
    let manager = SessionManager::new(MokaStore::new(1_000), Config::default());
    let mcp = ServiceBuilder::new()
        .layer(SessionLayer::new(manager.clone()).resolve_identity(bearer(demo_tokens)))
        .service(rmcp_service(true, &stop));
    let server = serve(Router::new().nest_service("/mcp", mcp), stop).await;
    for _ in 0..3 {
        let response = server
            .post(ALICE, Era::Handshake(None), initialize_request())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
    // Nothing of alice's left to end: every minted session was ended again.
    assert_eq!(manager.revoke_sessions("alice").await.unwrap(), 0);
}
