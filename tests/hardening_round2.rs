//! Hardening, round 2 (issues 11 and 13), over real HTTP on 127.0.0.1 with
//! the real rmcp `StreamableHttpService` behind the layer:
//!
//! - an `initialize` without a session id is a handshake whatever version
//!   headers it carries: bound to the caller, counted, capped, in both id
//!   modes (it used to take the sessionless path, unbound and uncounted);
//! - sessionless-era bodies are read under their own, larger cap, and
//!   handed on unchanged;
//! - the layer's `429` carries `Retry-After`, its `401` can carry
//!   `resource_metadata`, and only real dates count as protocol versions.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/test_auth.rs"]
mod test_auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::Uri;
use in_process::serve_until_cancelled;
use mcp_session::{
    Config, IdMode, IdentityLimitPolicy, MokaStore, SessionId, SessionLayer, SessionManager,
};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde_json::{json, Value};
use test_auth::{bearer, readers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

// ---------------------------------------------------------------------------
// The server under test: rmcp behind the layer, callers from bearer tokens
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
    #[tool(description = "the length of the text it was given")]
    fn length(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text.len().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

struct Server {
    addr: SocketAddr,
    manager: SessionManager,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// rmcp (legacy sessions in adopt mode, stateless in mint mode, as the
/// layer's docs ask) behind `layer(manager)`.
async fn start(
    mode: IdMode,
    config: Config,
    tweak: impl FnOnce(SessionLayer) -> SessionLayer,
) -> Server {
    let stop = CancellationToken::new();
    let manager = SessionManager::new(MokaStore::new(1_000), config);
    // No caller (no header) → the layer answers `401` itself.
    let layer = tweak(SessionLayer::new(manager.clone()).id_mode(mode));
    let layer = layer.resolve_identity(bearer(readers));
    let rmcp = StreamableHttpService::new(
        || {
            Ok(Tools {
                tool_router: Tools::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(mode == IdMode::Adopt)
            .with_sse_keep_alive(None)
            .with_cancellation_token(stop.clone()),
    );
    let mcp = ServiceBuilder::new().layer(layer).service(rmcp);
    let app = Router::new().nest_service("/mcp", mcp);
    let addr = serve_until_cancelled(app, &stop).await;
    Server {
        addr,
        manager,
        stop,
    }
}

fn capped_at_one() -> Config {
    Config::default()
        .timeout(Duration::from_secs(60))
        .max_sessions_per_identity(1)
        .identity_limit(IdentityLimitPolicy::Reject)
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client: header names go on the wire exactly as written
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body, or the first JSON `data:` line of an SSE body.
    fn json(&self) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        if let Ok(value) = serde_json::from_str(&text) {
            return value;
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or_else(|| panic!("no JSON in {text:?}"))
    }
}

/// POSTs `body` with exactly these extra header lines (and the usual
/// content type, accept, length). Reads the whole answer: the server closes
/// the connection after it (`Connection: close`).
async fn raw_post(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answer within 10 s");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    out
}

fn initialize_body(version: &str) -> String {
    let mut body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "bypass", "version": "1"},
        }
    });
    // rmcp (legacy sessions) refuses a version header it does not know
    // unless the body names a per-request version too: an attacker sends both.
    if version > "2026-07-28" {
        body["params"]["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": version});
    }
    body.to_string()
}

/// Every id an answer hands out must be a session the layer bound to the
/// caller: otherwise the inner server holds state no cap or binding covers.
async fn assert_bound(server: &Server, answer: &Answer, user: &str, context: &str) {
    if let Some(id) = answer.header("mcp-session-id") {
        let id = SessionId::parse_adopted(id).expect("a valid id");
        let found = server.manager.get(&id, &readers(user).unwrap()).await;
        assert!(
            found.is_ok(),
            "{context}: the answer ({}) hands out session id {id} that the layer has not \
             bound to {user}: {found:?}",
            answer.status
        );
    }
}

// ---------------------------------------------------------------------------
// Issue 11 item 1: no bypass of binding and caps with a 2026 version header
// ---------------------------------------------------------------------------

struct Variant {
    name: &'static str,
    /// The `initialize` body's `protocolVersion` (rmcp insists it equals the
    /// header).
    version: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// `Mcp-Method` contradicts the body: rmcp refuses the request itself.
    lies: bool,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "2026-07-28, canonical header name",
        version: "2026-07-28",
        headers: &[("MCP-Protocol-Version", "2026-07-28")],
        lies: false,
    },
    Variant {
        name: "2026-07-28, lowercase header name",
        version: "2026-07-28",
        headers: &[("mcp-protocol-version", "2026-07-28")],
        lies: false,
    },
    Variant {
        name: "2026-07-28, uppercase header name",
        version: "2026-07-28",
        headers: &[("MCP-PROTOCOL-VERSION", "2026-07-28")],
        lies: false,
    },
    Variant {
        name: "2027-01-01",
        version: "2027-01-01",
        headers: &[("Mcp-Protocol-Version", "2027-01-01")],
        lies: false,
    },
    Variant {
        name: "2026-07-28 with Mcp-Method: initialize",
        version: "2026-07-28",
        headers: &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "initialize"),
        ],
        lies: false,
    },
    Variant {
        name: "2026-07-28 with Mcp-Method: tools/list (a lie)",
        version: "2026-07-28",
        headers: &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
        lies: true,
    },
    Variant {
        name: "2027-01-01 with Mcp-Method: tools/list (a lie)",
        version: "2027-01-01",
        headers: &[
            ("mcp-protocol-version", "2027-01-01"),
            ("MCP-METHOD", "tools/list"),
        ],
        lies: true,
    },
];

