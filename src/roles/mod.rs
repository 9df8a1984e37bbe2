//! Where a caller's roles come from, and how long they may be cached.
//!
//! The auth layer says *who* calls (an [`Identity`]); a [`RoleSource`] says
//! what that caller may do *now*: a directory, a database, an IdP. The
//! [`SessionManager`](crate::SessionManager) keeps a per-identity cache in
//! front of the source, shared by every session and sessionless request of
//! that identity, so a request costs no lookup while its entry is fresh.
//!
//! # Guarantees
//!
//! - The roles the layer hands downstream ([`Roles::of`],
//!   `rmcp::Caller`) were read from the source at most
//!   [`Config::roles_max_age`](crate::Config::roles_max_age) before the
//!   request started, in both protocol eras and both id modes. A session
//!   binds the caller's *identity*, never its roles.
//! - Single flight: concurrent requests of one identity with a cold or
//!   stale entry share one lookup.
//! - Fail closed: a lookup that fails or exceeds
//!   [`Config::roles_lookup_timeout`](crate::Config::roles_lookup_timeout)
//!   fails the request (`503` + `Retry-After`, JSON-RPC error body). Stale
//!   roles are never served in its place.
//! - [`SessionManager::invalidate_roles`](crate::SessionManager::invalidate_roles)
//!   drops an identity's entry on every replica sharing the store (at once
//!   locally; over Redis pub/sub elsewhere, see
//!   [`ReplicaNotice`](crate::store::ReplicaNotice)). While a store's
//!   notice channel is down, nothing is served from the cache.
//! - Bounded memory: at most
//!   [`Config::max_cached_identities`](crate::Config::max_cached_identities)
//!   entries; past it, entries are dropped (a dropped entry costs one lookup,
//!   never a wrong answer).
//!
//! The default source, [`RolesFromIdentity`], returns the roles the auth
//! layer put on the `Identity` of the very request (JWT claims): always
//! fresh, so nothing is cached for it.
//!
//! ```
//! use mcp_session::roles::{RoleSource, RoleLookupError};
//! use mcp_session::{Config, Identity, MokaStore, Roles, SessionManager};
//! use std::collections::HashMap;
//! use std::sync::RwLock;
//! use std::time::Duration;
//!
//! /// Roles kept in a directory (here a map; in real life a database).
//! struct Directory(RwLock<HashMap<String, Roles>>);
//!
//! impl RoleSource for Directory {
//!     async fn roles(&self, caller: &Identity) -> Result<Roles, RoleLookupError> {
//!         let map = self.0.read().map_err(|_| RoleLookupError::new("directory lock poisoned"))?;
//!         Ok(map.get(caller.id()).cloned().unwrap_or_default())
//!     }
//! }
//!
//! let directory = Directory(RwLock::new(HashMap::from([
//!     ("alice".to_string(), Roles::new(["admin"])),
//! ])));
//! let manager = SessionManager::builder(MokaStore::default())
//!     .config(Config::default().roles_max_age(Duration::from_secs(30)))
//!     .role_source(directory)
//!     .build();
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let alice = Identity::new::<&str>("alice", "Alice", []); // the token carries no roles
//! assert!(manager.roles(&alice).await.unwrap().contains("admin"));
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{Identity, Roles};

mod cache;

pub(crate) use cache::RoleCache;

/// Looks up the current roles of an authenticated caller.
///
/// Implement it over wherever roles really live. The
/// [`SessionManager`](crate::SessionManager) caches what it returns per
/// identity id for at most `roles_max_age`, runs one lookup at a time per
/// identity, and bounds each by `roles_lookup_timeout`.
pub trait RoleSource: Send + Sync + 'static {
    /// The roles `caller` holds now. An error fails the request closed
    /// (`503`); return an empty [`Roles`] for a caller with no roles.
    fn roles(
        &self,
        caller: &Identity,
    ) -> impl Future<Output = Result<Roles, RoleLookupError>> + Send;
}

/// A shared source (for example one that the admin tools of a server also
/// write to) is a source too.
impl<T: RoleSource> RoleSource for std::sync::Arc<T> {
    fn roles(
        &self,
        caller: &Identity,
    ) -> impl Future<Output = Result<Roles, RoleLookupError>> + Send {
        (**self).roles(caller)
    }
}

/// The default [`RoleSource`]: the roles on the request's own [`Identity`],
/// as the auth layer built it (for example from the token's claims). They
/// are as fresh as the credential, so the manager never caches them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RolesFromIdentity;

impl RoleSource for RolesFromIdentity {
    fn roles(
        &self,
        caller: &Identity,
    ) -> impl Future<Output = Result<Roles, RoleLookupError>> + Send {
        std::future::ready(Ok(caller.roles().clone()))
    }
}

/// A [`RoleSource`] failed: the request is refused (`503`), never served
/// with older roles.
#[derive(Debug)]
pub struct RoleLookupError(Box<dyn std::error::Error + Send + Sync>);

impl RoleLookupError {
    /// An error from any cause (a message, an I/O error, a driver's error).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RoleLookupError(cause.into())
    }
}

impl fmt::Display for RoleLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "role lookup failed: {}", self.0)
    }
}

impl std::error::Error for RoleLookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The object-safe form of [`RoleSource`] the manager holds (lookups are off
/// the hot path, so one box per lookup is fine).
pub(crate) trait DynRoleSource: Send + Sync + 'static {
    fn roles_boxed<'a>(
        &'a self,
        caller: &'a Identity,
    ) -> Pin<Box<dyn Future<Output = Result<Roles, RoleLookupError>> + Send + 'a>>;
}

impl<T: RoleSource> DynRoleSource for T {
    fn roles_boxed<'a>(
        &'a self,
        caller: &'a Identity,
    ) -> Pin<Box<dyn Future<Output = Result<Roles, RoleLookupError>> + Send + 'a>> {
        Box::pin(self.roles(caller))
    }
}

/// Why the roles of a caller could not be had: the request fails closed.
/// Concurrent requests that shared one lookup share its error.
#[derive(Clone, Debug)]
pub enum RolesUnavailable {
    /// The [`RoleSource`] failed.
    Failed(std::sync::Arc<RoleLookupError>),
    /// The lookup took longer than
    /// [`Config::roles_lookup_timeout`](crate::Config::roles_lookup_timeout).
    TimedOut(std::time::Duration),
}

impl fmt::Display for RolesUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RolesUnavailable::Failed(e) => fmt::Display::fmt(e, f),
            RolesUnavailable::TimedOut(after) => write!(f, "role lookup timed out after {after:?}"),
        }
    }
}

impl std::error::Error for RolesUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RolesUnavailable::Failed(e) => Some(&**e),
            RolesUnavailable::TimedOut(_) => None,
        }
    }
}
