//! A runnable MCP server: rmcp's Streamable HTTP service on axum, behind
//! `mcp_session::SessionLayer` and a DEMO-ONLY bearer-token auth layer.
//!
//! ```text
//! cargo run --example server -- [--addr 127.0.0.1:8080] [--timeout-secs 1800] [--mode mint|adopt]
//!                                [--redis-url redis://127.0.0.1:6379] [--roles-max-age-secs 60]
//!                                [--max-sessions N] [--max-sessions-per-identity N]
//!                                [--identity-limit evict|reject]
//! ```
//!
//! - `--redis-url URL` (or the `REDIS_URL` environment variable): keep
//!   sessions in Redis/Valkey instead of in memory, so that several server
//!   processes (replicas) serve each other's sessions.
//!
//! - `--mode mint` (default): rmcp runs stateless (`legacy_session_mode =
//!   false`); the layer mints 64-hex-character session ids.
//! - `--mode adopt`: rmcp keeps its default legacy session mode (its
//!   server-to-client streams included) and mints UUIDs; the layer binds
//!   each to its caller and expires it ([`IdMode::Adopt`]).
//!
//! - `--mode adopt --redis-url URL`: rmcp also keeps each session's
//!   `initialize` parameters in that Redis
//!   ([`SessionStateStore`](mcp_session::rmcp::SessionStateStore)), so any
//!   replica serves any session: no sticky routing needed.
//!
//! `GET /stats` (counts only, no auth) reports how many sessions rmcp holds
//! in this process and how many the in-memory store holds.
//!
//! Either way, sessionless 2026-07-28 clients (`server/discover`, no
//! `Mcp-Session-Id`) are served too, with the caller's identity and roles.
//!
//! Tokens (demo only): `Authorization: Bearer alice-token` is `alice`,
//! `Bearer bob-token` is `bob`. Tokens carry no roles: they come from a demo
//! directory (a [`RoleSource`]) — in memory, or in Redis with `--redis-url`
//! so that replicas share it — where `alice` starts with `admin`, `reader`
//! and `bob` with `reader`. The layer caches them per identity for at most
//! `--roles-max-age-secs` (default 60).
//!
//! Who may call which tool is decided by `mcp_session::policy::PolicyLayer`
//! from examples/policy.toml (inside the session layer): a caller's
//! `tools/list` shows only the tools it may call, and a refused call gets a
//! JSON-RPC error naming the missing role; the tool never runs.
//!
//! Tools:
//! - `whoami`: the caller's identity, current roles and session id (every
//!   authenticated caller);
//! - `admin_echo {"text"}`: echoes, for role `admin` (policy only);
//! - `set_roles {"identity_id", "roles"}` (role `admin`): replaces that
//!   identity's roles in the directory and invalidates them on every
//!   replica; returns `{"identity_id", "roles"}`;
//! - `revoke_sessions {"identity_id"}` (role `admin`): ends every session of
//!   that identity on every replica; returns `{"terminated": <count>}`.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use http::{header, StatusCode};
use mcp_session::layer::codes;
use mcp_session::policy::{Policy, PolicyLayer};
use mcp_session::rmcp::{Caller, SessionStateStore};
use mcp_session::roles::{RoleLookupError, RoleSource};
use mcp_session::{
    Config, IdMode, Identity, IdentityLimitPolicy, MokaStore, RedisStore, Role, Roles, SessionId,
    SessionLayer, SessionManager, SessionStore, DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_IDENTITY, DEFAULT_ROLES_MAX_AGE,
};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

