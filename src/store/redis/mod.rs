//! [`RedisStore`]: sessions in Redis or Valkey, standalone or Cluster, shared
//! by every replica of a server (feature `redis`).
//!
//! # Client
//!
//! Built on [redis-rs](https://docs.rs/redis) 1.x: a standalone server is
//! reached through its [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself), a Cluster through its async [`ClusterConnection`]
//! (slot-aware routing, topology refresh). Both are wrapped in one store type.
//!
//! # Keys
//!
//! With the default prefix `mcp-session:`:
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `mcp-session:s:<hash>` | string | the session (format below), with a TTL of its remaining life plus a 1 s grace (the logical expiry check decides) |
//! | `mcp-session:i:<identity id>` | sorted set | hashes of the identity's sessions, scored by their deadline (ms) |
//! | `mcp-session:global` | sorted set | hashes of all sessions, scored by a lower bound of their expiry (ms): the expiry when the score was written |
//!
//! `<hash>` is the first half (128 bits, 32 hex digits) of SHA-256 over a
//! domain tag and the session id; the value keeps the second half and every
//! read and script compares it, so a session is found only by the id whose
//! whole 256-bit hash matches. **No whole session id is ever sent to Redis**:
//! not in a key name, an index member, a value or a script argument, so
//! `MONITOR`, `SLOWLOG`, keyspace notifications, `ZRANGE` of an index and
//! dumps show no bearer secret. The hash is unkeyed, so replicas need no
//! shared secret; a minted id (256 random bits) cannot be found from it.
//! Sessions the store ends by itself (evictions, [`SessionStore::delete_all_of`])
//! are therefore reported by [digest](crate::SessionId::digest) only
//! ([`RemovedSession`]), read from their values.
//!
//! Each add to an index extends its TTL to at least the new session's
//! remaining lifetime (never shortening it), so an index never expires while
//! it holds a live session.
//!
//! Every command and script touches exactly one key, so the store works on a
//! Redis Cluster without hash tags. Put a hash tag in the prefix (for example
//! `{mcp}:`) only if you want all keys on one shard.
//!
//! # Value format (version 2)
//!
//! A compact text record, readable by the server-side scripts without
//! parsing the variable part:
//!
//! ```text
//! v2 <last_access:16> <created_at:16> <deadline:16> <idle_ms:16> <check:32> <digest:16>\n<len>:<owner><len>:<name><count>:(<len>:<role>)*
//! ```
//!
//! The four numbers are zero-padded decimal milliseconds (UTC epoch for the
//! timestamps) at fixed offsets, clamped to 2^53 − 1 so that Lua's doubles
//! hold them exactly; `check` is the second half of the id's hash and
//! `digest` the id's [`SessionId::digest`](crate::SessionId::digest), both
//! in hex; strings are length-prefixed (byte lengths), so names
//! and roles may contain any character. The leading `v2` is the version
//! marker.
//!
//! **Rolling upgrades.** Every later version (`v3` … `v9`) must keep the
//! version-2 header fields where they are and only add: header fields after
//! `digest` (space-separated, before the newline), body fields after the
//! roles. Readers (the Rust decoder and the scripts) accept any such
//! version and ignore what they do not know, so during a rolling upgrade a
//! replica not yet upgraded keeps serving the sessions newer ones wrote
//! (an `update` it makes writes version 2, dropping the newer fields).
//! A value that follows no such format (or version 1, whose key named the
//! whole id and is never looked up any more) is treated as not found and
//! logged with the `tracing` feature — never a panic.
//!
//! # Commands per call
//!
//! - [`touch`](SessionStore::touch) (the per-request hot path): **one**
//!   `EVALSHA` (with `EVAL` fallback after a script cache flush). The script
//!   reads the value, checks the version marker, the owner and the logical
//!   expiry `min(last_access + idle, deadline)` against the caller's `now`;
//!   if all pass it writes the new last access in place (`SETRANGE`) and sets
//!   `PEXPIRE` to `min(idle, deadline − now)` plus a 1 s grace, then returns the value.
//!   Otherwise it returns nil and changes nothing.
//! - [`get`](SessionStore::get): `GET`, then decode and check expiry.
//! - [`update`](SessionStore::update): one script that writes with
//!   `SET … XX PX` only if the stored session is still live at `now`, so an
//!   update never brings back a deleted or expired session.
//! - [`delete`](SessionStore::delete): one script that deletes the value if
//!   its check hash is the id's and returns it, then best-effort `ZREM`
//!   from the identity's and the global index.
//! - [`create`](SessionStore::create): see below.
//!
//! # Creating, caps, and what is atomic
//!
//! 1. `SET s:<hash> <value> NX PX <ms>`: atomic; an existing id is never
//!    overwritten ([`StoreError::AlreadyExists`]). The TTL is computed from
//!    the session's own timestamps (`expires_at − last_access`), never from
//!    Redis' clock.
//! 2. A script on the identity's index (one key, so atomic) drops members
//!    whose deadline has passed and adds the new id if the identity is
//!    below [`Limits::max_sessions_per_identity`]. At the cap it reports the
//!    members instead, earliest deadline first (at most 1024: all of them
//!    for caps up to 1024); the store reads their sessions (`GET`, 64 in
//!    flight at a time, stopping once enough are found gone) and runs the
//!    script again with the ones that are gone or expired (a value it cannot
//!    decode counts as live). That run removes them, then applies the
//!    policy: [`IdentityLimitPolicy::Reject`] refuses,
//!    [`IdentityLimitPolicy::EvictOldest`] pops the members with the
//!    earliest deadlines (the oldest sessions) and adds the new one, all in
//!    one step. The evicted sessions are then deleted (`GETDEL`, Redis ≥
//!    6.2 or any Valkey: their values give the digests to report).
//! 3. The same script on the global index enforces [`Limits::max_sessions`]
//!    with the reject policy, but there a score is a lower bound of the
//!    session's expiry, not its deadline: its expiry when the score was
//!    written (`touch` never writes the index, so a used session's real
//!    expiry is later). Nothing is ever dropped by score. Below the cap the
//!    new id is added, scored by its expiry. At the cap the script reports
//!    up to 64 members whose score has passed (the only ones that may have
//!    expired); the store reads their sessions, and the next run removes the
//!    gone or expired ones and re-scores the live ones with their current
//!    expiry (`ZADD XX`; one whose value cannot be decoded counts as live
//!    and is scored by when Redis drops it), then adds the new id if there
//!    is room now, or reports the next 64. After at most 16 such rounds
//!    (1024 sessions read) a last run applies what the 16th found and
//!    refuses if the index is still full. (The identity goes first so that an eviction can make room
//!    globally too; an identity refusal thus never takes a global slot.)
//! 4. A refusal in step 2 or 3 deletes the session written in step 1 and its
//!    index entry.
//! 5. After a global add, `EXISTS s:<hash>`: if a concurrent create evicted
//!    the new session (or a `delete` removed it) between steps 2 and 3, its
//!    clean-up of the global index ran before the id got there, so the id
//!    is removed from both indexes now (by a script that removes it only if
//!    it still has the score this create wrote, so an adopted id created
//!    again meanwhile keeps its entries).
//!
//! In steps 2 and 3 the script applies each removal or re-score only if the
//! member's score is still the one the store read, so nothing a concurrent
//! create changed meanwhile (for example an adopted id created again) is
//! touched. Each cap is thus enforced atomically on its own index:
//! concurrent creates on any number of replicas never put more ids into an
//! index than its cap, and every live session is in its indexes (it is
//! added before `create` returns and removed only once it is gone or
//! expired). The steps are *not* one transaction (they live on different
//! keys, hence possibly on different Cluster shards): for the moment between
//! steps 1 and 4 a new session exists before it is counted, and evicted
//! sessions are deleted just after the new one is counted.
//!
//! **A create cut off part way is undone.** The steps run in a task of
//! their own, so a caller that times out or goes away (its future dropped,
//! for example by a client disconnect) never stops them half way. A create
//! that fails after step 1, or that succeeds when no caller is waiting any
//! more, is undone: the session key is deleted if it still holds that
//! create's session (same id hash and creation time), then its index
//! entries if they still carry its scores. The undo runs on the same
//! connection after the steps (so after any step command still in flight)
//! and is retried for about 4 s. Left behind only if Redis stays
//! unreachable all that time, or the process dies: a session no caller
//! learnt of, which expires with its TTL, and index entries the cap checks
//! drop once they find the session gone. (Sessions a cut-off create had
//! already evicted stay evicted, unreported.)
//!
//! **Trade-off of the global cap:** one sorted set holds every session id
//! (about 100 bytes per session) and every create touches it, so it is a
//! single hot key on one Cluster shard. Below the cap a create costs one
//! script run on it. A session that ended (by idling, or by a `delete` whose
//! index clean-up failed) holds its slot until its score passes, at most one
//! idle timeout after the score was written, and then until the next create
//! at the cap checks it. A live session checked gets its current expiry as
//! its score, so it is read at most once per idle period however many
//! creates arrive, and a flood of refused creates at a cap full of live
//! sessions costs one script run each. If Redis' own `maxmemory` is the bound you
//! want, turn the global index off with
//! [`RedisStoreConfig::global_cap`]`(false)`; [`Limits::max_sessions`] is
//! then not enforced by this store.
//!
//! **Limits of the checks**, both bounding the work of one `create`:
//!
//! - A per-identity cap above 1024: only the 1024 members with the earliest
//!   deadlines are checked, so sessions of that identity that idled out
//!   behind 1024 or more live, older ones keep their slots until their
//!   deadline; meanwhile [`IdentityLimitPolicy::Reject`] refuses and
//!   [`IdentityLimitPolicy::EvictOldest`] evicts the oldest live session
//!   although there would be room. Up to 1024 every member is checked.
//! - The global cap: when more than 1024 members' scores have passed while
//!   their sessions stayed in use, one create may read 1024 live sessions
//!   and refuse. The re-scores it made are kept, so the next creates go on
//!   where it stopped: such a refusal is transient, and the backlog shrinks
//!   by up to 1024 sessions per create.
//!
//! # Replica notices
//!
//! [`SessionStore::publish`] / [`SessionStore::subscribe`] carry
//! [`ReplicaNotice`]s (role invalidations) between replicas over Redis
//! pub/sub, on the channel `<prefix>notices`. Each store subscribes on the
//! first reachable URL it was given (one extra connection, opened when a
//! [`SessionManager`](crate::SessionManager) with a
//! [`RoleSource`](crate::roles::RoleSource) is built over it) and
//! acknowledges every notice it applies. `publish` returns `Ok` once every
//! replica its `PUBLISH` reached has acknowledged: the next request
//! anywhere sees the change. Otherwise it fails within the command timeout,
//! and a replica that missed the notice keeps what it cached at most
//! [`Config::roles_max_age`](crate::Config::roles_max_age). A replica whose
//! subscription drops (connection lost, or a health-check `PING` every 2 s
//! unanswered within the command timeout) stops using its cache until it is
//! back, then drops it. Stores built from a connection you configured
//! ([`RedisStore::from_connection_manager`]) have no subscription unless
//! [`RedisStore::with_notices_from`] gives them one.
//!
//! # Failures
//!
//! Every store call is bounded by [`RedisStoreConfig::command_timeout`]
//! (default 500 ms): past it the call fails with [`StoreError::Timeout`];
//! connection and server errors become [`StoreError::Unavailable`]. The
//! underlying connections use the same timeout for connecting and for each
//! response, and retry connecting only briefly, so a Redis that is down or
//! slow never makes a call hang; when it comes back, the same store
//! reconnects on the next calls, no restart needed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, RedisError, RedisFuture, Script, Value};
use tokio::time::Instant;

