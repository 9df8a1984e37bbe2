//! Session lifetimes and caps: [`Config`] and [`Limits`].

use std::time::Duration;

/// Default idle timeout: 30 minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default absolute lifetime: 24 hours.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Default global cap on live sessions.
pub const DEFAULT_MAX_SESSIONS: u64 = 1_000_000;
/// Default cap on live sessions per identity.
pub const DEFAULT_MAX_SESSIONS_PER_IDENTITY: u32 = 64;
/// Default bound on the age of cached roles: 60 seconds.
pub const DEFAULT_ROLES_MAX_AGE: Duration = Duration::from_secs(60);
/// Default time a role lookup may take before the request fails: 5 seconds.
pub const DEFAULT_ROLES_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of identities whose roles are cached: 100,000.
pub const DEFAULT_MAX_CACHED_IDENTITIES: usize = 100_000;

/// What happens when an identity that already holds its maximum number of
/// sessions creates another.
///
/// The default, [`IdentityLimitPolicy::EvictOldest`], suits real MCP clients:
/// some open a new session per tool call and never send `DELETE`, and
/// rejecting them would lock the user out until old sessions time out. The
/// user only ever loses their *own* oldest session, never anyone else's, and
/// memory stays bounded either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IdentityLimitPolicy {
    /// Terminate the identity's oldest session to make room.
    #[default]
    EvictOldest,
    /// Refuse the new session (the layer answers `429 Too Many Requests`).
    Reject,
}

/// Caps a store enforces atomically when it creates a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Live sessions in the whole store; beyond it `create` fails with
    /// [`crate::StoreError::AtCapacity`] (the layer answers 503).
    pub max_sessions: u64,
    /// Live sessions of one identity.
    pub max_sessions_per_identity: u32,
    /// What to do when an identity is at its cap.
    pub per_identity_policy: IdentityLimitPolicy,
}

impl Limits {
    /// Sets the global cap (see [`Config::max_sessions`]).
    pub fn max_sessions(mut self, max: u64) -> Self {
        self.max_sessions = max;
        self
    }

    /// Sets the per-identity cap (see [`Config::max_sessions_per_identity`]).
    pub fn max_sessions_per_identity(mut self, max: u32) -> Self {
        self.max_sessions_per_identity = max;
        self
    }

    /// Sets what happens at the per-identity cap (see [`Config::identity_limit`]).
    pub fn identity_limit(mut self, policy: IdentityLimitPolicy) -> Self {
        self.per_identity_policy = policy;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_identity: DEFAULT_MAX_SESSIONS_PER_IDENTITY,
            per_identity_policy: IdentityLimitPolicy::EvictOldest,
        }
    }
}

/// How long sessions live and how many may exist.
///
/// ```
/// use mcp_session::{Config, IdentityLimitPolicy};
/// use std::time::Duration;
///
/// let config = Config::default()
///     .timeout(Duration::from_secs(600))
///     .max_lifetime(Duration::from_secs(8 * 3600))
///     .max_sessions(100_000)
///     .max_sessions_per_identity(16)
///     .identity_limit(IdentityLimitPolicy::Reject);
/// assert_eq!(config.timeout, Duration::from_secs(600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Idle timeout: a session unused this long expires. Default 30 minutes.
    pub timeout: Duration,
    /// Absolute lifetime cap: no session outlives `created + max_lifetime`,
    /// however often it is refreshed. Default 24 hours.
    pub max_lifetime: Duration,
    /// Session caps.
    pub limits: Limits,
    /// Oldest cached roles a request may be authorized with: a
    /// [`RoleSource`](crate::roles::RoleSource) lookup older than this is
    /// repeated. Default 60 s. (Unused with the default source,
    /// [`RolesFromIdentity`](crate::roles::RolesFromIdentity), whose roles
    /// come fresh with every request.)
    pub roles_max_age: Duration,
    /// Longest a role lookup may take; past it the request fails with `503`.
    /// Default 5 s.
    pub roles_lookup_timeout: Duration,
    /// Most identities whose roles are cached at once (bounded memory).
    /// Default 100,000.
    pub max_cached_identities: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: DEFAULT_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            limits: Limits::default(),
            roles_max_age: DEFAULT_ROLES_MAX_AGE,
            roles_lookup_timeout: DEFAULT_ROLES_LOOKUP_TIMEOUT,
            max_cached_identities: DEFAULT_MAX_CACHED_IDENTITIES,
        }
    }
}

impl Config {
    /// Sets the idle timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the absolute lifetime cap.
    pub fn max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// Sets the global cap on live sessions: beyond it a new session is
    /// refused (`503`), never made room for by evicting someone else's.
    ///
    /// This is the one global cap to set. A [`MokaStore`](crate::MokaStore)
    /// also has a capacity (its memory bound, [`MokaStore::new`](crate::MokaStore::new));
    /// the lower of the two applies, both the same way (`503`). Use
    /// [`MokaStore::default`](crate::MokaStore) (1,000,000) or pass it the
    /// same number, and size with this setting. Redis has no capacity of its
    /// own: this cap is the only one.
    pub fn max_sessions(mut self, max_sessions: u64) -> Self {
        self.limits.max_sessions = max_sessions;
        self
    }