const USAGE: &str = "\
usage: server [--addr 127.0.0.1:8080] [--timeout-secs 1800] [--mode mint|adopt] [--redis-url URL]
              [--roles-max-age-secs 60] [--max-sessions N] [--max-sessions-per-identity N]
              [--identity-limit evict|reject]

  --addr          address to listen on (default 127.0.0.1:8080)
  --timeout-secs  idle timeout of a session, in seconds (default 1800)
  --mode          mint: the layer mints session ids, rmcp runs stateless (default)
                  adopt: rmcp mints its own session ids, the layer binds them
  --redis-url     keep sessions and the demo role directory in Redis (also REDIS_URL),
                  e.g. redis://127.0.0.1:6379; default: in memory
  --roles-max-age-secs
                  longest a cached role lookup is used, in seconds (default 60)
  --max-sessions  live sessions in all (default 1000000); beyond: 503
  --max-sessions-per-identity
                  live sessions per identity (default 64)
  --identity-limit
                  at the per-identity cap: evict (the identity's oldest session, default)
                  or reject (429)";

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// What the command line asks for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Idle timeout of a session.
    pub timeout: Duration,
    /// Who mints session ids.
    pub mode: IdMode,
    /// Keep sessions (and the demo directory) in this Redis instead of in memory.
    pub redis_url: Option<String>,
    /// Longest a cached role lookup is used.
    pub roles_max_age: Duration,
    /// Live sessions in all.
    pub max_sessions: u64,
    /// Live sessions per identity.
    pub max_sessions_per_identity: u32,
    /// What happens at the per-identity cap.
    pub identity_limit: IdentityLimitPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            timeout: Duration::from_secs(1800),
            mode: IdMode::Mint,
            redis_url: None,
            roles_max_age: DEFAULT_ROLES_MAX_AGE,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_identity: DEFAULT_MAX_SESSIONS_PER_IDENTITY,
            identity_limit: IdentityLimitPolicy::default(),
        }
    }
}

/// Either options to run with, or a request for the usage text.
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// `--help`: print the usage text.
    Help,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut options = Options {
        redis_url: std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        ..Options::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--addr" => {
                let v = value("--addr")?;
                options.addr = v
                    .parse()
                    .map_err(|e| format!("--addr {v:?}: {e} (expected IP:PORT)"))?;
            }
            "--timeout-secs" => {
                let v = value("--timeout-secs")?;
                let secs: u64 =
                    v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("--timeout-secs {v:?}: expected a positive integer")
                    })?;
                options.timeout = Duration::from_secs(secs);
            }
            "--mode" => {
                options.mode = match value("--mode")?.as_str() {
                    "mint" => IdMode::Mint,
                    "adopt" => IdMode::Adopt,
                    other => return Err(format!("--mode {other:?}: expected mint or adopt")),
                };
            }
            "--redis-url" => options.redis_url = Some(value("--redis-url")?),
            "--roles-max-age-secs" => {
                let v = value("--roles-max-age-secs")?;
                let secs: u64 = v.parse().map_err(|_| {
                    format!("--roles-max-age-secs {v:?}: expected a whole number of seconds")
                })?;
                options.roles_max_age = Duration::from_secs(secs);
            }
            "--max-sessions" => {
                let v = value("--max-sessions")?;
                options.max_sessions =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--max-sessions {v:?}: expected a positive integer")
                    })?;
            }
            "--max-sessions-per-identity" => {
                let v = value("--max-sessions-per-identity")?;
                options.max_sessions_per_identity =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--max-sessions-per-identity {v:?}: expected a positive integer")
                    })?;
            }
            "--identity-limit" => {
                options.identity_limit = match value("--identity-limit")?.as_str() {
                    "evict" => IdentityLimitPolicy::EvictOldest,
                    "reject" => IdentityLimitPolicy::Reject,
                    other => {
                        return Err(format!(
                            "--identity-limit {other:?}: expected evict or reject"
                        ))
                    }
                };
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Parsed::Run(options))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(options.addr).await?;
        println!(
            "DEMO AUTH ONLY (fixed tokens, never use in production): \
             `Authorization: Bearer alice-token` (alice), `Authorization: Bearer bob-token` (bob); \
             roles from the demo directory (alice: admin, reader; bob: reader), cached {}s at most",
            options.roles_max_age.as_secs()
        );
        println!(
            "caps: {} sessions, {} per identity ({})",
            options.max_sessions,
            options.max_sessions_per_identity,
            match options.identity_limit {
                IdentityLimitPolicy::Reject => "then 429",
                _ => "then the oldest is evicted",
            }
        );
        println!(
            "session ids: {}, idle timeout {}s",
            match options.mode {
                IdMode::Mint => "minted by the layer (64 hex characters), rmcp stateless",
                IdMode::Adopt => "minted by rmcp (legacy session mode), adopted by the layer",
            },
            options.timeout.as_secs()
        );
        serve(listener, options, ctrl_c()).await
    });
    match result {
        Ok(()) => {
            println!("shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: run until killed.
        std::future::pending::<()>().await;
    }
}

// ---------------------------------------------------------------------------
// Wiring: store → manager → layer → app → server
// ---------------------------------------------------------------------------

/// Serves the MCP endpoint on `listener` until `shutdown` completes, with
/// sessions in Redis if `--redis-url` was given, in memory otherwise.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match &options.redis_url {
        Some(url) => {
            let cannot = |error: &dyn std::fmt::Display| {
                std::io::Error::other(format!("cannot use Redis at {url}: {error}"))
            };
            let store = RedisStore::connect(url).await.map_err(|e| cannot(&e))?;
            let directory = DemoDirectory::redis(url).await.map_err(|e| cannot(&e))?;
            println!("session store and role directory: Redis at {url}");
            serve_with_store(listener, &options, store, directory, shutdown).await
        }
        None => {
            let capacity = options.max_sessions;
            println!("session store: in memory (moka, {capacity} sessions max)");
            let store = MokaStore::new(capacity);
            serve_with_store(listener, &options, store, DemoDirectory::memory(), shutdown).await
        }
    }
}