use self::notices::Notices;
use super::{CreateOutcome, NoticeListener, RemovedSession, ReplicaNotice, SessionStore};

mod create_guard;
#[cfg(feature = "rmcp")] // only the rmcp session-state store keeps such keys
mod digest_keys;
mod hashed_id;
mod notices;
use self::hashed_id::HashedId;
use crate::log::log_warn;
use crate::{
    CapacityScope, Identity, IdentityLimitPolicy, Limits, Roles, Session, SessionId, StoreError,
    Timestamp,
};

/// Default key prefix of a [`RedisStore`].
pub const DEFAULT_KEY_PREFIX: &str = "mcp-session:";
/// Default bound on every [`RedisStore`] call: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on establishing the first connection: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most members of a full per-identity index that `create` checks for
/// sessions that are already gone before refusing or evicting (the ones with
/// the earliest deadlines).
const IDENTITY_CHECK_MAX: usize = 1024;

/// How many members of the full global index whose recorded expiry has
/// passed one round of `create` checks.
const GLOBAL_BATCH: usize = 64;

/// Most rounds of [`GLOBAL_BATCH`] checks one `create` runs before refusing.
const GLOBAL_ROUNDS: usize = 16;

/// How many `GET`s `create` has in flight at once while checking members.
const CHECK_CHUNK: usize = 64;

/// When a live member of the global index whose value cannot be decoded and
/// has no TTL is checked again (ms).
const RECHECK_UNKNOWN_MS: u64 = 60_000;

/// Largest integer a Lua (double) number holds exactly; stored numbers are
/// clamped to it.
const MAX_SAFE: u64 = (1 << 53) - 1;

// ----------------------------------------------------------------------------
// Configuration

/// Settings of a [`RedisStore`]: key prefix, timeouts, global cap.
///
/// ```
/// use mcp_session::store::redis::RedisStoreConfig;
/// use std::time::Duration;
///
/// let config = RedisStoreConfig::default()
///     .key_prefix("myapp:sessions:")
///     .command_timeout(Duration::from_millis(250));
/// assert_eq!(config.key_prefix, "myapp:sessions:");
/// assert_eq!(config.command_timeout, Duration::from_millis(250));
/// assert!(config.global_cap);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// Prepended to every key. Default [`DEFAULT_KEY_PREFIX`] (`mcp-session:`).
    pub key_prefix: String,
    /// Bound on every store call, from start to answer (several commands for
    /// `create`). Also used as the connect and response timeout of the
    /// underlying connections. Default [`DEFAULT_COMMAND_TIMEOUT`] (500 ms).
    pub command_timeout: Duration,
    /// Bound on establishing the connection in [`RedisStore::connect`] and
    /// [`RedisStore::connect_cluster`]. Default [`DEFAULT_CONNECT_TIMEOUT`] (5 s).
    pub connect_timeout: Duration,
    /// Whether to keep the global index that enforces
    /// [`Limits::max_sessions`] (see the [module docs](self) for the
    /// trade-off). Default `true`.
    pub global_cap: bool,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        RedisStoreConfig {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            global_cap: true,
        }
    }
}

