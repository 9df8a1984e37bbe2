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
//! | `mcp-session:s:<session id>` | string | the session (format below), with a TTL equal to its remaining life |
//! | `mcp-session:i:<identity id>` | sorted set | ids of the identity's sessions, scored by their deadline (ms) |
//! | `mcp-session:global` | sorted set | ids of all sessions, scored by their deadline (ms) |
//!
//! Every command and script touches exactly one key, so the store works on a
//! Redis Cluster without hash tags. Put a hash tag in the prefix (for example
//! `{mcp}:`) only if you want all keys on one shard.
//!
//! # Value format (version 1)
//!
//! A compact text record, readable by the server-side scripts without
//! parsing the variable part:
//!
//! ```text
//! v1 <last_access:16> <created_at:16> <deadline:16> <idle_ms:16>\n<len>:<owner><len>:<name><count>:(<len>:<role>)*
//! ```
//!
//! The four numbers are zero-padded decimal milliseconds (UTC epoch for the
//! timestamps) at fixed offsets, clamped to 2^53 − 1 so that Lua's doubles
//! hold them exactly; strings are length-prefixed (byte lengths), so names
//! and roles may contain any character. The leading `v1` is the version
//! marker: a later release that changes the format uses another marker, and
//! a replica that meets a value it cannot decode treats the session as not
//! found (and logs it with the `tracing` feature) — never a panic.
//!
//! # Commands per call
//!
//! - [`touch`](SessionStore::touch) (the per-request hot path): **one**
//!   `EVALSHA` (with `EVAL` fallback after a script cache flush). The script
//!   reads the value, checks the version marker, the owner and the logical
//!   expiry `min(last_access + idle, deadline)` against the caller's `now`;
//!   if all pass it writes the new last access in place (`SETRANGE`) and sets
//!   `PEXPIRE` to `min(idle, deadline − now)`, then returns the value.
//!   Otherwise it returns nil and changes nothing.
//! - [`get`](SessionStore::get): `GET`, then decode and check expiry.
//! - [`update`](SessionStore::update): one script that writes with
//!   `SET … XX PX` only if the stored session is still live at `now`, so an
//!   update never brings back a deleted or expired session.
//! - [`delete`](SessionStore::delete): `GETDEL` (Redis ≥ 6.2 / any Valkey),
//!   then best-effort `ZREM` from the identity's and the global index.
//! - [`create`](SessionStore::create): see below.
//!
//! # Creating, caps, and what is atomic
//!
//! 1. `SET s:<id> <value> NX PX <ms>`: atomic; an existing id is never
//!    overwritten ([`StoreError::AlreadyExists`]). The TTL is computed from
//!    the session's own timestamps (`expires_at − last_access`), never from
//!    Redis' clock.
//! 2. A script on the identity's index (one key, so atomic): drop members
//!    whose deadline has passed, and add the new id if the identity is below
//!    [`Limits::max_sessions_per_identity`]. At the cap it first reports the
//!    oldest members (at most 64); the store checks them (`GET` each) and
//!    removes the ones that are gone or idle-expired from the index (a value
//!    it cannot decode counts as live), then runs the script again,
//!    which now applies the policy: [`IdentityLimitPolicy::Reject`] refuses,
//!    [`IdentityLimitPolicy::EvictOldest`] pops the members with the oldest
//!    deadlines (the oldest sessions) and adds the new one, in one step. The
//!    evicted sessions are then `DEL`eted.
//! 3. The same two-step script on the global index enforces
//!    [`Limits::max_sessions`] with the reject policy. (The identity goes
//!    first so that an eviction can make room globally too; an identity
//!    refusal thus never takes a global slot.)
//! 4. A refusal in step 2 or 3 deletes the session written in step 1 and its
//!    index entry.
//!
//! So each cap is enforced atomically on its own index: concurrent creates
//! on any number of replicas never put more ids into an index than its cap,
//! and every live session is in its indexes (it is added before `create`
//! returns and removed only once it is gone or expired). The three steps are
//! *not* one transaction (they live on different keys, hence possibly on
//! different Cluster shards): for the moment between steps 1 and 4 a new
//! session exists before it is counted, and evicted sessions are deleted
//! just after the new one is counted. A process that dies in between leaves
//! at most one uncounted session, which expires with its TTL.
//!
//! **Trade-off of the global cap:** one sorted set holds every session id
//! (about 100 bytes per session) and every create touches it, so it is a
//! single hot key on one Cluster shard. Index scores are deadlines, so
//! sessions that ended by idling linger in the index until they are checked
//! at the cap or reach their deadline. If Redis' own `maxmemory` is the
//! bound you want, turn the global index off with
//! [`RedisStoreConfig::global_cap`]`(false)`; [`Limits::max_sessions`] is
//! then not enforced by this store.
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
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, RedisError, RedisFuture, Script, Value};
use tokio::time::Instant;

