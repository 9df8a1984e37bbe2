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
//! - `update` never brings back a deleted or expired session, and never
//!   moves a session to another identity (one stored for another identity
//!   id is left unchanged, as if missing);
//! - after `delete` returns, no `get`/`touch` returns the session;
//! - after `delete_all_of` returns, no session of that identity created
//!   before the call is returned by `get`/`touch`.
//!
//! A store shared by several processes (replicas) also carries
//! [`ReplicaNotice`]s between them: [`SessionStore::publish`] sends one to
//! every replica, [`SessionStore::subscribe`] receives them. An in-process
//! store keeps the defaults (nothing to send, nobody else to hear).

use std::future::Future;
use std::sync::Arc;

use crate::{Limits, Session, SessionId, StoreError, Timestamp};

mod any;
mod moka;

pub use self::any::{AnyStore, AnyTouchFuture};
pub use self::moka::MokaStore;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

/// What a successful [`SessionStore::create`] did besides storing the session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CreateOutcome {
    /// Sessions of the same identity terminated to make room, oldest first
    /// (only with [`crate::IdentityLimitPolicy::EvictOldest`]).
    pub evicted: Vec<RemovedSession>,
}

/// A session a store removed on its own: evicted by
/// [`SessionStore::create`], or ended by [`SessionStore::delete_all_of`].
///
/// Known by its [digest](SessionId::digest) always, and by its id when the
/// store keeps ids: [`MokaStore`] does; a store that keeps only hashes of
/// them, like [`RedisStore`](crate::RedisStore), cannot give the id back.
///
/// ```
/// use mcp_session::{store::RemovedSession, SessionId};
///
/// let id = SessionId::generate();
/// let by_id = RemovedSession::from(id.clone());
/// assert_eq!(by_id.id(), Some(&id));
/// assert_eq!(by_id.digest(), id.digest());
/// let by_digest = RemovedSession::from_digest(id.digest());
/// assert_eq!(by_digest.id(), None);
/// assert!(by_digest.is(&id));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSession {
    digest: u64,
    id: Option<SessionId>,
}

impl RemovedSession {
    /// A removed session known only by its digest.
    pub fn from_digest(digest: u64) -> Self {
        RemovedSession { digest, id: None }
    }

    /// The session's [`SessionId::digest`].
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The session's id, if the store knows it.
    pub fn id(&self) -> Option<&SessionId> {
        self.id.as_ref()
    }

    /// Whether this is (as far as its digest tells) the session `id`.
    pub fn is(&self, id: &SessionId) -> bool {
        match &self.id {
            Some(own) => own == id,
            None => self.digest == id.digest(),
        }
    }
}

impl From<SessionId> for RemovedSession {
    fn from(id: SessionId) -> Self {
        RemovedSession {
            digest: id.digest(),
            id: Some(id),
        }
    }
}

/// A message every replica sharing a store acts on (see
/// [`SessionStore::publish`] and [`SessionStore::subscribe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaNotice {
    /// The roles of this identity (its id) changed: drop them from every
    /// role cache.
    RolesChanged(Arc<str>),
    /// A session ended on another replica: whoever holds state for it (its
    /// [digest](crate::SessionId::digest)) drops it.
    SessionEnded {
        /// The session's [`SessionId::digest`](crate::SessionId::digest).
        digest: u64,
        /// Why it ended.
        reason: crate::EndReason,
    },
    /// The channel is up (again). Notices sent while it was down may have
    /// been lost, so a listener drops whatever it cached.
    Connected,
    /// The channel is down: notices may be lost until the next `Connected`,
    /// so a listener stops trusting what it caches.
    Disconnected,
}

/// Receives the [`ReplicaNotice`]s of a store. Called on the store's own
/// task: it must return quickly and never block.
pub type NoticeListener = Arc<dyn Fn(&ReplicaNotice) + Send + Sync>;

/// Persistence for sessions. See the [module docs](self) for the contract.
///
/// `touch` is the per-request hot path; its future is an associated type so
/// that the layer can hold it without boxing (an in-memory store returns
/// [`std::future::Ready`]). It is `Unpin` so that the layer can poll it once
/// in place: a store that answers at once then costs no extra state
/// transition (a store whose future is not `Unpin` can box it, as
/// `RedisStore` (feature `redis`) does).
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
    /// nothing, if it is missing, expired, or stored for another identity
    /// id (an update may change the name and roles of the identity, never
    /// who it is).
    fn update(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the session. Returns whether a live session was removed.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes every session of the identity (an identity id): revocation,
    /// "log out everywhere". Returns the live sessions removed.
    fn delete_all_of(
        &self,
        identity_id: &str,
    ) -> impl Future<Output = Result<Vec<RemovedSession>, StoreError>> + Send;

    /// Sends `notice` to every replica sharing this store (their listeners
    /// registered with [`SessionStore::subscribe`]; possibly this process's
    /// too). The default does nothing: an in-process store has no other
    /// replica.
    fn publish(
        &self,
        notice: &ReplicaNotice,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = notice;
        std::future::ready(Ok(()))
    }

    /// A short name for metric labels and logs: `moka`, `redis`; `custom`
    /// unless a store says otherwise. Keep it to a few fixed lowercase
    /// words (it becomes a label value: see
    /// [`observe::metrics`](crate::observe::metrics)).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Registers a listener for notices published by any replica. Returns
    /// `true` if notices from other processes will reach it; the listener
    /// then hears [`ReplicaNotice::Connected`] once the channel is up (at
    /// once if it is up already) and [`ReplicaNotice::Disconnected`]
    /// whenever it goes down. The default returns `false` and keeps nothing.
    fn subscribe(&self, listener: NoticeListener) -> bool {
        let _ = listener;
        false
    }
}