impl RedisStoreConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the key prefix (give each application sharing a Redis its own).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the bound on every store call.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the bound on establishing the connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Turns the global index (and with it [`Limits::max_sessions`]) on or off.
    pub fn global_cap(mut self, enabled: bool) -> Self {
        self.global_cap = enabled;
        self
    }
}

// ----------------------------------------------------------------------------
// Connections

#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

// ----------------------------------------------------------------------------
// The store

/// A [`SessionStore`] in Redis or Valkey, standalone or Cluster, shared by any
/// number of server replicas. See the [module docs](self) for the data
/// layout, the commands each call issues and what is atomic.
///
/// Cloning is cheap and shares the connection.
///
/// ```no_run
/// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
/// use mcp_session::{Config, SessionManager};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Standalone (fails fast if Redis cannot be reached):
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
///
/// // Cluster, with a custom prefix and timeout:
/// let config = RedisStoreConfig::default()
///     .key_prefix("myapp:")
///     .command_timeout(Duration::from_millis(200));
/// let cluster = RedisStore::connect_cluster_with_config(
///     ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
///     config,
/// )
/// .await?;
///
/// let manager = SessionManager::new(store, Config::default());
/// # let _ = (manager, cluster);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisStoreConfig,
    global_key: String,
    notices: Notices,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.conn {
            Conn::Standalone(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("kind", &kind)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl RedisStore {
    /// Connects to a standalone Redis/Valkey server with the default
    /// [`RedisStoreConfig`].
    ///
    /// Fails fast — with [`StoreError::Unavailable`] or
    /// [`StoreError::Timeout`] — if the server cannot be reached, so that a
    /// misconfigured deployment does not start. Once connected, the store
    /// reconnects by itself whenever the connection is lost.
    ///
    /// `url` is a redis-rs connection URL: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` needs a TLS feature of the `redis` crate.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), mcp_session::StoreError> {
    /// let store = mcp_session::store::redis::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_config(url, RedisStoreConfig::default()).await
    }

    /// [`RedisStore::connect`] with explicit settings.
    ///
    /// ```no_run
    /// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
    /// # async fn run() -> Result<(), mcp_session::StoreError> {
    /// let config = RedisStoreConfig::default().key_prefix("app1:");
    /// let store = RedisStore::connect_with_config("redis://127.0.0.1:6379", config).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_with_config(
        url: &str,
        config: RedisStoreConfig,
    ) -> Result<Self, StoreError> {
        let client =
            ::redis::Client::open(url).map_err(|e| store_error(e, config.command_timeout))?;
        let timeout = config.command_timeout;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Retry connecting briefly: while Redis is down every call fails
            // fast, and each later call starts a fresh attempt, so recovery
            // follows within one call of Redis coming back.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(timeout);
        let connect = ConnectionManager::new_with_config(client, manager_config);
        let manager = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout(config.connect_timeout))?
            .map_err(|e| store_error(e, config.command_timeout))?;
        let store = Self::from_conn(Conn::Standalone(manager), config, vec![url.to_owned()]);
        store.preload_scripts().await?;
        Ok(store)
    }

    /// Connects to a Redis Cluster through any of its nodes, with the default
    /// [`RedisStoreConfig`]. Fails fast if the cluster cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), mcp_session::StoreError> {
    /// let store = mcp_session::store::redis::RedisStore::connect_cluster([
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_cluster<I, U>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        Self::connect_cluster_with_config(urls, RedisStoreConfig::default()).await
    }

    /// [`RedisStore::connect_cluster`] with explicit settings.
    ///
    /// ```no_run
    /// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
    /// # async fn run() -> Result<(), mcp_session::StoreError> {
    /// let config = RedisStoreConfig::default().key_prefix("app1:");
    /// let store = RedisStore::connect_cluster_with_config(["redis://10.0.0.1:6379"], config).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_cluster_with_config<I, U>(
        urls: I,
        config: RedisStoreConfig,
    ) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        let timeout = config.command_timeout;
        let client = ClusterClient::builder(urls.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| store_error(e, config.command_timeout))?;
        let connect = client.get_async_connection();
        let conn = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout(config.connect_timeout))?
            .map_err(|e| store_error(e, config.command_timeout))?;
        let store = Self::from_conn(Conn::Cluster(conn), config, urls);
        store.preload_scripts().await?;
        Ok(store)
    }

    /// A store over a [`ConnectionManager`] you configured yourself (its
    /// timeouts and retries are then yours to choose; keep them below
    /// [`RedisStoreConfig::command_timeout`] so that nothing waits for a
    /// reconnect past it).
    ///
    /// ```no_run
    /// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = redis::aio::ConnectionManager::new(client).await?;
    /// let store = RedisStore::from_connection_manager(manager, RedisStoreConfig::default());
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// Such a store has no [notice channel](ReplicaNotice) (it has no URL
    /// to subscribe with): role invalidations then reach other replicas only
    /// through [`Config::roles_max_age`](crate::Config::roles_max_age). Use
    /// [`RedisStore::with_notices_from`] to give it one.
    pub fn from_connection_manager(manager: ConnectionManager, config: RedisStoreConfig) -> Self {
        Self::from_conn(Conn::Standalone(manager), config, Vec::new())
    }

    /// A store over a [`ClusterConnection`] you configured yourself.
    ///
    /// ```no_run
    /// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::new(["redis://10.0.0.1:6379"])?;
    /// let conn = client.get_async_connection().await?;
    /// let store = RedisStore::from_cluster_connection(conn, RedisStoreConfig::default());
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// Like [`RedisStore::from_connection_manager`], it has no notice
    /// channel unless [`RedisStore::with_notices_from`] gives it one.
    pub fn from_cluster_connection(conn: ClusterConnection, config: RedisStoreConfig) -> Self {
        Self::from_conn(Conn::Cluster(conn), config, Vec::new())
    }

    /// The same store, with its [notice channel](ReplicaNotice) subscribed
    /// through these URLs (tried in turn; for a Cluster, any of its nodes).
    /// Call it before any manager is built over the store.
    pub fn with_notices_from<I, U>(self, urls: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let urls = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        let config = self.inner.config.clone();
        Self::from_conn(self.conn, config, urls)
    }

    fn from_conn(conn: Conn, config: RedisStoreConfig, notice_urls: Vec<String>) -> Self {
        let global_key = format!("{}global", config.key_prefix);
        let notices = Notices::new(&config.key_prefix, notice_urls, config.command_timeout);
        RedisStore {
            conn,
            inner: Arc::new(Inner {
                config,
                global_key,
                notices,
            }),
        }
    }

    /// The store's settings.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.inner.config
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Sends `PING` (to one node), within the command timeout: a readiness
    /// check for health endpoints.
    ///
    /// ```no_run
    /// # async fn run(store: mcp_session::store::redis::RedisStore) {
    /// if store.ping().await.is_err() {
    ///     // report "not ready"
    /// }
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(async move { ::redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await?
            .map_err(|e| self.fail(e))
    }

    fn fail(&self, e: RedisError) -> StoreError {
        store_error(e, self.inner.config.command_timeout)
    }

    /// The key of a session, by its [`HashedId::member`].
    fn session_key(&self, member: &str) -> String {
        let prefix = &self.inner.config.key_prefix;
        let mut key = String::with_capacity(prefix.len() + 2 + member.len());
        key.push_str(prefix);
        key.push_str("s:");
        key.push_str(member);
        key
    }

    /// The key of an identity's index.
    fn identity_key(&self, identity_id: &str) -> String {
        format!("{}i:{}", self.inner.config.key_prefix, identity_id)
    }

    /// Runs `fut` within the command timeout.
    async fn bounded<T>(&self, fut: impl Future<Output = T>) -> Result<T, StoreError> {
        let timeout = self.inner.config.command_timeout;
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| StoreError::Timeout(timeout))
    }

    /// Loads the scripts into the script cache now, so that the first calls
    /// send only `EVALSHA` (after a server restart redis-rs falls back to
    /// `EVAL`-style loading by itself).
    async fn preload_scripts(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(async move {
            for script in [
                &*TOUCH,
                &*UPDATE,
                &*DELETE,
                &*ADD_TO_INDEX,
                &*FORGET,
                &*create_guard::UNDO,
            ] {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(())
        })
        .await?
        .map_err(|e| self.fail(e))
    }

    async fn get_now(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let hashed = HashedId::of(id);
        let key = self.session_key(&hashed.member);
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .bounded(::redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(raw
            .and_then(|raw| decode_for(id, &hashed, &raw))
            .filter(|s| !s.is_expired(now)))
    }

    async fn create_now(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let now = session.last_access();
        let hashed = HashedId::of(session.id());
        let id = &hashed.member;
        let key = self.session_key(id);
        let value = encode(session, &hashed);
        let ttl = ttl_millis(session.expires_at(), now);
        let created: Option<()> = ::redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        if created.is_none() {
            return Err(StoreError::AlreadyExists);
        }
        let deadline_score = clamp(session.deadline().as_millis());
        let index_ttl = ttl_millis(session.deadline(), now);

        // Per-identity cap.
        let identity_key = self.identity_key(session.identity_id());
        let policy = match limits.per_identity_policy {
            IdentityLimitPolicy::Reject => Mode::Reject,
            IdentityLimitPolicy::EvictOldest => Mode::Evict,
        };
        let identity_index = Index {
            key: &identity_key,
            scoring: Scoring::Deadline,
            cap: u64::from(limits.max_sessions_per_identity),
            at_cap: policy,
        };
        let evicted = match self
            .add_to_index(
                &mut conn,
                &identity_index,
                id,
                deadline_score,
                index_ttl,
                now,
            )
            .await?
        {
            Some(evicted) => evicted,
            None => {
                let _: Result<(), _> = conn.del(&key).await;
                return Err(StoreError::AtCapacity(CapacityScope::Identity));
            }
        };
        let mut outcome = CreateOutcome::default();
        for victim in evicted {
            let removed = conn
                .getdel(&self.session_key(&victim))
                .await
                .map_err(|e| self.fail(e))?;
            if self.inner.config.global_cap {
                conn.zrem(&self.inner.global_key, &victim)
                    .await
                    .map_err(|e| self.fail(e))?;
            }
            if let Some(removed) = removed.as_deref().and_then(removed_session) {
                outcome.evicted.push(removed);
            }
        }

        // Global cap.
        if self.inner.config.global_cap {
            let global_index = Index {
                key: &self.inner.global_key,
                scoring: Scoring::Expiry,
                cap: limits.max_sessions,
                at_cap: Mode::Reject,
            };
            let expiry_score = clamp(session.expires_at().as_millis());
            let added = self
                .add_to_index(&mut conn, &global_index, id, expiry_score, index_ttl, now)
                .await?;
            if added.is_none() {
                let _: Result<(), _> = conn.del(&key).await;
                let _: Result<(), _> = conn.zrem(&identity_key, id).await;
                return Err(StoreError::AtCapacity(CapacityScope::Global));
            }
            // A concurrent create may have evicted this session (or a
            // delete removed it) between the two index steps, cleaning the
            // global index before the id got there. Catch that now, so the
            // gone session does not hold a global slot until a check finds
            // it (best effort, like the clean-up in `delete`). Only entries
            // still carrying this create's scores are removed: an adopted id
            // created again meanwhile keeps its own.
            if let Ok(0) = conn.exists(&key).await {
                let _ = conn.forget(global_index.key, id, expiry_score).await;
                let _ = conn.forget(&identity_key, id, deadline_score).await;
            }
        }
        Ok(outcome)
    }

    /// Adds `id` (with `score`) to `index` unless it is full of live
    /// sessions. `Some(evicted)` if added, `None` if refused.
    ///
    /// Each call of the index script applies what the previous round found
    /// out and either adds the id or reports members to check; the last call
    /// applies `index.at_cap` instead of reporting.
    async fn add_to_index(
        &self,
        conn: &mut Conn,
        index: &Index<'_>,
        id: &str,
        score: u64,
        index_ttl: u64,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (rounds, batch) = match index.scoring {
            Scoring::Deadline => (1, IDENTITY_CHECK_MAX),
            Scoring::Expiry => (GLOBAL_ROUNDS, GLOBAL_BATCH),
        };
        let mut findings: Vec<Finding> = Vec::new();
        let mut round = 0;
        loop {
            let last = round == rounds;
            let mode = if last { index.at_cap } else { Mode::Check };
            let mut invocation = ADD_TO_INDEX.prepare_invoke();
            invocation
                .key(index.key)
                .arg(clamp(now.as_millis()))
                .arg(id)
                .arg(score)
                .arg(clamp(index.cap))
                .arg(mode.as_str())
                .arg(index.scoring.as_str())
                .arg(batch)
                .arg(index_ttl);
            for finding in &findings {
                invocation.arg(&finding.member).arg(&finding.seen);
                match finding.rescore {
                    Some(score) => invocation.arg(score),
                    None => invocation.arg(""),
                };
            }
            let reply: Vec<Value> = invocation
                .invoke_async(&mut conn.clone())
                .await
                .map_err(|e| self.fail(e))?;
            match index_reply(reply).map_err(|e| self.fail(e))? {
                IndexReply::Added(evicted) => return Ok(Some(evicted)),
                IndexReply::Full { .. } if last => return Ok(None),
                IndexReply::Full { size, candidates } => {
                    if candidates.is_empty() {
                        if matches!(index.at_cap, Mode::Reject) {
                            return Ok(None);
                        }
                        // Nothing to check: let the policy decide.
                        findings.clear();
                        round = rounds;
                        continue;
                    }
                    // Members to free for the new one to fit.
                    let needed = size.saturating_sub(index.cap).saturating_add(1);
                    findings = self
                        .check_members(conn, index.scoring, candidates, now, needed)
                        .await?;
                    round += 1;
                }
            }
        }
    }

    /// Reads the sessions of `candidates` (members of a full index with the
    /// scores seen) and returns what the index script must change: gone or
    /// expired sessions are removed; in an expiry-scored index, live ones are
    /// re-scored with their current expiry. A value that cannot be decoded
    /// counts as live (for example written by a newer release): better to
    /// refuse a create than to let a cap be exceeded.
    ///
    /// Deadline scoring stops early once `needed` gone sessions are found.
    async fn check_members(
        &self,
        conn: &Conn,
        scoring: Scoring,
        candidates: Vec<(String, String)>,
        now: Timestamp,
        needed: u64,
    ) -> Result<Vec<Finding>, StoreError> {
        let mut findings = Vec::new();
        let mut gone = 0u64;
        let mut candidates = candidates.into_iter().peekable();
        while candidates.peek().is_some() {
            let chunk: Vec<(String, String)> = candidates.by_ref().take(CHECK_CHUNK).collect();
            let reads = chunk.iter().map(|(member, _)| {
                let mut conn = conn.clone();
                let key = self.session_key(member);
                async move { conn.get(&key).await }
            });
            let values = join_all(reads.collect()).await;
            for ((member, seen), value) in chunk.into_iter().zip(values) {
                let value = value.map_err(|e| self.fail(e))?;
                let rescore = match value.as_deref().map(decode) {
                    None => None,
                    Some(Ok(parts)) if now < parts.expires_at() => {
                        Some(clamp(parts.expires_at().as_millis()))
                    }
                    Some(Ok(_)) => None,
                    Some(Err(_)) => match scoring {
                        Scoring::Deadline => continue,
                        Scoring::Expiry => {
                            // Live until Redis drops it: check it again then.
                            let ttl = conn
                                .clone()
                                .pttl(&self.session_key(&member))
                                .await
                                .map_err(|e| self.fail(e))?;
                            match u64::try_from(ttl) {
                                Ok(ttl) => Some(clamp(now.as_millis().saturating_add(ttl))),
                                // -1: no TTL (not written by this store).
                                Err(_) if ttl == -1 => {
                                    Some(clamp(now.as_millis().saturating_add(RECHECK_UNKNOWN_MS)))
                                }
                                // -2: gone since the GET.
                                Err(_) => None,
                            }
                        }
                    },
                };
                match (rescore, scoring) {
                    // Deadline scores stay: they order the oldest first.
                    (Some(_), Scoring::Deadline) => {}
                    (rescore, _) => {
                        gone += u64::from(rescore.is_none());
                        findings.push(Finding {
                            member,
                            seen,
                            rescore,
                        });
                    }
                }
            }
            if matches!(scoring, Scoring::Deadline) && gone >= needed {
                break;
            }
        }
        Ok(findings)
    }

    async fn update_now(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(session.id());
        let key = self.session_key(&hashed.member);
        let value = encode(session, &hashed);
        let ttl = ttl_millis(session.expires_at(), now);
        let owner = session.identity_id();
        let fut = async move {
            UPDATE
                .key(&key)
                .arg(&value)
                .arg(clamp(now.as_millis()))
                .arg(ttl)
                .arg(owner)
                .arg(&hashed.check)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        let updated = self.bounded(fut).await?.map_err(|e| self.fail(e))?;
        Ok(updated == 1)
    }

    async fn delete_now(&self, id: &SessionId, deadline: Instant) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(id);
        let member = &hashed.member;
        let key = self.session_key(member);
        let timeout = self.inner.config.command_timeout;
        let mut invocation = DELETE.prepare_invoke();
        invocation.key(&key).arg(&hashed.check);
        let raw: Option<Vec<u8>> =
            tokio::time::timeout_at(deadline, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|e| self.fail(e))?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        // Deleted. An undecodable value names no owner: its index entries
        // go the way of any stale member (below).
        let Some(session) = decode_for(id, &hashed, &raw) else {
            return Ok(true);
        };
        // Index clean-up is best effort: a stale member is dropped by a
        // create that checks it at the cap, from an identity's index once
        // its deadline passes, or with its index once every deadline in it
        // has passed.
        let cleanup = async {
            let owner = self.identity_key(session.identity_id());
            let _: Result<(), _> = conn.zrem(&owner, member).await;
            if self.inner.config.global_cap {
                let _: Result<(), _> = conn.zrem(&self.inner.global_key, member).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, cleanup).await;
        Ok(true)
    }
}

/// Small typed helpers over raw commands (kept private so the public API
/// does not grow redis-rs command traits).
impl Conn {
    async fn del<T: ::redis::FromRedisValue>(&mut self, key: &str) -> Result<T, RedisError> {
        ::redis::cmd("DEL").arg(key).query_async(self).await
    }

    /// `GETDEL` (Redis ≥ 6.2, any Valkey).
    async fn getdel(&mut self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        ::redis::cmd("GETDEL").arg(key).query_async(self).await
    }

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        ::redis::cmd("GET").arg(key).query_async(self).await
    }

    /// Removes `id` from the index at `index_key` if its score is `score`.
    async fn forget(&mut self, index_key: &str, id: &str, score: u64) -> Result<(), RedisError> {
        FORGET
            .key(index_key)
            .arg(id)
            .arg(score)
            .invoke_async::<i64>(self)
            .await
            .map(drop)
    }

    async fn exists(&mut self, key: &str) -> Result<i64, RedisError> {
        ::redis::cmd("EXISTS").arg(key).query_async(self).await
    }

    async fn pttl(&mut self, key: &str) -> Result<i64, RedisError> {
        ::redis::cmd("PTTL").arg(key).query_async(self).await
    }

    async fn zrem(&mut self, key: &str, member: &str) -> Result<(), RedisError> {
        ::redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async(self)
            .await
    }
}

/// A capped index, as `create` sees it.
struct Index<'a> {
    key: &'a str,
    scoring: Scoring,
    cap: u64,
    /// What the last call does at the cap: [`Mode::Reject`] or [`Mode::Evict`].
    at_cap: Mode,
}