use super::{CreateOutcome, SessionStore};
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

/// How many of the oldest members of a full index `create` checks for
/// sessions that are already gone before refusing or evicting.
const CHECK_AT_CAP: usize = 64;

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
        let store = Self::from_conn(Conn::Standalone(manager), config);
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
        let client = ClusterClient::builder(urls)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| store_error(e, config.command_timeout))?;
        let connect = client.get_async_connection();
        let conn = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout(config.connect_timeout))?
            .map_err(|e| store_error(e, config.command_timeout))?;
        let store = Self::from_conn(Conn::Cluster(conn), config);
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
    pub fn from_connection_manager(manager: ConnectionManager, config: RedisStoreConfig) -> Self {
        Self::from_conn(Conn::Standalone(manager), config)
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
    pub fn from_cluster_connection(conn: ClusterConnection, config: RedisStoreConfig) -> Self {
        Self::from_conn(Conn::Cluster(conn), config)
    }

    fn from_conn(conn: Conn, config: RedisStoreConfig) -> Self {
        let global_key = format!("{}global", config.key_prefix);
        RedisStore {
            conn,
            inner: Arc::new(Inner { config, global_key }),
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

    /// The key of a session.
    fn session_key(&self, id: &str) -> String {
        let prefix = &self.inner.config.key_prefix;
        let mut key = String::with_capacity(prefix.len() + 2 + id.len());
        key.push_str(prefix);
        key.push_str("s:");
        key.push_str(id);
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
            for script in [&*TOUCH, &*UPDATE, &*ADD_TO_INDEX] {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(())
        })
        .await?
        .map_err(|e| self.fail(e))
    }

    async fn get_now(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let key = self.session_key(&id.reveal());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .bounded(::redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(raw
            .and_then(|raw| decode_logged(id, &raw))
            .filter(|s| !s.is_expired(now)))
    }

    async fn create_now(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let now = session.last_access();
        let id = session.id().reveal();
        let key = self.session_key(&id);
        let value = encode(session);
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
        let score = clamp(session.deadline().as_millis());

        // Per-identity cap.
        let identity_key = self.identity_key(session.identity_id());
        let policy = match limits.per_identity_policy {
            IdentityLimitPolicy::Reject => Mode::Reject,
            IdentityLimitPolicy::EvictOldest => Mode::Evict,
        };
        let max = u64::from(limits.max_sessions_per_identity);
        let evicted = match self
            .add_to_index(&mut conn, &identity_key, &id, score, max, now, policy)
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
            let deleted: i64 = conn
                .del(&self.session_key(&victim))
                .await
                .map_err(|e| self.fail(e))?;
            if self.inner.config.global_cap {
                conn.zrem(&self.inner.global_key, &victim)
                    .await
                    .map_err(|e| self.fail(e))?;
            }
            if deleted > 0 {
                // The index only holds ids this store wrote, so they parse.
                if let Ok(victim) = SessionId::parse_adopted(&victim) {
                    outcome.evicted.push(victim);
                }
            }
        }

        // Global cap.
        if self.inner.config.global_cap {
            let global_key = &self.inner.global_key;
            let added = self
                .add_to_index(
                    &mut conn,
                    global_key,
                    &id,
                    score,
                    limits.max_sessions,
                    now,
                    Mode::Reject,
                )
                .await?;
            if added.is_none() {
                let _: Result<(), _> = conn.del(&key).await;
                let _: Result<(), _> = conn.zrem(&identity_key, &id).await;
                return Err(StoreError::AtCapacity(CapacityScope::Global));
            }
        }
        Ok(outcome)
    }

    /// Adds `id` to the index at `index_key` unless it holds `max` members.
    /// `Some(evicted)` if added, `None` if refused.
    #[allow(clippy::too_many_arguments)]
    async fn add_to_index(
        &self,
        conn: &mut Conn,
        index_key: &str,
        id: &str,
        score: u64,
        max: u64,
        now: Timestamp,
        policy: Mode,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let run = |mode: Mode, conn: &mut Conn| {
            let mut invocation = ADD_TO_INDEX.prepare_invoke();
            invocation
                .key(index_key)
                .arg(clamp(now.as_millis()))
                .arg(id)
                .arg(score)
                .arg(clamp(max))
                .arg(mode.as_str())
                .arg(CHECK_AT_CAP);
            let mut conn = conn.clone();
            async move {
                let reply: Vec<Value> = invocation.invoke_async(&mut conn).await?;
                index_reply(reply)
            }
        };
        let (added, members) = run(Mode::Check, conn).await.map_err(|e| self.fail(e))?;
        if added == 1 {
            return Ok(Some(members));
        }
        // Full: drop members whose sessions are gone or expired, then decide.
        for member in members {
            let raw: Option<Vec<u8>> = conn
                .get(&self.session_key(&member))
                .await
                .map_err(|e| self.fail(e))?;
            let live = match raw {
                None => false,
                // Undecodable (for example written by a newer release):
                // count it, rather than let a cap be exceeded.
                Some(raw) => match decode(&raw) {
                    Ok(parts) => now < parts.expires_at(),
                    Err(_) => true,
                },
            };
            if !live {
                conn.zrem(index_key, &member)
                    .await
                    .map_err(|e| self.fail(e))?;
            }
        }
        let (added, evicted) = run(policy, conn).await.map_err(|e| self.fail(e))?;
        Ok((added == 1).then_some(evicted))
    }

    async fn update_now(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.session_key(&session.id().reveal());
        let value = encode(session);
        let ttl = ttl_millis(session.expires_at(), now);
        let fut = async move {
            UPDATE
                .key(&key)
                .arg(&value)
                .arg(clamp(now.as_millis()))
                .arg(ttl)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        let updated = self.bounded(fut).await?.map_err(|e| self.fail(e))?;
        Ok(updated == 1)
    }

    async fn delete_now(&self, id: &SessionId, deadline: Instant) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let member = id.reveal();
        let key = self.session_key(&member);
        let timeout = self.inner.config.command_timeout;
        let raw: Option<Vec<u8>> = tokio::time::timeout_at(
            deadline,
            ::redis::cmd("GETDEL").arg(&key).query_async(&mut conn),
        )
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
        .map_err(|e| self.fail(e))?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        // Index clean-up is best effort: a stale member is dropped by the
        // next create that finds its index full, or when its deadline passes.
        let cleanup = async {
            if let Some(owner) = decode_logged(id, &raw).map(|s| self.identity_key(s.identity_id()))
            {
                let _: Result<(), _> = conn.zrem(&owner, &member).await;
            }
            if self.inner.config.global_cap {
                let _: Result<(), _> = conn.zrem(&self.inner.global_key, &member).await;
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

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        ::redis::cmd("GET").arg(key).query_async(self).await
    }

    async fn zrem(&mut self, key: &str, member: &str) -> Result<(), RedisError> {
        ::redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async(self)
            .await
    }
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
        self.bounded(self.create_now(session, limits)).await?
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
        let key = self.session_key(&id.reveal());
        let owner = owner.to_owned();
        let id = id.clone();
        let timeout = self.inner.config.command_timeout;
        Box::pin(async move {
            let mut invocation = TOUCH.prepare_invoke();
            invocation
                .key(&key)
                .arg(&owner)
                .arg(format!("{:016}", clamp(now.as_millis())));
            let call = invocation.invoke_async::<Value>(&mut conn);
            let reply = tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|e| store_error(e, timeout))?;
            match reply {
                Value::BulkString(raw) => Ok(decode_logged(&id, &raw)
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
}

/// Parses `{status, member…}` from the index script.
fn index_reply(reply: Vec<Value>) -> Result<(i64, Vec<String>), RedisError> {
    let mut items = reply.into_iter();
    let status = match items.next() {
        Some(Value::Int(status)) => status,
        _ => return Err(bad_reply()),
    };
    let members = items
        .map(|item| match item {
            Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| bad_reply()),
            _ => Err(bad_reply()),
        })
        .collect::<Result<_, _>>()?;
    Ok((status, members))
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
    clamp(expires_at.as_millis().saturating_sub(now.as_millis())).max(1)
}

// ----------------------------------------------------------------------------
// Scripts. Offsets below are 1-based Lua positions of the fixed header
// written by `encode`; `header_offsets_match_scripts` checks them.

/// The hot path. KEYS[1] = session key; ARGV[1] = owner, ARGV[2] = now
/// (16 zero-padded digits, written as is). Returns the stored value if the
/// session is live and owned by ARGV[1] (after sliding its expiry), nil if
/// missing, expired or someone else's (nothing changed), 0 if undecodable.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
{HEADER}
local c = string.find(v, ':', 72, true)
if not c then return 0 end
local n = tonumber(string.sub(v, 72, c - 1))
if not n then return 0 end
if string.sub(v, c + 1, c + n) ~= ARGV[1] then return false end
local now = tonumber(ARGV[2])
local exp = math.min(last + idle, deadline)
if now >= exp then return false end
if now > last then
  redis.call('SETRANGE', KEYS[1], 3, ARGV[2])
  exp = math.min(now + idle, deadline)
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', exp - now))
return v
"#
    ))
});

/// KEYS[1] = session key; ARGV[1] = new value, ARGV[2] = now, ARGV[3] = TTL
/// (ms). Writes (`SET XX PX`) only if the stored session is live at now.
/// Returns 1 if written, 0 otherwise.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
{HEADER}
if tonumber(ARGV[2]) >= math.min(last + idle, deadline) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[3])
return 1
"#
    ))
});

