//! The command line: every flag also reads an environment variable
//! (`MCP_DEMO_<FLAG>`, and `REDIS_URL` for `--redis-url`, as usual for
//! Redis), so that a container or a test harness can configure it either way.
//! A flag given on the command line wins over its variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use mcp_session::{
    IdMode, IdentityLimitPolicy, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_IDENTITY,
    DEFAULT_ROLES_MAX_AGE,
};

/// A runnable MCP server behind mcp-session (DEMO auth: fixed bearer tokens).
#[derive(Clone, Debug, Parser)]
#[command(name = "server", version, about, long_about = None)]
pub struct Options {
    /// Address to listen on.
    #[arg(long, env = "MCP_DEMO_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Idle timeout of a session, in seconds (positive).
    #[arg(
        long = "timeout-secs",
        env = "MCP_DEMO_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "1800",
        value_parser = positive_secs
    )]
    pub timeout: Duration,

    /// Who mints session ids: `mint` (the layer; rmcp runs stateless) or
    /// `adopt` (rmcp mints its own; the layer binds and expires them).
    #[arg(long, env = "MCP_DEMO_MODE", default_value = "mint", value_parser = id_mode)]
    pub mode: IdMode,

    /// Keep sessions and the demo role directory in this Redis/Valkey
    /// (e.g. redis://127.0.0.1:6379) instead of in memory.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Longest a cached role lookup is used, in seconds (0: never cached).
    #[arg(
        long = "roles-max-age-secs",
        env = "MCP_DEMO_ROLES_MAX_AGE_SECS",
        value_name = "SECS",
        default_value = "60",
        value_parser = secs
    )]
    pub roles_max_age: Duration,

    /// Live sessions in all (positive); beyond: 503.
    #[arg(long, env = "MCP_DEMO_MAX_SESSIONS", value_name = "N", default_value_t = DEFAULT_MAX_SESSIONS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,

    /// Live sessions per identity (positive).
    #[arg(long, env = "MCP_DEMO_MAX_SESSIONS_PER_IDENTITY", value_name = "N",
          default_value_t = DEFAULT_MAX_SESSIONS_PER_IDENTITY,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_identity: u32,

    /// At the per-identity cap: `evict` (the identity's oldest session) or
    /// `reject` (429).
    #[arg(
        long,
        env = "MCP_DEMO_IDENTITY_LIMIT",
        default_value = "evict",
        value_parser = identity_limit
    )]
    pub identity_limit: IdentityLimitPolicy,

    /// Serve `GET /metrics` (Prometheus text) alone on this address, e.g.
    /// 127.0.0.1:9090; default: on `--addr`, beside `/mcp`.
    #[arg(
        long = "metrics-addr",
        env = "MCP_DEMO_METRICS_ADDR",
        value_name = "ADDR"
    )]
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Options {
    /// The defaults above, without reading the environment.
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
            metrics_addr: None,
        }
    }
}

fn secs(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{value:?} is not a whole number of seconds"))
}

fn positive_secs(value: &str) -> Result<Duration, String> {
    match secs(value)? {
        zero if zero.is_zero() => Err("must be at least 1 second".into()),
        duration => Ok(duration),
    }
}

fn id_mode(value: &str) -> Result<IdMode, String> {
    match value {
        "mint" => Ok(IdMode::Mint),
        "adopt" => Ok(IdMode::Adopt),
        _ => Err(format!("{value:?}: expected mint or adopt")),
    }
}

fn identity_limit(value: &str) -> Result<IdentityLimitPolicy, String> {
    match value {
        "evict" => Ok(IdentityLimitPolicy::EvictOldest),
        "reject" => Ok(IdentityLimitPolicy::Reject),
        _ => Err(format!("{value:?}: expected evict or reject")),
    }
}