/// What a capped index's scores are.
#[derive(Clone, Copy)]
enum Scoring {
    /// The session's deadline (never changes): members are ordered oldest
    /// first and dropped once their deadline passes. Per-identity indexes.
    Deadline,
    /// A lower bound of the session's expiry: its expiry when the score was
    /// written, raised when a check finds the session still live. The
    /// global index.
    Expiry,
}

impl Scoring {
    fn as_str(self) -> &'static str {
        match self {
            Scoring::Deadline => "deadline",
            Scoring::Expiry => "expiry",
        }
    }
}

/// What a check found out about one member of a full index.
struct Finding {
    member: String,
    /// The score the check saw (the script changes nothing if it moved).
    seen: String,
    /// The member's new score, `None` to remove it (the session is gone).
    rescore: Option<u64>,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Add if below the cap; otherwise report the members to check.
    Check,
    /// Add if below the cap; otherwise refuse.
    Reject,
    /// Add, evicting the oldest members if at the cap.
    Evict,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Check => "check",
            Mode::Reject => "reject",
            Mode::Evict => "evict",
        }
    }
}

impl SessionStore for RedisStore {
    type TouchFuture = Pin<Box<dyn Future<Output = Result<Option<Session>, StoreError>> + Send>>;

    async fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        self.create_detached(session, limits).await
    }

    fn get(
        &self,
        id: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send {
        self.get_now(id, now)
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(id);
        let key = self.session_key(&hashed.member);
        let owner = owner.to_owned();
        let id = id.clone();
        let timeout = self.inner.config.command_timeout;
        Box::pin(async move {
            let mut invocation = TOUCH.prepare_invoke();
            invocation
                .key(&key)
                .arg(&owner)
                .arg(format!("{:016}", clamp(now.as_millis())))
                .arg(&hashed.check);
            let call = invocation.invoke_async::<Value>(&mut conn);
            let reply = tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|e| store_error(e, timeout))?;
            match reply {
                Value::BulkString(raw) => Ok(decode_for(&id, &hashed, &raw)
                    // The script checked both; checking again costs nothing.
                    .filter(|s| s.identity_id() == owner && !s.is_expired(now))
                    .map(|s| s.touched(now))),
                Value::Int(0) => {
                    log_warn!(UndecodableValue; "undecodable session value in Redis for {}; treated as not found", id);
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
    }

    fn update(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.update_now(session, now)
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let deadline = Instant::now() + self.inner.config.command_timeout;
        self.delete_now(id, deadline).await
    }

    async fn delete_all_of(&self, identity_id: &str) -> Result<Vec<RemovedSession>, StoreError> {
        let mut conn = self.conn.clone();
        let index = self.identity_key(identity_id);
        let fut = async {
            let members: Vec<String> = ::redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            // One GETDEL per session (each may live on another Cluster
            // shard), pipelined on the multiplexed connection; the values
            // tell the digests to report.
            let deleted = join_all(
                members
                    .iter()
                    .map(|member| {
                        let mut conn = conn.clone();
                        let key = self.session_key(member);
                        async move { conn.getdel(&key).await }
                    })
                    .collect(),
            )
            .await;
            let mut ended = Vec::new();
            for deleted in deleted {
                if let Some(removed) = deleted?.as_deref().and_then(removed_session) {
                    ended.push(removed);
                }
            }
            // Only the members read above: a session created meanwhile
            // keeps its slot.
            if !members.is_empty() {
                ::redis::cmd("ZREM")
                    .arg(&index)
                    .arg(&members)
                    .query_async::<()>(&mut conn)
                    .await?;
                if self.inner.config.global_cap {
                    ::redis::cmd("ZREM")
                        .arg(&self.inner.global_key)
                        .arg(&members)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
            }
            Ok::<_, RedisError>(ended)
        };
        self.bounded(fut).await?.map_err(|e| self.fail(e))
    }

    /// See [Replica notices](self#replica-notices): `Ok` once every
    /// subscribed replica applied the notice.
    async fn publish(&self, notice: &ReplicaNotice) -> Result<(), StoreError> {
        let notices = &self.inner.notices;
        if notices.has_channel() {
            return notices.publish(notice).await;
        }
        // No channel of our own: send it anyway for the replicas that have
        // one, without waiting for them.
        let Some(message) = notices::best_effort(notice) else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        let mut publish = ::redis::cmd("PUBLISH");
        publish.arg(notices.channel()).arg(message);
        self.bounded(publish.query_async::<i64>(&mut conn))
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn subscribe(&self, listener: NoticeListener) -> bool {
        self.inner.notices.subscribe(listener)
    }
}

/// A reply of the index script.
enum IndexReply {
    /// The id was added; these members were evicted to make room.
    Added(Vec<String>),
    /// The index is full: `size` members, `candidates` (member, score) to
    /// check (none unless in check mode).
    Full {
        size: u64,
        candidates: Vec<(String, String)>,
    },
}

/// Parses `{1, evicted…}` or `{0, size, member, score, …}` from the index
/// script.
fn index_reply(reply: Vec<Value>) -> Result<IndexReply, RedisError> {
    let text = |item: Value| match item {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| bad_reply()),
        _ => Err(bad_reply()),
    };
    let mut items = reply.into_iter();
    match items.next() {
        Some(Value::Int(1)) => Ok(IndexReply::Added(
            items.map(text).collect::<Result<_, _>>()?,
        )),
        Some(Value::Int(0)) => {
            let size = match items.next() {
                Some(Value::Int(size)) => u64::try_from(size).map_err(|_| bad_reply())?,
                _ => return Err(bad_reply()),
            };
            let mut candidates = Vec::with_capacity(items.len() / 2);
            while let Some(member) = items.next() {
                let score = items.next().ok_or_else(bad_reply)?;
                candidates.push((text(member)?, text(score)?));
            }
            Ok(IndexReply::Full { size, candidates })
        }
        _ => Err(bad_reply()),
    }
}

/// Awaits all `futures` concurrently and returns their outputs in order.
/// On a multiplexed connection their commands are pipelined: one round trip
/// for all of them.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn bad_reply() -> RedisError {
    RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from the index script",
    ))
}

/// A redis-rs error as a [`StoreError`]: its own I/O timeouts (connect and
/// response timeouts, set to `timeout` for connections this store builds)
/// are [`StoreError::Timeout`], everything else [`StoreError::Unavailable`].
fn store_error(e: RedisError, timeout: Duration) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(timeout)
    } else {
        StoreError::Unavailable(Box::new(e))
    }
}