/// Serves with any session store and the demo role directory.
pub async fn serve_with_store<S: SessionStore>(
    listener: TcpListener,
    options: &Options,
    store: S,
    directory: DemoDirectory,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop_mcp = CancellationToken::new();
    let directory = Arc::new(directory);
    let manager = session_manager(store, options, &directory);
    let admin: Arc<dyn Admin> = Arc::new(AdminOps {
        manager: manager.clone(),
        directory,
    });
    let layer = SessionLayer::new(manager).id_mode(options.mode);
    let app = app(layer, admin, options, stop_mcp.clone());
    // TCP_NODELAY: without it, rmcp's SSE replies on a reused keep-alive
    // connection wait ~40 ms each for delayed ACKs (Nagle).
    // Printed once the store is connected: from here on requests are served.
    println!("listening on http://{}/mcp", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Ends rmcp's open SSE streams, so graceful shutdown can finish.
            stop_mcp.cancel();
        })
        .await
}

/// The session manager over `store`, with roles from the demo directory,
/// configured from the options.
pub fn session_manager<S: SessionStore>(
    store: S,
    options: &Options,
    directory: &Arc<DemoDirectory>,
) -> SessionManager<S> {
    let config = Config::default()
        .timeout(options.timeout)
        .roles_max_age(options.roles_max_age)
        .max_sessions(options.max_sessions)
        .max_sessions_per_identity(options.max_sessions_per_identity, options.identity_limit);
    SessionManager::builder(store)
        .config(config)
        .role_source(directory.clone())
        .build()
}