    /// Sets the per-identity cap; what happens when it is reached stays as
    /// it is ([`Config::identity_limit`], by default evicting the
    /// identity's oldest session).
    pub fn max_sessions_per_identity(mut self, max: u32) -> Self {
        self.limits.max_sessions_per_identity = max;
        self
    }

    /// Sets what happens when an identity at its cap creates a session.
    pub fn identity_limit(mut self, policy: IdentityLimitPolicy) -> Self {
        self.limits.per_identity_policy = policy;
        self
    }

    /// Sets the oldest cached roles a request may be authorized with.
    pub fn roles_max_age(mut self, max_age: Duration) -> Self {
        self.roles_max_age = max_age;
        self
    }

    /// Sets the longest a role lookup may take.
    pub fn roles_lookup_timeout(mut self, timeout: Duration) -> Self {
        self.roles_lookup_timeout = timeout;
        self
    }

    /// Sets how many identities' roles may be cached at once.
    pub fn max_cached_identities(mut self, max: usize) -> Self {
        self.max_cached_identities = max;
        self
    }
}

/// Why a [`Config`] was refused ([`Config::validate`]): each says what to
/// change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The idle timeout is under a millisecond (stores count in
    /// milliseconds): every session would expire at once.
    ZeroTimeout,
    /// The lifetime cap is shorter than the idle timeout, so the idle
    /// timeout could never apply.
    LifetimeShorterThanTimeout {
        /// [`Config::max_lifetime`].
        max_lifetime: Duration,
        /// [`Config::timeout`].
        timeout: Duration,
    },
    /// The global cap is 0: no session could ever be created.
    ZeroMaxSessions,
    /// The per-identity cap is 0: no caller could ever hold a session.
    ZeroMaxSessionsPerIdentity,
    /// The role lookup timeout is 0: every lookup would fail.
    ZeroRolesLookupTimeout,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::ZeroTimeout => f.write_str(
                "the idle timeout (Config::timeout) is under 1 ms: every session would expire at \
                 once; set it to the time a client may stay idle, e.g. 30 minutes",
            ),
            ConfigError::LifetimeShorterThanTimeout {
                max_lifetime,
                timeout,
            } => write!(
                f,
                "the lifetime cap (Config::max_lifetime, {max_lifetime:?}) is shorter than the \
                 idle timeout (Config::timeout, {timeout:?}): raise the lifetime or lower the \
                 timeout"
            ),
            ConfigError::ZeroMaxSessions => f.write_str(
                "the global session cap (Config::max_sessions) is 0: no session could be \
                 created; set it to the most live sessions the server may hold",
            ),
            ConfigError::ZeroMaxSessionsPerIdentity => f.write_str(
                "the per-identity session cap (Config::max_sessions_per_identity) is 0: no \
                 caller could hold a session; set it to at least 1 (default 64)",
            ),
            ConfigError::ZeroRolesLookupTimeout => f.write_str(
                "the role lookup timeout (Config::roles_lookup_timeout) is 0: every lookup \
                 would time out; set it to at least a few hundred milliseconds",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks that the settings make sense together; the first problem
    /// found, in words a person can act on. [`SessionManager`] construction
    /// runs it ([`SessionManagerBuilder::try_build`] returns the error).
    ///
    /// [`SessionManager`]: crate::SessionManager
    /// [`SessionManagerBuilder::try_build`]: crate::SessionManagerBuilder::try_build
    ///
    /// ```
    /// use mcp_session::{Config, ConfigError};
    /// use std::time::Duration;
    ///
    /// assert!(Config::default().validate().is_ok());
    /// let bad = Config::default().max_sessions_per_identity(0);
    /// assert_eq!(bad.validate(), Err(ConfigError::ZeroMaxSessionsPerIdentity));
    /// let bad = Config::default().timeout(Duration::from_secs(3600)).max_lifetime(Duration::from_secs(60));
    /// assert!(bad.validate().unwrap_err().to_string().contains("raise the lifetime"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout < Duration::from_millis(1) {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.max_lifetime < self.timeout {
            return Err(ConfigError::LifetimeShorterThanTimeout {
                max_lifetime: self.max_lifetime,
                timeout: self.timeout,
            });
        }
        if self.limits.max_sessions == 0 {
            return Err(ConfigError::ZeroMaxSessions);
        }
        if self.limits.max_sessions_per_identity == 0 {
            return Err(ConfigError::ZeroMaxSessionsPerIdentity);
        }
        if self.roles_lookup_timeout.is_zero() {
            return Err(ConfigError::ZeroRolesLookupTimeout);
        }
        Ok(())
    }
}