/// Reads the fixed header of the value `v` into `last`, `deadline` and
/// `idle`, returning 0 (undecodable) if it is not a version-1 record.
const HEADER: &str = r#"
if string.sub(v, 1, 3) ~= 'v1 ' or string.sub(v, 71, 71) ~= '\n' then return 0 end
local last = tonumber(string.sub(v, 4, 19))
local deadline = tonumber(string.sub(v, 38, 53))
local idle = tonumber(string.sub(v, 55, 70))
if not (last and deadline and idle) then return 0 end
"#;

/// A capped index (sorted set: member = session id, score = deadline ms).
/// KEYS[1] = index; ARGV[1] = now, ARGV[2] = id, ARGV[3] = score,
/// ARGV[4] = cap, ARGV[5] = mode (check | reject | evict), ARGV[6] = how
/// many members to report in check mode.
/// Drops members past their deadline, then adds the id if below the cap.
/// At the cap: check → {0, oldest members…}; reject → {0}; evict → pops the
/// oldest members to make room, adds the id and returns {1, popped…}.
/// Below the cap: {1}. The index expires with its last deadline.
static ADD_TO_INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
redis.call('ZREM', key, ARGV[2])
local n = redis.call('ZCARD', key)
local out = {1}
if n >= cap then
  if ARGV[5] == 'check' then
    out = redis.call('ZRANGE', key, 0, tonumber(ARGV[6]) - 1)
    table.insert(out, 1, 0)
    return out
  elseif ARGV[5] == 'reject' then
    return {0}
  end
  local popped = redis.call('ZPOPMIN', key, n - math.max(cap, 1) + 1)
  for i = 1, #popped, 2 do table.insert(out, popped[i]) end