/// The app: `/mcp` is rmcp behind the session layer behind the demo auth.
/// Cancelling `stop_mcp` ends rmcp's sessions and streams.
pub fn app<S: SessionStore>(
    layer: SessionLayer<S>,
    admin: Arc<dyn Admin>,
    options: &Options,
    stop_mcp: CancellationToken,
) -> Router {
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop_mcp);
    let mut sessions = LocalSessionManager::default();
    let config = match options.mode {
        // rmcp stateless: it never sees a session it did not get from the layer.
        IdMode::Mint => config
            .with_legacy_session_mode(false)
            .with_json_response(true),
        // rmcp mints and keeps sessions; keep them at least as long as the
        // layer does, or rmcp would 404 sessions the layer still serves.
        IdMode::Adopt => {
            sessions.session_config.keep_alive = Some(options.timeout);
            let mut config = config.with_legacy_session_mode(true);
            config.session_store = rmcp_session_states(layer.manager());
            config
        }
    };
    let sessions = Arc::new(sessions);
    let stats = session_stats(sessions.clone(), layer.manager().clone());
    let rmcp =
        StreamableHttpService::new(move || Ok(DemoServer::new(admin.clone())), sessions, config);
    let mcp = ServiceBuilder::new()
        .layer(middleware::from_fn(demo_bearer_auth)) // outermost: runs first
        .layer(layer)
        .layer(PolicyLayer::new(demo_policy())) // tool-level authorization
        .service(rmcp);
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/stats", axum::routing::get(stats))
}

// ---------------------------------------------------------------------------
// Replicas: rmcp's session states, and session counts
// ---------------------------------------------------------------------------

/// Adopt mode over Redis: rmcp keeps each session's `initialize` parameters
/// in the same Redis ([`SessionStateStore`]), so that a replica that never
/// saw a session restores it: replicas serve each other's sessions without
/// sticky routing. In memory (one process) rmcp keeps its own.
fn rmcp_session_states<S: SessionStore>(
    manager: &SessionManager<S>,
) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::SessionStore>> {
    let redis = (manager.store() as &dyn std::any::Any).downcast_ref::<RedisStore>()?;
    Some(SessionStateStore::redis(manager, redis))
}

/// `GET /stats` (no auth; counts only): how many sessions rmcp holds in
/// this process (adopt mode; 0 in mint mode, where rmcp is stateless), and
/// how many the in-memory session store holds (`null` over Redis, shared
/// by all replicas). `examples/soak.rs` samples it.
fn session_stats<S: SessionStore>(
    rmcp: Arc<LocalSessionManager>,
    manager: SessionManager<S>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = axum::Json<serde_json::Value>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move || {
        let (rmcp, manager) = (rmcp.clone(), manager.clone());
        Box::pin(async move {
            let rmcp_sessions = rmcp.sessions.read().await.len();
            let store_sessions = (manager.store() as &dyn std::any::Any)
                .downcast_ref::<MokaStore>()
                .map(|store| {
                    store.run_pending_tasks();
                    store.len()
                });
            axum::Json(serde_json::json!({
                "rmcp_sessions": rmcp_sessions,
                "store_sessions": store_sessions,
            }))
        })
    }
}

// ---------------------------------------------------------------------------
// Tool-level authorization: examples/policy.toml
// ---------------------------------------------------------------------------

/// The demo policy: `whoami` for every caller, the admin tools for `admin`.
pub fn demo_policy() -> Policy {
    match Policy::from_toml(include_str!("policy.toml")) {
        Ok(policy) => policy,
        // Compiled in and covered by tests: a broken file never ships.
        Err(error) => panic!("examples/policy.toml: {error}"),
    }
}

// ---------------------------------------------------------------------------
// DEMO-ONLY authentication
// ---------------------------------------------------------------------------

// Who the caller is, not what it may do: roles come from the directory.
static ALICE: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("alice", "Alice", []));
static BOB: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("bob", "Bob", []));

/// DEMO ONLY: two fixed bearer tokens. A real server validates a token (JWT
/// signature, introspection, …) and builds the `Identity` from its stable
/// subject, never from the token itself.
fn demo_identity(authorization: Option<&[u8]>) -> Option<Identity> {
    match authorization? {
        b"Bearer alice-token" => Some(ALICE.clone()),
        b"Bearer bob-token" => Some(BOB.clone()),
        _ => None,
    }
}

