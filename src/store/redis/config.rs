//! [`RedisStoreConfig`]: key prefix, timeouts, global cap.

use std::time::Duration;

#[cfg(doc)]
use super::RedisStore;
use super::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX};
#[cfg(doc)]
use crate::Limits;

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
    /// [`Limits::max_sessions`] (see the [module docs](super) for the
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