fn clamp(millis: u64) -> u64 {
    millis.min(MAX_SAFE)
}

/// Milliseconds from `now` to `expires_at`, at least 1 (a TTL of 0 is
/// invalid; a session already expired is refused by every read anyway).
fn ttl_millis(expires_at: Timestamp, now: Timestamp) -> u64 {
    clamp(
        expires_at
            .as_millis()
            .saturating_sub(now.as_millis())
            .saturating_add(EXPIRY_GRACE_MS),
    )
}

/// How much longer than a session's logical expiry Redis keeps its key.
/// The logical check (`min(last_access + idle, deadline)` against the
/// caller's clock, in every read and script) is what decides; the key's own
/// TTL only frees the memory. Without the grace, a session whose last
/// millisecond is near would vanish on Redis' clock while a replica whose
/// clock trails by a few milliseconds still finds it live (and the other
/// way round): with it, replicas whose clocks differ by less than a second
/// agree on every session.
const EXPIRY_GRACE_MS: u64 = 1_000;

// ----------------------------------------------------------------------------
// Scripts. Offsets below are 1-based Lua positions of the fixed header
// written by `encode`; `header_offsets_match_scripts` checks them.

/// The hot path. KEYS[1] = session key; ARGV[1] = owner, ARGV[2] = now
/// (16 zero-padded digits, written as is), ARGV[3] = the id's check hash.
/// Returns the stored value if the session is live, of this id and owned
/// by ARGV[1] (after sliding its expiry), nil if missing, expired, of
/// another id or someone else's (nothing changed), 0 if undecodable.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
{HEADER}
if string.sub(v, 72, 103) ~= ARGV[3] then return false end
local c = string.find(v, ':', body, true)
if not c then return 0 end
local n = tonumber(string.sub(v, body, c - 1))
if not n then return 0 end
if string.sub(v, c + 1, c + n) ~= ARGV[1] then return false end
local now = tonumber(ARGV[2])
local exp = math.min(last + idle, deadline)
if now >= exp then return false end
if now > last then
  redis.call('SETRANGE', KEYS[1], 3, ARGV[2])
  exp = math.min(now + idle, deadline)
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', exp - now + {EXPIRY_GRACE_MS}))
return v
"#
    ))
});