/// DEMO ONLY auth middleware: puts the caller's `Identity` into the request
/// extensions, where the session layer reads it; anything else is `401`.
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
        None => unauthorized(),
    }
}

fn unauthorized() -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": codes::UNAUTHENTICATED,
            "message": "authentication required: send `Authorization: Bearer alice-token` or \
                        `Authorization: Bearer bob-token` (demo tokens)",
        },
    });
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// The MCP server and its tools
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// The demo directory: where roles live
// ---------------------------------------------------------------------------

/// DEMO ONLY: the roles of each identity, in memory or in one Redis hash
/// (shared by replicas). Identities it does not list have the initial roles
/// below (alice: admin, reader; bob: reader; anyone else: none).
pub enum DemoDirectory {
    /// One process.
    Memory(std::sync::RwLock<std::collections::HashMap<String, Roles>>),
    /// Shared: field = identity id, value = the roles as a JSON array.
    Redis(redis::aio::ConnectionManager),
}

const DIRECTORY_KEY: &str = "mcp-session-demo:directory";

impl DemoDirectory {
    /// A directory in this process's memory.
    pub fn memory() -> Self {
        DemoDirectory::Memory(Default::default())
    }

    /// A directory in Redis at `url`.
    pub async fn redis(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(DemoDirectory::Redis(client.get_connection_manager().await?))
    }

    fn initial(identity_id: &str) -> Roles {
        match identity_id {
            "alice" => Roles::new(["admin", "reader"]),
            "bob" => Roles::new(["reader"]),
            _ => Roles::default(),
        }
    }

    /// Replaces an identity's roles.
    pub async fn set(&self, identity_id: &str, roles: &Roles) -> Result<(), String> {
        match self {
            DemoDirectory::Memory(map) => {
                let mut map = map.write().map_err(|_| "directory lock poisoned")?;
                map.insert(identity_id.to_string(), roles.clone());
                Ok(())
            }
            DemoDirectory::Redis(conn) => {
                let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
                let value = serde_json::to_string(&names).map_err(|e| e.to_string())?;
                redis::cmd("HSET")
                    .arg(DIRECTORY_KEY)
                    .arg(identity_id)
                    .arg(value)
                    .query_async::<()>(&mut conn.clone())
                    .await
                    .map_err(|e| format!("directory unavailable: {e}"))
            }
        }
    }
}

impl RoleSource for DemoDirectory {
    async fn roles(&self, caller: &Identity) -> Result<Roles, RoleLookupError> {
        let id = caller.id();
        match self {
            DemoDirectory::Memory(map) => {
                let map = map
                    .read()
                    .map_err(|_| RoleLookupError::new("directory lock poisoned"))?;
                Ok(map.get(id).cloned().unwrap_or_else(|| Self::initial(id)))
            }
            DemoDirectory::Redis(conn) => {
                let value: Option<String> = redis::cmd("HGET")
                    .arg(DIRECTORY_KEY)
                    .arg(id)
                    .query_async(&mut conn.clone())
                    .await
                    .map_err(RoleLookupError::new)?;
                match value {
                    None => Ok(Self::initial(id)),
                    Some(json) => {
                        let names: Vec<String> =
                            serde_json::from_str(&json).map_err(RoleLookupError::new)?;
                        Ok(Roles::new(names))
                    }
                }
            }
        }
    }
}

/// What the admin tools do, whatever the session store (the tools' server
/// type is not generic over it).
pub trait Admin: Send + Sync + 'static {
    /// Replaces an identity's roles and invalidates them on every replica.
    fn set_roles<'a>(
        &'a self,
        identity_id: &'a str,
        roles: Roles,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// Ends every session of an identity on every replica.
    fn revoke_sessions<'a>(
        &'a self,
        identity_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>>;
}

struct AdminOps<S> {
    manager: SessionManager<S>,
    directory: Arc<DemoDirectory>,
}