async fn no_bypass(mode: IdMode) {
    let server = start(mode, capped_at_one(), |layer| layer).await;
    let mut accepted = 0;
    for (n, variant) in VARIANTS.iter().enumerate() {
        // A fresh caller per variant: each starts with no session.
        let user = format!("user-{n}");
        let bearer = format!("Bearer {user}");
        let mut headers = variant.headers.to_vec();
        headers.push(("Authorization", &bearer));
        let body = initialize_body(variant.version);

        let first = raw_post(server.addr, &headers, &body).await;
        let context = format!("{mode:?}, {}, first", variant.name);
        assert_bound(&server, &first, &user, &context).await;
        let second = raw_post(server.addr, &headers, &body).await;
        let context = format!("{mode:?}, {}, second", variant.name);
        assert_bound(&server, &second, &user, &context).await;

        if variant.lies {
            // rmcp refuses the contradiction; nothing may be left bound.
            assert!(first.header("mcp-session-id").is_none(), "{context}");
            assert!(second.header("mcp-session-id").is_none(), "{context}");
            continue;
        }
        assert_eq!(first.status, 200, "{context}: {first:?}");
        assert!(first.header("mcp-session-id").is_some(), "{context}");
        assert!(first.json()["result"]["protocolVersion"].is_string());
        accepted += 1;
        // The cap holds: the second is refused by the layer.
        assert_eq!(second.status, 429, "{context}: {second:?}");
        assert!(second.header("mcp-session-id").is_none(), "{context}");
        assert_eq!(second.header("retry-after"), Some("1"), "{context}");
        assert_eq!(second.json()["error"]["code"], -32004, "{context}");
    }
    assert_eq!(accepted, VARIANTS.iter().filter(|v| !v.lies).count());
}

#[tokio::test]
async fn adopt_mode_binds_and_caps_initialize_with_a_sessionless_version() {
    no_bypass(IdMode::Adopt).await;
}

#[tokio::test]
async fn mint_mode_binds_and_caps_initialize_with_a_sessionless_version() {
    no_bypass(IdMode::Mint).await;
}