/// KEYS[1] = session key; ARGV[1] = new value, ARGV[2] = now, ARGV[3] = TTL
/// (ms), ARGV[4] = owner, ARGV[5] = the id's check hash. Writes (`SET XX
/// PX`) only if the stored session is live at now, of this id and owned by
/// ARGV[4]. Returns 1 if written, 0 otherwise.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
{HEADER}
if tonumber(ARGV[2]) >= math.min(last + idle, deadline) then return 0 end
if string.sub(v, 72, 103) ~= ARGV[5] then return 0 end
local c = string.find(v, ':', body, true)
if not c then return 0 end
local n = tonumber(string.sub(v, body, c - 1))
if not n or string.sub(v, c + 1, c + n) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[3])
return 1
"#
    ))
});

/// Reads the fixed header of the value `v` into `last`, `deadline` and
/// `idle`, and where the body starts into `body`, returning 0
/// (undecodable) unless it is a record of version 2 or a later one (which
/// may add header fields after the version-2 ones, see [`decode`]).
const HEADER: &str = r#"
local ver = tonumber(string.sub(v, 2, 2))
if string.sub(v, 1, 1) ~= 'v' or not ver or ver < 2 or string.sub(v, 3, 3) ~= ' ' then return 0 end
local nl = string.sub(v, 121, 121)
if not (nl == '\n' or (ver > 2 and nl == ' ')) then return 0 end
local body = string.find(v, '\n', 121, true)
if not body then return 0 end
body = body + 1
local last = tonumber(string.sub(v, 4, 19))
local deadline = tonumber(string.sub(v, 38, 53))
local idle = tonumber(string.sub(v, 55, 70))
if not (last and deadline and idle) then return 0 end
"#;

