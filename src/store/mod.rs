//! Where sessions live: the [`SessionStore`] trait and its implementations.
//!
//! Every store honours the same contract, checked by one conformance suite
//! (`tests/store_conformance.rs`) run against each of them:
//!
//! - `create` never overwrites an existing id and enforces [`Limits`]
//!   atomically (a cap is never exceeded, even under concurrent creates);
//! - `get` and `touch` report `None` for a missing *or expired* session
//!   (expiry is `min(last_access + idle_timeout, deadline)` at the `now`
//!   passed in);
//! - `touch` slides the idle expiry in one step (one round trip for remote
//!   stores), only for the session's owner, never past the deadline;
//! - `update` never brings back a deleted or expired session;
//! - after `delete` returns, no `get`/`touch` returns the session.

use std::future::Future;

use crate::{Limits, Session, SessionId, StoreError, Timestamp};

mod moka;

pub use self::moka::MokaStore;

#[cfg(feature = "redis")]
pub mod redis;

/// What a successful [`SessionStore::create`] did besides storing the session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CreateOutcome {
    /// Sessions of the same identity terminated to make room, oldest first
    /// (only with [`crate::IdentityLimitPolicy::EvictOldest`]).
    pub evicted: Vec<SessionId>,
}

/// Persistence for sessions. See the [module docs](self) for the contract.
///
/// `touch` is the per-request hot path; its future is an associated type so
/// that the layer can hold it without boxing (an in-memory store returns
/// [`std::future::Ready`]). It is `Unpin` so that the layer can poll it once
/// in place: a store that answers at once then costs no extra state
/// transition (a store whose future is not `Unpin` can box it, as
/// [`RedisStore`](crate::RedisStore) does).
pub trait SessionStore: Send + Sync + 'static {
    /// The future returned by [`SessionStore::touch`].
    type TouchFuture: Future<Output = Result<Option<Session>, StoreError>> + Send + Unpin + 'static;

    /// Stores a new session. Fails with [`StoreError::AlreadyExists`] if the
    /// id is taken (never overwrites) and [`StoreError::AtCapacity`] when a cap
    /// forbids it.
    fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    /// The live session with this id, without changing it.
    fn get(
        &self,
        id: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// The live session with this id if it belongs to `owner` (an identity
    /// id), with its last access set to `now`; `None` if it is missing,
    /// expired or owned by someone else (the session is then left unchanged).
    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture;

    /// Replaces a live session's stored state. Returns `false`, writing
    /// nothing, if it is missing or expired.
    fn update(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the session. Returns whether a live session was removed.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