/// An id handed out for such an initialize is a working session: later
/// requests with it reach rmcp (adopt mode: rmcp's own session).
#[tokio::test]
async fn the_session_of_a_2026_headed_initialize_works() {
    for mode in [IdMode::Adopt, IdMode::Mint] {
        let server = start(mode, capped_at_one(), |layer| layer).await;
        let headers = [
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Authorization", "Bearer carol"),
        ];
        let init = raw_post(server.addr, &headers, &initialize_body("2026-07-28")).await;
        assert_eq!(init.status, 200, "{mode:?}: {init:?}");
        let version = init.json()["result"]["protocolVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let id = init.header("mcp-session-id").unwrap().to_string();
        let in_session = [
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", version.as_str()),
            ("Authorization", "Bearer carol"),
        ];
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let answer = raw_post(server.addr, &in_session, initialized).await;
        assert_eq!(answer.status, 202, "{mode:?}: {answer:?}");
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let answer = raw_post(server.addr, &in_session, list).await;
        assert_eq!(answer.status, 200, "{mode:?}: {answer:?}");
        assert_eq!(answer.json()["result"]["tools"][0]["name"], "length");
        // Someone else holding the id: 404.
        let stolen = [
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", version.as_str()),
            ("Authorization", "Bearer mallory"),
        ];
        assert_eq!(raw_post(server.addr, &stolen, list).await.status, 404);
    }
}

// ---------------------------------------------------------------------------
// Sessionless bodies: read under their own cap, handed on unchanged
// ---------------------------------------------------------------------------

fn sessionless_call(text_len: usize) -> String {
    json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {
            "name": "length",
            "arguments": {"text": "x".repeat(text_len)},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "big", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
    .to_string()
}

const SESSIONLESS_CALL_HEADERS: &[(&str, &str)] = &[
    ("MCP-Protocol-Version", "2026-07-28"),
    ("Mcp-Method", "tools/call"),
    ("Mcp-Name", "length"),
    ("Authorization", "Bearer dave"),
];

#[tokio::test]
async fn large_sessionless_tools_call_passes_through_unchanged() {
    for mode in [IdMode::Adopt, IdMode::Mint] {
        let server = start(mode, capped_at_one(), |layer| layer).await;
        let text_len = 200 * 1024; // well over the 64 KiB initialize cap
        let body = sessionless_call(text_len);
        assert!(body.len() > 64 * 1024);
        let answer = raw_post(server.addr, SESSIONLESS_CALL_HEADERS, &body).await;
        assert_eq!(answer.status, 200, "{mode:?}: {answer:?}");
        assert!(answer.header("mcp-session-id").is_none());
        let reply = answer.json();
        assert_eq!(
            reply["result"]["content"][0]["text"],
            text_len.to_string(),
            "{mode:?}: {reply}"
        );
        assert!(server.manager.store().is_empty(), "{mode:?}");
    }
}

#[tokio::test]
async fn sessionless_body_over_its_cap_is_413() {
    let server = start(IdMode::Adopt, capped_at_one(), |layer| {
        layer.max_sessionless_body(128 * 1024)
    })
    .await;
    let answer = raw_post(
        server.addr,
        SESSIONLESS_CALL_HEADERS,
        &sessionless_call(100 * 1024),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = raw_post(
        server.addr,
        SESSIONLESS_CALL_HEADERS,
        &sessionless_call(200 * 1024),
    )
    .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], -32600);
}

/// What the layer cannot read as one JSON-RPC message is refused by the
/// layer itself, not handed to a server that might read it otherwise.
#[tokio::test]
async fn sessionless_bodies_the_layer_cannot_vouch_for_are_refused() {
    let server = start(IdMode::Adopt, capped_at_one(), |layer| layer).await;
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Authorization", "Bearer erin"),
    ];
    for (body, code) in [
        ("{not json", -32700),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"initialize","params":{}}"#,
            -32600,
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#,
            -32600,
        ),
    ] {
        let answer = raw_post(server.addr, &headers, body).await;
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert_eq!(answer.json()["error"]["code"], code, "{body}");
        assert!(answer.header("mcp-session-id").is_none());
    }
    assert!(server.manager.store().is_empty());
}

// ---------------------------------------------------------------------------
// Issue 13 item 11: Retry-After on 429, resource_metadata on 401, real dates
// ---------------------------------------------------------------------------

#[tokio::test]
async fn identity_cap_429_carries_retry_after() {
    let server = start(IdMode::Mint, capped_at_one(), |layer| {
        layer.retry_after(Duration::from_secs(30))
    })
    .await;
    let headers = [("Authorization", "Bearer frank")];
    let body = initialize_body("2025-11-25");
    assert_eq!(raw_post(server.addr, &headers, &body).await.status, 200);
    let refused = raw_post(server.addr, &headers, &body).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("30"));
    assert_eq!(refused.json()["error"]["code"], -32004);
    assert_eq!(server.manager.store().len(), 1);
}

#[tokio::test]
async fn unauthenticated_401_points_at_the_resource_metadata() {
    const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource";
    let server = start(IdMode::Mint, Config::default(), |layer| {
        layer.resource_metadata(Uri::from_static(METADATA))
    })
    .await;
    let answer = raw_post(server.addr, &[], &initialize_body("2025-11-25")).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{METADATA}\"").as_str())
    );
    assert_eq!(answer.json()["error"]["code"], -32002);

    // Without the option: a plain challenge, as before.
    let server = start(IdMode::Mint, Config::default(), |layer| layer).await;
    let answer = raw_post(server.addr, &[], &initialize_body("2025-11-25")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
}

/// The challenge is a quoted-string: a `"` (which `http::Uri` accepts in a
/// path) is escaped.
#[tokio::test]
async fn resource_metadata_is_sent_as_a_valid_quoted_string() {
    let server = start(IdMode::Mint, Config::default(), |layer| {
        layer.resource_metadata("https://example.com/a\"b".parse().unwrap())
    })
    .await;
    let answer = raw_post(server.addr, &[], &initialize_body("2025-11-25")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer resource_metadata="https://example.com/a\"b""#)
    );
}

/// `2026-99-99` is no revision: the request is handshake-era and, without a
/// session id, answered `400` by the layer (it used to pass as sessionless).
#[tokio::test]
async fn impossible_dates_are_not_sessionless_versions() {
    let server = start(IdMode::Adopt, Config::default(), |layer| layer).await;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    for version in ["2026-99-99", "2026-02-30", "2026-07-32"] {
        let headers = [
            ("MCP-Protocol-Version", version),
            ("Authorization", "Bearer gina"),
        ];
        let answer = raw_post(server.addr, &headers, list).await;
        assert_eq!(answer.status, 400, "{version}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let error = answer.json();
        assert_eq!(error["error"]["code"], -32600, "{version}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Mcp-Session-Id"),
            "{version}: {error}"
        );
    }
}
