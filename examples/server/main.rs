//! A runnable MCP server: rmcp's Streamable HTTP service on axum, behind
//! `mcp_session::SessionLayer`, which reads the caller from DEMO-ONLY fixed bearer tokens.
//!
//! ```text
//! cargo run --example server --all-features -- [--addr 127.0.0.1:8080] [--timeout-secs 1800]
//!                                               [--mode mint|adopt] [--redis-url redis://127.0.0.1:6379]
//!                                               [--roles-max-age-secs 60] [--max-sessions N]
//!                                               [--max-sessions-per-identity N]
//!                                               [--identity-limit evict|reject]
//! ```
//!
//! `--help` lists every flag. Each also reads an environment variable
//! (`MCP_DEMO_ADDR`, `MCP_DEMO_MODE`, …; `REDIS_URL` for `--redis-url`):
//! see cli.rs.
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
//! in this process and how many the in-memory store holds. `GET /metrics`
//! (no auth) is the library's metrics in the Prometheus text format
//! (`--metrics-addr` serves it on a port of its own); logs go to stderr,
//! filtered by `RUST_LOG` (default `warn`). See observe.rs.
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
//!   that identity on every replica; returns `{"terminated": <count>}`;
//! - `notes_create`, `notes_append`, `notes_read`, `notes_delete` (every
//!   authenticated caller): a notes buffer behind a handle bound to the
//!   caller, for sessionless clients and handshake-era ones alike (see
//!   notes.rs).

mod auth;
mod cli;
mod directory;
mod notes;
mod observe;
mod tools;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use mcp_session::policy::{Policy, PolicyLayer};
use mcp_session::rmcp::SessionStateStore;
use mcp_session::{
    AnyStore, BearerToken, Config, IdMode, IdentityLimitPolicy, MokaStore, RedisStore,
    SessionLayer, SessionManager,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

pub use cli::Options;
pub use directory::{Admin, AdminOps, DemoDirectory};
pub use tools::DemoServer;

fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message; `--help` and `--version` exit 0.
    let options = Options::parse();
    observe::init_logs();
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
            if options.mode == IdMode::Adopt {
                "minted by rmcp (legacy session mode), adopted by the layer"
            } else {
                "minted by the layer (64 hex characters), rmcp stateless"
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
    // One store type either way (`AnyStore`): nothing below is generic.
    let (store, directory): (AnyStore, _) = match &options.redis_url {
        Some(url) => {
            let cannot = |error: &dyn std::fmt::Display| {
                std::io::Error::other(format!("cannot use Redis at {url}: {error}"))
            };
            let store = RedisStore::connect(url).await.map_err(|e| cannot(&e))?;
            let directory = DemoDirectory::redis(url).await.map_err(|e| cannot(&e))?;
            println!("session store and role directory: Redis at {url}");
            (store.into(), directory)
        }
        None => {
            let capacity = options.max_sessions;
            println!("session store: in memory (moka, {capacity} sessions max)");
            (MokaStore::new(capacity).into(), DemoDirectory::memory())
        }
    };
    serve_with_store(listener, &options, store, directory, shutdown).await
}

/// Serves with the session store and the demo role directory.
pub async fn serve_with_store(
    listener: TcpListener,
    options: &Options,
    store: AnyStore,
    directory: DemoDirectory,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop_mcp = CancellationToken::new();
    let directory = Arc::new(directory);
    observe::prometheus(); // installed before the first request
    let manager = session_manager(store, options, &directory);
    let metrics = observe::metrics_router(manager.clone());
    let admin: Arc<dyn Admin> = Arc::new(AdminOps {
        manager: manager.clone(),
        directory,
    });
    let layer = SessionLayer::new(manager).id_mode(options.mode);
    let mut app = app(layer, admin, options, stop_mcp.clone());
    match options.metrics_addr {
        Some(addr) => {
            let bound = observe::serve_metrics_on(addr, metrics).await?;
            println!("metrics on http://{bound}/metrics");
        }
        None => app = app.merge(metrics), // outside the auth and session layers
    }
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
pub fn session_manager(
    store: AnyStore,
    options: &Options,
    directory: &Arc<DemoDirectory>,
) -> SessionManager<AnyStore> {
    let config = Config::default()
        .timeout(options.timeout)
        .roles_max_age(options.roles_max_age)
        .max_sessions(options.max_sessions)
        .max_sessions_per_identity(options.max_sessions_per_identity)
        .identity_limit(options.identity_limit);
    SessionManager::builder(store)
        .config(config)
        .role_source(directory.clone())
        .build()
}

/// The app: `/mcp` is rmcp behind the policy layer behind the session layer
/// (which authenticates with the demo tokens).
/// Cancelling `stop_mcp` ends rmcp's sessions and streams.
pub fn app(
    layer: SessionLayer<AnyStore>,
    admin: Arc<dyn Admin>,
    options: &Options,
    stop_mcp: CancellationToken,
) -> Router {
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop_mcp);
    let mut sessions = LocalSessionManager::default();
    let config = if options.mode == IdMode::Adopt {
        // rmcp mints and keeps sessions; keep them at least as long as the
        // layer does, or rmcp would 404 sessions the layer still serves.
        sessions.session_config.keep_alive = Some(options.timeout);
        let mut config = config.with_legacy_session_mode(true);
        config.session_store = rmcp_session_states(layer.manager());
        config
    } else {
        // Mint mode: rmcp stateless, it never sees a session it did not get
        // from the layer; plain JSON answers (no stream to resume).
        config
            .with_legacy_session_mode(false)
            .with_json_response(true)
    };
    let sessions = Arc::new(sessions);
    let stats = session_stats(sessions.clone(), layer.manager().clone());
    let notes = notes::notes(layer.manager().store(), options.timeout);
    let rmcp =
        StreamableHttpService::new(move || Ok(DemoServer::new(admin.clone())), sessions, config);
    // The layer reads the caller from `Authorization: Bearer` itself.
    let layer = layer.resolve_identity(BearerToken::new(auth::demo_identity));
    let mcp = ServiceBuilder::new()
        .layer(layer)
        .layer(PolicyLayer::new(demo_policy())) // tool-level authorization
        .layer(notes.layer()) // the notes tools' store (examples/server/notes.rs)
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
fn rmcp_session_states(
    manager: &SessionManager<AnyStore>,
) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::SessionStore>> {
    let redis = manager.store().as_redis()?;
    Some(SessionStateStore::redis(manager, redis))
}

/// `GET /stats` (no auth; counts only): how many sessions rmcp holds in
/// this process (adopt mode; 0 in mint mode, where rmcp is stateless), and
/// how many the in-memory session store holds (`null` over Redis, shared
/// by all replicas). `examples/soak.rs` samples it.
fn session_stats(
    rmcp: Arc<LocalSessionManager>,
    manager: SessionManager<AnyStore>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = axum::Json<serde_json::Value>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move || {
        let (rmcp, manager) = (rmcp.clone(), manager.clone());
        Box::pin(async move {
            let rmcp_sessions = rmcp.sessions.read().await.len();
            let store_sessions = manager.store().as_moka().map(|store| {
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
    match Policy::from_toml(include_str!("../policy.toml")) {
        Ok(policy) => policy,
        // Compiled in and covered by tests: a broken file never ships.
        Err(error) => panic!("examples/policy.toml: {error}"),
    }
}

// ---------------------------------------------------------------------------
// DEMO-ONLY authentication
// ---------------------------------------------------------------------------
