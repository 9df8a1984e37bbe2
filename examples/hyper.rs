//! `SessionLayer` in front of a plain hyper 1 service: a hand-written
//! JSON-RPC handler (no MCP SDK) that reads the session, the caller and its
//! roles from the request extensions.
//!
//! ```text
//! cargo run --example hyper -- [--addr 127.0.0.1:8080]
//! ```
//!
//! It answers `initialize`, `ping`, `tools/list` and `tools/call` of one
//! tool, `whoami`; notifications get `202`. The layer mints the session ids
//! (the handler is stateless), answers `DELETE` itself, and lets sessionless
//! 2026-07-28 requests through with the caller's identity and roles.
//! DEMO-ONLY auth: `Authorization: Bearer alice-token` or `Bearer bob-token`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mcp_session::layer::{codes, RequestBody};
use mcp_session::{Config, Identity, MokaStore, Roles, Session, SessionLayer, SessionManager};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

type Body = BoxBody<Bytes, Infallible>;

const PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = match parse_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("error: {error}\nusage: hyper [--addr 127.0.0.1:8080]");
            std::process::exit(2);
        }
    };

    // The handler behind the session layer; the demo auth goes in front.
    let manager = SessionManager::new(MokaStore::new(100_000), Config::default());
    let mcp = ServiceBuilder::new()
        .layer(SessionLayer::new(manager))
        .service_fn(handle_jsonrpc);
    let app = tower::service_fn(move |mut request: Request<Incoming>| {
        let mcp = mcp.clone();
        async move {
            if request.uri().path() != "/mcp" {
                return Ok(plain(
                    StatusCode::NOT_FOUND,
                    "not found: the endpoint is /mcp",
                ));
            }
            let Some(identity) = demo_identity(request.headers().get(header::AUTHORIZATION)) else {
                return Ok(unauthorized());
            };
            request.extensions_mut().insert(identity);
            let response = mcp.oneshot(request).await?;
            Ok::<_, Infallible>(response.map(BodyExt::boxed))
        }
    });

    let listener = TcpListener::bind(addr).await?;
    println!("DEMO AUTH ONLY: `Authorization: Bearer alice-token` or `Bearer bob-token`");
    println!("listening on http://{}/mcp", listener.local_addr()?);

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    eprintln!("accept failed: {error}");
                    continue;
                }
            },
            _ = &mut ctrl_c => break,
        };
        // Without TCP_NODELAY, small replies on a kept-alive connection wait
        // for delayed ACKs (~40 ms each).
        let _ = tcp.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("connection error: {error}");
            }
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => println!("shut down"),
        _ = tokio::time::sleep(Duration::from_secs(10)) => eprintln!("shut down, dropping open connections"),
    }
    Ok(())
}

fn parse_addr(args: impl IntoIterator<Item = String>) -> Result<SocketAddr, String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--addr") {
            Some("") => args.next().ok_or("--addr needs a value")?,
            Some(inline) if inline.starts_with('=') => inline[1..].to_string(),
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        addr = value
            .parse()
            .map_err(|e| format!("--addr {value:?}: {e}"))?;
    }
    Ok(addr)
}

/// DEMO ONLY: two fixed tokens. Real code validates a token and builds the
/// identity from its stable subject.
fn demo_identity(authorization: Option<&http::HeaderValue>) -> Option<Identity> {
    match authorization?.as_bytes() {
        b"Bearer alice-token" => Some(Identity::new("alice", "Alice", ["admin", "reader"])),
        b"Bearer bob-token" => Some(Identity::new("bob", "Bob", ["reader"])),
        _ => None,
    }
}

/// The MCP endpoint: one JSON-RPC message per POST, answered with JSON.
async fn handle_jsonrpc(
    request: Request<RequestBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        // GET (server-to-client stream) is not offered; DELETE never gets
        // here: the layer terminates sessions itself.
        let mut response = json_response(StatusCode::METHOD_NOT_ALLOWED, &Value::Null);
        response.headers_mut().insert(
            header::ALLOW,
            http::HeaderValue::from_static("POST, DELETE"),
        );
        return Ok(response);
    }
    let (parts, body) = request.into_parts();
    let message: Value = match body.collect().await {
        Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let Some(method) = message["method"].as_str() else {
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &error(Value::Null, -32700, "expected one JSON-RPC request"),
        ));
    };
    let Some(id) = message.get("id").cloned() else {
        return Ok(accepted()); // a notification
    };

    // What the layer put in the extensions: always the caller; the session
    // (with the roles cached in it) unless the request is sessionless.
    // `Roles::of` reads the roles to authorize with in both cases.
    let extensions = &parts.extensions;
    let (Some(identity), Some(roles)) = (extensions.get::<Identity>(), Roles::of(extensions))
    else {
        let reply = error(
            id,
            -32603,
            "no session-layer data: is SessionLayer in front?",
        );
        return Ok(json_response(StatusCode::INTERNAL_SERVER_ERROR, &reply));
    };
    let session = extensions.get::<Session>();

    let params = &message["params"];
    let reply = match method {
        "initialize" => {
            let asked = params["protocolVersion"].as_str().unwrap_or_default();
            let version = PROTOCOL_VERSIONS
                .into_iter()
                .find(|v| *v == asked)
                .unwrap_or(PROTOCOL_VERSIONS[0]);
            result(
                id,
                json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "mcp-session-hyper-demo", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
        }
        "ping" => result(id, json!({})),
        "tools/list" => result(
            id,
            json!({"tools": [{
                "name": "whoami",
                "description": "Who is calling: identity, roles and session id",
                "inputSchema": {"type": "object", "properties": {}},
            }]}),
        ),
        "tools/call" if params["name"] == "whoami" => {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let text = json!({
                "identity_id": identity.id(),
                "identity_name": identity.name(),
                "roles": roles,
                "session_id": session.map(|s| s.id().reveal()),
            });
            result(
                id,
                json!({"content": [{"type": "text", "text": text.to_string()}], "isError": false}),
            )
        }
        "tools/call" => error(id, -32602, "unknown tool"),
        other => error(id, -32601, &format!("method not found: {other}")),
    };
    Ok(json_response(StatusCode::OK, &reply))
}

fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

fn unauthorized() -> Response<Body> {
    let body = error(
        Value::Null,
        codes::UNAUTHENTICATED,
        "authentication required: `Authorization: Bearer alice-token` or `Bearer bob-token` (demo)",
    );
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body).map(BodyExt::boxed);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *response.status_mut() = status;
    response
}