/// A capped index (sorted set, member = session id). KEYS[1] = index;
/// ARGV[1] = now, ARGV[2] = id, ARGV[3] = its score, ARGV[4] = cap,
/// ARGV[5] = mode (check | reject | evict), ARGV[6] = scoring (deadline |
/// expiry), ARGV[7] = how many members to report in check mode, ARGV[8] =
/// the new session's deadline − now (ms), ARGV[9..] = findings: triples
/// (member, score the caller saw, new score or '' if the session is gone).
///
/// 1. Applies the findings, each only to a member whose score is still the
///    one seen (so nothing a concurrent create or re-create changed is
///    touched): '' removes the member, a number re-scores it (`ZADD XX`).
/// 2. `deadline` scoring only: drops members whose deadline has passed
///    (an `expiry` score is a lower bound, not the expiry, so it is never
///    used to drop anything).
/// 3. Adds the id if the index is below the cap: {1}. At the cap: check →
///    {0, size, member, score, …} with the members to check (the earliest
///    deadlines, or the ones whose recorded expiry has passed); reject →
///    {0, size}; evict → pops the members with the lowest scores to make
///    room, adds the id and returns {1, popped…}.
/// 4. After an add, extends the index's TTL to at least ARGV[8], so the
///    index never expires while it holds a live session (`PTTL`, so it runs
///    on Redis 6.2).
static ADD_TO_INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local cap = tonumber(ARGV[4])
for i = 9, #ARGV, 3 do
  local score = redis.call('ZSCORE', key, ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == '' then
      redis.call('ZREM', key, ARGV[i])
    else
      redis.call('ZADD', key, 'XX', ARGV[i + 2], ARGV[i])
    end
  end
end
if ARGV[6] == 'deadline' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
end
redis.call('ZREM', key, ARGV[2])
local n = redis.call('ZCARD', key)
local out = {1}
if n >= cap then
  if ARGV[5] == 'check' then
    local batch = tonumber(ARGV[7])
    if ARGV[6] == 'deadline' then
      out = redis.call('ZRANGE', key, 0, batch - 1, 'WITHSCORES')
    else
      out = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, batch)
    end
    table.insert(out, 1, n)
    table.insert(out, 1, 0)
    return out
  elseif ARGV[5] == 'reject' then
    return {0, n}
  end
  local popped = redis.call('ZPOPMIN', key, n - math.max(cap, 1) + 1)
  for i = 1, #popped, 2 do table.insert(out, popped[i]) end
end
redis.call('ZADD', key, ARGV[3], ARGV[2])
if redis.call('PTTL', key) < tonumber(ARGV[8]) then
  redis.call('PEXPIRE', key, ARGV[8])
end
return out
"#,
    )
});

/// KEYS[1] = session key; ARGV[1] = the id's check hash. Deletes the
/// session unless it is a record (version 2 or later) of another id (whose
/// hash shares the key half); returns the value deleted, or nil.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ver = tonumber(string.sub(v, 2, 2))
if string.sub(v, 1, 1) == 'v' and ver and ver >= 2 and string.sub(v, 72, 103) ~= ARGV[1] then
  return false
end
redis.call('DEL', KEYS[1])
return v
"#,
    )
});

/// KEYS[1] = index; ARGV[1] = member, ARGV[2] = score. Removes the member
/// if it has that score; returns 1 if removed, 0 otherwise.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"#,
    )
});

// ----------------------------------------------------------------------------
// Value format

/// Length of the fixed header, including the trailing newline.
const HEADER_LEN: usize = 121;

/// Encodes a session as a version-2 record. The id is not stored, only the
/// check half of its hash and its digest (see [`HashedId`]).
fn encode(session: &Session, hashed: &HashedId) -> Vec<u8> {
    use std::io::Write;
    let identity = session.identity();
    let roles = identity.roles();
    let mut out = Vec::with_capacity(
        HEADER_LEN
            + 24
            + identity.id().len()
            + identity.name().len()
            + roles.iter().map(|r| r.as_str().len() + 4).sum::<usize>(),
    );
    let idle = u64::try_from(session.idle_timeout().as_millis()).unwrap_or(u64::MAX);
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        out,
        "v2 {:016} {:016} {:016} {:016} {} {:016x}",
        clamp(session.last_access().as_millis()),
        clamp(session.created_at().as_millis()),
        clamp(session.deadline().as_millis()),
        clamp(idle),
        hashed.check,
        hashed.digest,
    );
    let field = |s: &str, out: &mut Vec<u8>| {
        let _ = write!(out, "{}:", s.len());
        out.extend_from_slice(s.as_bytes());
    };
    field(identity.id(), &mut out);
    field(identity.name(), &mut out);
    let _ = write!(out, "{}:", roles.len());
    for role in roles.iter() {
        field(role.as_str(), &mut out);
    }
    out
}

/// Why a stored value could not be decoded.
#[derive(Debug)]
struct UndecodableValue;

impl fmt::Display for UndecodableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a version-2 session record")
    }
}

/// A decoded record, before it is joined with its id.
struct Decoded {
    /// The check half of the id's hash (32 hex digits).
    check: [u8; 32],
    /// The id's [`SessionId::digest`].
    digest: u64,
    identity: Identity,
    last_access: Timestamp,
    created_at: Timestamp,
    deadline: Timestamp,
    idle: Duration,
}

impl Decoded {
    fn expires_at(&self) -> Timestamp {
        (self.last_access + self.idle).min(self.deadline)
    }

    fn into_session(self, id: SessionId) -> Session {
        Session::from_parts(
            id,
            self.identity,
            self.created_at,
            self.last_access,
            self.idle,
            self.deadline,
        )
    }
}

/// The session `raw` holds if it is `id`'s (its check hash matches).
fn decode_for(id: &SessionId, hashed: &HashedId, raw: &[u8]) -> Option<Session> {
    match decode(raw) {
        Ok(parts) if parts.check == hashed.check.as_bytes() => Some(parts.into_session(id.clone())),
        Ok(_) => None,
        Err(e) => {
            log_warn!(e; "undecodable session value in Redis for {}; treated as not found", id);
            None
        }
    }
}

/// A session this store removed by itself, from its value (`None` if
/// undecodable: then there is no digest to report).
fn removed_session(raw: &[u8]) -> Option<RemovedSession> {
    decode(raw)
        .ok()
        .map(|parts| RemovedSession::from_digest(parts.digest))
}