end
redis.call('ZADD', key, ARGV[3], ARGV[2])
local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, string.format('%.0f', math.max(1, tonumber(top[2]) - now)))
return out
"#,
    )
});

// ----------------------------------------------------------------------------
// Value format

const VERSION: &[u8; 3] = b"v1 ";
/// Length of the fixed header, including the trailing newline.
const HEADER_LEN: usize = 71;

/// Encodes a session as a version-1 record (the id is the key, not stored).
fn encode(session: &Session) -> Vec<u8> {
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
        "v1 {:016} {:016} {:016} {:016}",
        clamp(session.last_access().as_millis()),
        clamp(session.created_at().as_millis()),
        clamp(session.deadline().as_millis()),
        clamp(idle),
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
        f.write_str("not a version-1 session record")
    }
}

/// A decoded record, before it is joined with its id.
struct Decoded {
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

fn decode_logged(id: &SessionId, raw: &[u8]) -> Option<Session> {
    match decode(raw) {
        Ok(parts) => Some(parts.into_session(id.clone())),
        Err(e) => {
            log_warn!(e; "undecodable session value in Redis for {}; treated as not found", id);
            None
        }
    }
}

fn decode(raw: &[u8]) -> Result<Decoded, UndecodableValue> {
    if raw.len() < HEADER_LEN || &raw[..3] != VERSION || raw[HEADER_LEN - 1] != b'\n' {
        return Err(UndecodableValue);
    }
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

    let mut rest = &raw[HEADER_LEN..];
    let id = take_str(&mut rest)?;
    let name = take_str(&mut rest)?;
    let count = take_len(&mut rest)?;
    let mut roles = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        roles.push(take_str(&mut rest)?);
    }
    if !rest.is_empty() {
        return Err(UndecodableValue);
    }
    Ok(Decoded {
        identity: Identity::with_roles(id, name, Roles::new(roles)),
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
        let raw = encode(&s);
        let back = decode(&raw).unwrap().into_session(s.id().clone());
        assert!(back.identity().same_as(&alice));
        assert_eq!(back.roles().as_slice(), alice.roles().as_slice());
        assert_eq!(back.created_at(), s.created_at());
        assert_eq!(back.last_access(), s.last_access());
        assert_eq!(back.deadline(), s.deadline());
        assert_eq!(back.idle_timeout(), s.idle_timeout());
    }

    #[test]
    fn header_offsets_match_scripts() {
        let s = session(Identity::new("bob", "Bob", ["x"]));
        let raw = encode(&s);
        let text = std::str::from_utf8(&raw).unwrap();
        // Lua's 1-based string.sub(v, a, b) is text[a-1..b].
        assert_eq!(&text[0..3], "v1 ");
        assert_eq!(&text[3..19], "0001700000000500"); // last (SETRANGE offset 3)
        assert_eq!(&text[20..36], "0001700000000000"); // created
        assert_eq!(&text[37..53], "0001700086400000"); // deadline
        assert_eq!(&text[54..70], "0000000001800000"); // idle
        assert_eq!(&text[70..71], "\n");
        assert_eq!(&text[71..76], "3:bob"); // owner at Lua position 72
    }

    #[test]
    fn undecodable_values_are_errors_not_panics() {
        let good = encode(&session(Identity::new("a", "A", ["r"])));
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
    fn huge_durations_clamp_instead_of_overflowing() {
        let s = Session::new(
            SessionId::generate(),
            Identity::new("a", "A", ["r"]),
            Timestamp::from_millis(5),
            Duration::MAX,
            Duration::MAX,
        );
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.deadline, Timestamp::from_millis(MAX_SAFE));
        assert_eq!(back.idle, Duration::from_millis(MAX_SAFE));
        assert_eq!(ttl_millis(s.expires_at(), s.last_access()), MAX_SAFE);
    }
}
