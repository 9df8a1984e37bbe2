//! Connecting: standalone ([`ConnectionManager`]) or Cluster
//! ([`ClusterConnection`]) behind one type, and small typed helpers over raw
//! commands.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, RedisError, RedisFuture, Value};

use super::notices::Notices;
use super::scripts::FORGET;
use super::{Inner, RedisStore, RedisStoreConfig};
#[cfg(doc)]
use crate::store::ReplicaNotice;
use crate::StoreError;

#[derive(Clone)]
pub(super) enum Conn {
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
}

/// Small typed helpers over raw commands (kept private so the public API
/// does not grow redis-rs command traits).
impl Conn {
    pub(super) async fn del<T: ::redis::FromRedisValue>(
        &mut self,
        key: &str,
    ) -> Result<T, RedisError> {
        ::redis::cmd("DEL").arg(key).query_async(self).await
    }

    /// `GETDEL` (Redis ≥ 6.2, any Valkey).
    pub(super) async fn getdel(&mut self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        ::redis::cmd("GETDEL").arg(key).query_async(self).await
    }

    pub(super) async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        ::redis::cmd("GET").arg(key).query_async(self).await
    }

    /// Removes `id` from the index at `index_key` if its score is `score`.
    pub(super) async fn forget(
        &mut self,
        index_key: &str,
        id: &str,
        score: u64,
    ) -> Result<(), RedisError> {
        FORGET
            .key(index_key)
            .arg(id)
            .arg(score)
            .invoke_async::<i64>(self)
            .await
            .map(drop)
    }

    pub(super) async fn exists(&mut self, key: &str) -> Result<i64, RedisError> {
        ::redis::cmd("EXISTS").arg(key).query_async(self).await
    }

    pub(super) async fn pttl(&mut self, key: &str) -> Result<i64, RedisError> {
        ::redis::cmd("PTTL").arg(key).query_async(self).await
    }

    pub(super) async fn zrem(&mut self, key: &str, member: &str) -> Result<(), RedisError> {
        ::redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async(self)
            .await
    }
}

/// A redis-rs error as a [`StoreError`]: its own I/O timeouts (connect and
/// response timeouts, set to `timeout` for connections this store builds)
/// are [`StoreError::Timeout`], everything else [`StoreError::Unavailable`].
pub(super) fn store_error(e: RedisError, timeout: Duration) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(timeout)
    } else {
        StoreError::Unavailable(Box::new(e))
    }
}