impl<S: SessionStore> Admin for AdminOps<S> {
    fn set_roles<'a>(
        &'a self,
        identity_id: &'a str,
        roles: Roles,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.directory.set(identity_id, &roles).await?;
            self.manager
                .invalidate_roles(identity_id)
                .await
                .map_err(|e| format!("roles changed, but not every replica was told: {e}"))
        })
    }

    fn revoke_sessions<'a>(
        &'a self,
        identity_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>> {
        Box::pin(async move {
            self.manager
                .revoke_sessions(identity_id)
                .await
                .map_err(|e| format!("could not revoke the sessions: {e}"))
        })
    }
}

// ---------------------------------------------------------------------------
// The MCP server and its tools
// ---------------------------------------------------------------------------

/// Arguments of `admin_echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to echo back.
    pub text: String,
}

/// Arguments of `set_roles`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SetRolesArgs {
    /// Whose roles to replace.
    pub identity_id: String,
    /// The new roles.
    pub roles: Vec<String>,
}

/// Arguments of `revoke_sessions`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct RevokeArgs {
    /// Whose sessions to end.
    pub identity_id: String,
}

/// The demo MCP server: tools that show who calls, enforce a role, and
/// administer roles and sessions.
#[derive(Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
    admin: Arc<dyn Admin>,
}

impl DemoServer {
    fn new(admin: Arc<dyn Admin>) -> Self {
        DemoServer {
            tool_router: Self::tool_router(),
            admin,
        }
    }
}

#[tool_router]
impl DemoServer {
    /// The caller's identity, roles and session id (null when sessionless).
    #[tool(
        description = "Who is calling: identity id and name, current roles, and the session id (null on sessionless requests)"
    )]
    fn whoami(&self, caller: Caller) -> String {
        let roles: Vec<&str> = caller.roles().iter().map(Role::as_str).collect();
        serde_json::json!({
            "identity_id": caller.identity().id(),
            "identity_name": caller.identity().name(),
            "roles": roles,
            "session_id": caller.session_id().map(SessionId::reveal),
        })
        .to_string()
    }

    /// Echoes the text. Who may call it is the policy's business
    /// (examples/policy.toml: role `admin`), not the tool's.
    #[tool(description = "Echo the text back; requires the role `admin`")]
    fn admin_echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Replaces an identity's roles everywhere (admin only).
    #[tool(
        description = "Replace the roles of an identity in the directory; every replica uses them from the next request on. Requires the role `admin`. Returns {\"identity_id\", \"roles\"}."
    )]
    async fn set_roles(
        &self,
        caller: Caller,
        Parameters(args): Parameters<SetRolesArgs>,
    ) -> Result<String, String> {
        // Defense in depth: the policy already admits only `admin`; this
        // destructive tool stays safe if wired without the policy layer.
        caller.require_role("admin").map_err(|e| e.to_string())?;
        let roles = Roles::new(args.roles.iter().map(String::as_str));
        self.admin.set_roles(&args.identity_id, roles).await?;
        Ok(serde_json::json!({"identity_id": args.identity_id, "roles": args.roles}).to_string())
    }

    /// Ends every session of an identity everywhere (admin only).
    #[tool(
        description = "End every session of an identity on every replica. Requires the role `admin`. Returns {\"terminated\": count}."
    )]
    async fn revoke_sessions(
        &self,
        caller: Caller,
        Parameters(args): Parameters<RevokeArgs>,
    ) -> Result<String, String> {
        // Defense in depth, as in `set_roles`.
        caller.require_role("admin").map_err(|e| e.to_string())?;
        let terminated = self.admin.revoke_sessions(&args.identity_id).await?;
        Ok(serde_json::json!({"terminated": terminated}).to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-session-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Demo of identity-bound MCP sessions: `whoami` shows the caller, \
                 `admin_echo` needs the admin role, `set_roles` and `revoke_sessions` \
                 administer roles and sessions (admin only).",
            )
    }
}