/// Decodes a record of version 2, or of a later version that follows the
/// rule every later format must keep for rolling upgrades: the version-2
/// header fields stay where they are, new header fields come after them
/// (space-separated, before the newline), and new body fields after the
/// roles. A reader ignores what it does not know, so a replica not yet
/// upgraded keeps serving sessions a newer one wrote (an `update` it makes
/// writes version 2, dropping the newer fields).
fn decode(raw: &[u8]) -> Result<Decoded, UndecodableValue> {
    let version = match raw {
        [b'v', digit @ b'2'..=b'9', b' ', ..] => digit - b'0',
        _ => return Err(UndecodableValue),
    };
    if raw.len() < HEADER_LEN {
        return Err(UndecodableValue);
    }
    let body = match raw[HEADER_LEN - 1] {
        b'\n' => HEADER_LEN,
        b' ' if version > 2 => {
            let newline = raw[HEADER_LEN..]
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(UndecodableValue)?;
            HEADER_LEN + newline + 1
        }
        _ => return Err(UndecodableValue),
    };
    let number = |at: usize| -> Result<u64, UndecodableValue> {
        if at > 3 && raw[at - 1] != b' ' {
            return Err(UndecodableValue);
        }
        parse_digits(&raw[at..at + 16])
    };
    let last_access = number(3)?;
    let created_at = number(20)?;
    let deadline = number(37)?;
    let idle = number(54)?;
    if raw[70] != b' ' || raw[103] != b' ' {
        return Err(UndecodableValue);
    }
    let mut check = [0u8; 32];
    check.copy_from_slice(&raw[71..103]);
    if !check.iter().all(u8::is_ascii_hexdigit) {
        return Err(UndecodableValue);
    }
    let digest = std::str::from_utf8(&raw[104..120])
        .ok()
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or(UndecodableValue)?;

    let mut rest = &raw[body..];
    let id = take_str(&mut rest)?;
    let name = take_str(&mut rest)?;
    let count = take_len(&mut rest)?;
    let mut roles = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        roles.push(take_str(&mut rest)?);
    }
    if !rest.is_empty() && version == 2 {
        return Err(UndecodableValue);
    }
    Ok(Decoded {
        check,
        digest,
        identity: Identity::from_stored(id, name, Roles::new(roles)),
        last_access: Timestamp::from_millis(last_access),
        created_at: Timestamp::from_millis(created_at),
        deadline: Timestamp::from_millis(deadline),
        idle: Duration::from_millis(idle),
    })
}

fn parse_digits(digits: &[u8]) -> Result<u64, UndecodableValue> {
    if digits.is_empty() || digits.len() > 19 {
        return Err(UndecodableValue);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            Ok(acc * 10 + u64::from(d - b'0'))
        } else {
            Err(UndecodableValue)
        }
    })
}

/// Reads `<len>:` from the front of `rest`.
fn take_len(rest: &mut &[u8]) -> Result<usize, UndecodableValue> {
    let colon = rest
        .iter()
        .take(20)
        .position(|&b| b == b':')
        .ok_or(UndecodableValue)?;
    let len = parse_digits(&rest[..colon])?;
    *rest = &rest[colon + 1..];
    usize::try_from(len).map_err(|_| UndecodableValue)
}

/// Reads `<len>:<bytes>` from the front of `rest`.
fn take_str<'a>(rest: &mut &'a [u8]) -> Result<&'a str, UndecodableValue> {
    let len = take_len(rest)?;
    if rest.len() < len {
        return Err(UndecodableValue);
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(s).map_err(|_| UndecodableValue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(identity: Identity) -> Session {
        Session::from_parts(
            SessionId::generate(),
            identity,
            Timestamp::from_millis(1_700_000_000_000),
            Timestamp::from_millis(1_700_000_000_500),
            Duration::from_secs(1800),
            Timestamp::from_millis(1_700_086_400_000),
        )
    }

    #[test]
    fn round_trips_identity_and_times() {
        let alice = Identity::new(
            "alice:colon",
            "Alice \"A\"\n12:3",
            ["admin", "", "r:w", "ünï"],
        );
        let s = session(alice.clone());
        let hashed = HashedId::of(s.id());
        let raw = encode(&s, &hashed);
        let decoded = decode(&raw).unwrap();
        assert_eq!(decoded.digest, s.id().digest());
        assert_eq!(&decoded.check[..], hashed.check.as_bytes());
        let back = decode_for(s.id(), &hashed, &raw).unwrap();
        let other = SessionId::generate();
        assert!(decode_for(&other, &HashedId::of(&other), &raw).is_none());
        assert!(back.identity().same_as(&alice));
        assert_eq!(back.identity().roles().as_slice(), alice.roles().as_slice());
        assert_eq!(back.created_at(), s.created_at());
        assert_eq!(back.last_access(), s.last_access());
        assert_eq!(back.deadline(), s.deadline());
        assert_eq!(back.idle_timeout(), s.idle_timeout());
    }

    #[test]
    fn header_offsets_match_scripts() {
        let s = session(Identity::new("bob", "Bob", ["x"]));
        let hashed = HashedId::of(s.id());
        let raw = encode(&s, &hashed);
        let text = std::str::from_utf8(&raw).unwrap();
        // Lua's 1-based string.sub(v, a, b) is text[a-1..b].
        assert_eq!(&text[0..3], "v2 ");
        assert_eq!(&text[3..19], "0001700000000500"); // last (SETRANGE offset 3)
        assert_eq!(&text[20..36], "0001700000000000"); // created
        assert_eq!(&text[37..53], "0001700086400000"); // deadline
        assert_eq!(&text[54..70], "0000000001800000"); // idle
        assert_eq!(&text[71..103], hashed.check); // check at Lua 72..103
        assert_eq!(&text[104..120], format!("{:016x}", s.id().digest()));
        assert_eq!(&text[120..121], "\n");
        assert_eq!(&text[121..126], "3:bob"); // owner at Lua position 122
    }

    #[test]
    fn undecodable_values_are_errors_not_panics() {
        let s = session(Identity::new("a", "A", ["r"]));
        let good = encode(&s, &HashedId::of(s.id()));
        assert!(decode(&good).is_ok());
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"v2 whatever".to_vec(),
            b"{\"json\":true}".to_vec(),
            good[..HEADER_LEN].to_vec(),
            [&good[..], b"x"].concat(),
        ];
        for cut in 0..good.len() {
            cases.push(good[..cut].to_vec());
        }
        let mut bad_digit = good.clone();
        bad_digit[5] = b'x';
        cases.push(bad_digit);
        let mut huge_len = good[..HEADER_LEN].to_vec();
        huge_len.extend_from_slice(b"99999999999999999999:");
        cases.push(huge_len);
        for case in cases {
            assert!(
                decode(&case).is_err(),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn later_versions_are_read_ignoring_what_they_add() {
        let s = session(Identity::new("a", "A", ["r"]));
        let v2 = encode(&s, &HashedId::of(s.id()));
        let mut v3 = v2.clone();
        v3[1] = b'3';
        v3[HEADER_LEN - 1] = b' ';
        v3.splice(HEADER_LEN..HEADER_LEN, b"new-field 42\n".iter().copied());
        v3.extend_from_slice(b"7:more:it");
        let back = decode(&v3).unwrap();
        assert_eq!(back.identity.id(), "a");
        assert_eq!(back.deadline, s.deadline());
        // Version 2 itself stays strict, and nothing before 2 is read.
        let mut v2_extra = v2.clone();
        v2_extra.extend_from_slice(b"x");
        assert!(decode(&v2_extra).is_err());
        let mut v1 = v2.clone();
        v1[1] = b'1';
        assert!(decode(&v1).is_err());
    }

    #[test]
    fn huge_durations_clamp_instead_of_overflowing() {
        let s = Session::new(
            SessionId::generate(),
            Identity::new("a", "A", ["r"]),
            Timestamp::from_millis(5),
            Duration::MAX,
            Duration::MAX,
        );
        let back = decode(&encode(&s, &HashedId::of(s.id()))).unwrap();
        assert_eq!(back.deadline, Timestamp::from_millis(MAX_SAFE));
        assert_eq!(back.idle, Duration::from_millis(MAX_SAFE));
        assert_eq!(ttl_millis(s.expires_at(), s.last_access()), MAX_SAFE);
    }
}
