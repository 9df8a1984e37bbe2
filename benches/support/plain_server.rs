//! The example server's rmcp app *without* `SessionLayer`, for the benches'
//! baselines: the same demo bearer auth and the same `whoami` output, read
//! from what the auth layer left in the request (the identity) and from the
//! `Mcp-Session-Id` header (rmcp's own session id), with the same TCP_NODELAY
//! listener as examples/server/.
//!
//! - [`Sessions::Legacy`]: rmcp's default legacy session mode
//!   (`LocalSessionManager`, rmcp mints UUIDs, SSE replies): what a server
//!   without our layer runs.
//! - [`Sessions::None`]: rmcp stateless with JSON replies and no session at
//!   all (the configuration the example uses behind the layer in mint mode,
//!   minus the layer): the floor for the layer's end-to-end cost.
//!
//! Include it with `#[allow(dead_code)] #[path = "support/plain_server.rs"] mod plain_server;`.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use http::{header, StatusCode};
use mcp_session::{Identity, Role};
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use tokio::net::TcpListener;

/// Which sessions rmcp keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// rmcp's legacy session mode with `LocalSessionManager`.
    Legacy,
    /// rmcp stateless, JSON replies, no sessions.
    None,
}

/// The caller as the demo auth left it, and rmcp's session id if any: read by
/// reference from the HTTP parts rmcp put into the request context (the same
/// access path as `mcp_session::rmcp::Caller`).
pub struct PlainCaller {
    identity: Identity,
    session_id: Option<String>,
}

impl<C: AsRequestContext> FromContextPart<C> for PlainCaller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let parts = context
            .as_request_context()
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP parts", None))?;
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("no identity", None))?;
        let session_id = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(PlainCaller {
            identity,
            session_id,
        })
    }
}

/// The demo server's `whoami`, without the layer.
#[derive(Clone)]
pub struct PlainServer {
    tool_router: ToolRouter<Self>,
}

impl PlainServer {
    pub fn new() -> Self {
        PlainServer {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl PlainServer {
    #[tool(
        description = "Who is calling: identity id and name, roles, and the session id (null on sessionless requests)"
    )]
    fn whoami(&self, caller: PlainCaller) -> String {
        let roles: Vec<&str> = caller.identity.roles().iter().map(Role::as_str).collect();
        serde_json::json!({
            "identity_id": caller.identity.id(),
            "identity_name": caller.identity.name(),
            "roles": roles,
            "session_id": caller.session_id,
        })
        .to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PlainServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-session-bench-plain", "0"))
    }
}

/// The rmcp service with the given sessions (rmcp's defaults otherwise, as a
/// user without our layer would run it).
pub fn rmcp_service(sessions: Sessions) -> StreamableHttpService<PlainServer, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default();
    let config = match sessions {
        Sessions::Legacy => config.with_legacy_session_mode(true),
        Sessions::None => config
            .with_legacy_session_mode(false)
            .with_json_response(true),
    };
    StreamableHttpService::new(
        || Ok(PlainServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

fn demo_identity(authorization: Option<&[u8]>) -> Option<Identity> {
    use std::sync::LazyLock;
    static ALICE: LazyLock<Identity> =
        LazyLock::new(|| Identity::new("alice", "Alice", ["admin", "reader"]));
    static BOB: LazyLock<Identity> = LazyLock::new(|| Identity::new("bob", "Bob", ["reader"]));
    match authorization? {
        b"Bearer alice-token" => Some(ALICE.clone()),
        b"Bearer bob-token" => Some(BOB.clone()),
        _ => None,
    }
}

/// The example's demo bearer auth, verbatim in behaviour.
async fn demo_bearer_auth(mut request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match demo_identity(authorization) {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response(),
    }
}

/// `/mcp`: rmcp behind the demo auth, no session layer.
pub fn app(sessions: Sessions) -> Router {
    let mcp = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(demo_bearer_auth))
        .service(rmcp_service(sessions));
    Router::new().nest_service("/mcp", mcp)
}

/// `/mcp`: this module's stateless rmcp app (the same tool code as
/// [`Sessions::None`]) behind `layer` behind the demo auth: isolates the
/// layer's cost from the example server's tool code.
pub fn app_with_layer(layer: mcp_session::SessionLayer) -> Router {
    let mcp = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(demo_bearer_auth))
        .layer(layer)
        .service(rmcp_service(Sessions::None));
    Router::new().nest_service("/mcp", mcp)
}

/// Serves [`app`] on `listener` (TCP_NODELAY on accepted sockets) forever.
pub async fn serve(listener: TcpListener, sessions: Sessions) -> std::io::Result<()> {
    serve_app(listener, app(sessions)).await
}

/// Serves `app` on `listener` (TCP_NODELAY on accepted sockets) forever.
pub async fn serve_app(listener: TcpListener, app: Router) -> std::io::Result<()> {
    println!("listening on http://{}/mcp", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
