//! Identity-bound, expiring sessions for MCP (Model Context Protocol)
//! servers, as tower middleware.
//!
//! [`SessionLayer`] wraps an MCP Streamable HTTP service (an rmcp
//! `StreamableHttpService`, an axum router, a hand-written hyper service).
//! It binds each session to the authenticated caller, slides its idle expiry
//! (never past an absolute lifetime cap), and puts the [`Session`], the
//! caller's [`Identity`] and its current [`Roles`] into the request
//! extensions, so handlers and RBAC code read them without touching a store.
//! Roles come from a [`RoleSource`](roles::RoleSource) through a
//! per-identity cache with a bounded age, and can be invalidated (or every
//! session of an identity revoked) on every replica at once. Sessionless
//! (2026-07-28) traffic passes through with the caller's identity and roles;
//! [`Roles::of`] reads the roles to authorize with in both eras.
//!
//! - Domain: [`SessionId`], [`Identity`], [`Session`], [`Config`],
//!   [`SessionManager`].
//! - Roles: the [`roles`] module ([`RoleSource`](roles::RoleSource), the
//!   cache, invalidation, revocation).
//! - Stores: the [`SessionStore`] trait; [`MokaStore`] (default, bounded,
//!   in-process); `RedisStore` (feature `redis`, standalone and Cluster).
//! - Middleware: the [`layer`] module.
//! - Tool-level authorization (feature `policy`): the `policy` module,
//!   `PolicyLayer` inside the session layer, rules by role per tool,
//!   resource, prompt and method; list answers filtered per caller.
//! - Sessionless state (feature `handles`): the `handles` module,
//!   principal-bound handles passed as tool arguments, over the same
//!   stores; the `sealed` module, HMAC-sealed single-use request state.
//! - rmcp (feature `rmcp`): the `rmcp::Caller` extractor for `#[tool]`
//!   functions; `rmcp::SessionStateStore`, rmcp's session store over ours
//!   (stateful rmcp on many replicas, no sticky routing).
//!
//! # Example
//!
//! ```
//! use axum::{routing::post, Extension, Router};
//! use http::Extensions;
//! use mcp_session::{Config, Identity, Roles, SessionLayer, SessionManager, MokaStore};
//! use std::time::Duration;
//!
//! async fn mcp(Extension(caller): Extension<Identity>, extensions: Extensions) -> String {
//!     // The caller's current roles, with a session or without one.
//!     let admin = Roles::of(&extensions).is_some_and(|roles| roles.contains("admin"));
//!     format!("{} may administer: {admin}", caller.name())
//! }
//!
//! let manager = SessionManager::new(
//!     MokaStore::new(100_000),
//!     Config::default().timeout(Duration::from_secs(15 * 60)),
//! );
//! let app: Router = Router::new()
//!     .route("/mcp", post(mcp))
//!     .layer(SessionLayer::new(manager));
//!     // .layer(auth) goes last: the outermost layer runs first and inserts the Identity.
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The README's Rust snippets, compiled and run as doc tests (they use
/// rmcp, Redis and the policy layer: with those features on, as in
/// `cargo test --all-features`).
#[cfg(all(doctest, feature = "rmcp", feature = "redis", feature = "policy"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod config;
mod error;
pub mod events;
mod id;
mod identity;
mod log;
mod manager;
pub mod observe;
mod resolve;
mod session;
mod time;

#[cfg(feature = "handles")]
pub mod handles;
pub mod layer;
#[cfg(feature = "policy")]
#[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
pub mod policy;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod rmcp;
pub mod roles;
#[cfg(feature = "handles")]
pub mod sealed;
pub mod store;

pub use config::{
    Config, ConfigError, IdentityLimitPolicy, Limits, DEFAULT_MAX_CACHED_IDENTITIES,
    DEFAULT_MAX_LIFETIME, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_IDENTITY,
    DEFAULT_ROLES_LOOKUP_TIMEOUT, DEFAULT_ROLES_MAX_AGE, DEFAULT_TIMEOUT,
};
pub use error::{CapacityScope, InvalidSessionId, SessionError, StoreError};
pub use events::{EndReason, SessionEnded};
pub use id::{SessionId, MAX_ADOPTED_ID_LEN, SESSION_ID_BYTES, SESSION_ID_HEX_LEN};
pub use identity::{Identity, Role, Roles};
pub use layer::{IdMode, SessionLayer, SessionMiddleware};
pub use manager::{SessionManager, SessionManagerBuilder};
#[cfg(feature = "policy")]
#[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
pub use policy::{Policy, PolicyLayer};
pub use resolve::{BearerToken, IdentityFromExtensions, ResolveIdentity};
pub use session::Session;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::{RedisStore, RedisStoreConfig};
pub use store::{AnyStore, CreateOutcome, MokaStore, RemovedSession, ReplicaNotice, SessionStore};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
