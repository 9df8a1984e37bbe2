//! [`SessionManager`]: the domain operations on sessions, over any store.

use std::fmt;
use std::sync::Arc;

use crate::store::{CreateOutcome, SessionStore};
use crate::{
    Clock, Config, Identity, MokaStore, Session, SessionError, SessionId, StoreError, SystemClock,
    Timestamp,
};

/// Creates, looks up, refreshes and deletes sessions in a [`SessionStore`],
/// applying a [`Config`] (idle timeout, lifetime cap, caps).
///
/// Cheap to clone: clones share the store and configuration. The
/// [`SessionLayer`](crate::SessionLayer) uses one; tools of sessionless
/// (2026-07-28) servers can use the same manager as a store of handles bound
/// to the caller.
///
/// ```
/// use mcp_session::{Config, Identity, SessionManager, MokaStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MokaStore::default(), Config::default());
/// let alice = Identity::new("alice", "Alice", ["admin"]);
/// let bob = Identity::new("bob", "Bob", ["reader"]);
///
/// let session = manager.create(&alice).await.unwrap();
/// assert!(manager.get_for(session.id(), &alice).await.is_ok());
/// // Another caller cannot see it: indistinguishable from an unknown id.
/// assert!(manager.get_for(session.id(), &bob).await.unwrap_err().is_not_found());
///
/// manager.delete(session.id()).await.unwrap();
/// assert!(manager.get(session.id()).await.unwrap_err().is_not_found());
/// # });
/// ```
pub struct SessionManager<S = MokaStore> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    config: Config,
    clock: Arc<dyn Clock>,
}

impl<S> Clone for SessionManager<S> {
    fn clone(&self) -> Self {
        SessionManager {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for SessionManager<MokaStore> {
    fn default() -> Self {
        SessionManager::new(MokaStore::default(), Config::default())
    }
}

impl<S: SessionStore> SessionManager<S> {
    /// A manager over `store` with `config`, using the system clock.
    pub fn new(store: S, config: Config) -> Self {
        Self::with_clock(store, config, SystemClock)
    }

    /// A manager with an explicit clock (tests use [`crate::ManualClock`]).
    pub fn with_clock(store: S, config: Config, clock: impl Clock) -> Self {
        SessionManager {
            inner: Arc::new(Inner {
                store,
                config,
                clock: Arc::new(clock),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The current time on the manager's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Creates a session with a fresh id, bound to `identity`.
    pub async fn create(&self, identity: &Identity) -> Result<Session, SessionError> {
        self.create_reporting(identity).await.map(|(s, _)| s)
    }

    /// [`SessionManager::create`], also reporting sessions of the same
    /// identity that were evicted to make room.
    pub async fn create_reporting(
        &self,
        identity: &Identity,
    ) -> Result<(Session, CreateOutcome), SessionError> {
        // A collision of 256-bit random ids does not happen; retry once anyway
        // rather than trust that with a user's session.
        for _ in 0..2 {
            match self.create_with_id(SessionId::generate(), identity).await {
                Err(SessionError::Store(StoreError::AlreadyExists)) => continue,
                other => return other,
            }
        }
        Err(SessionError::Store(StoreError::AlreadyExists))
    }

    /// Creates a session with a given id (adopt mode: the id an inner server
    /// minted). Fails with [`StoreError::AlreadyExists`] if the id is taken.
    pub async fn create_with_id(
        &self,
        id: SessionId,
        identity: &Identity,
    ) -> Result<(Session, CreateOutcome), SessionError> {
        let config = &self.inner.config;
        let session = Session::new(
            id,
            identity.clone(),
            self.now(),
            config.timeout,
            config.max_lifetime,
        );
        let outcome = self.inner.store.create(&session, &config.limits).await?;
        Ok((session, outcome))
    }

    /// The live session with this id, whoever owns it (administrative use;
    /// request paths should use [`SessionManager::get_for`]).
    pub async fn get(&self, id: &SessionId) -> Result<Session, SessionError> {
        self.inner
            .store
            .get(id, self.now())
            .await?
            .ok_or(SessionError::NotFound)
    }

    /// The live session with this id if it belongs to `caller`; otherwise
    /// [`SessionError::NotFound`], exactly as for an unknown id.
    pub async fn get_for(
        &self,
        id: &SessionId,
        caller: &Identity,
    ) -> Result<Session, SessionError> {
        match self.get(id).await {
            Ok(session) if session.is_owned_by(caller) => Ok(session),
            Ok(_) => Err(SessionError::NotFound),
            Err(e) => Err(e),
        }
    }

    /// Slides the session's idle expiry (never past its deadline) and returns it.
    pub async fn refresh(&self, id: &SessionId) -> Result<Session, SessionError> {
        let owner = self.get(id).await?;
        self.refresh_for(id, owner.identity()).await
    }

    /// [`SessionManager::refresh`] for the session's owner only: one store
    /// call, and a session of someone else is neither returned nor refreshed.
    pub async fn refresh_for(
        &self,
        id: &SessionId,
        caller: &Identity,
    ) -> Result<Session, SessionError> {
        self.touch(id, caller).await?.ok_or(SessionError::NotFound)
    }

    /// The store's touch future (what the layer polls on its hot path).
    pub(crate) fn touch(&self, id: &SessionId, caller: &Identity) -> S::TouchFuture {
        self.inner.store.touch(id, caller.id(), self.now())
    }

    /// Writes a session's state back (for example after changing its
    /// roles). Fails with [`SessionError::NotFound`] if it was deleted or
    /// expired meanwhile: an update never brings a session back.
    pub async fn update(&self, session: &Session) -> Result<(), SessionError> {
        if self.inner.store.update(session, self.now()).await? {
            Ok(())
        } else {
            Err(SessionError::NotFound)
        }
    }

    /// Terminates the session. [`SessionError::NotFound`] if there was none.
    pub async fn delete(&self, id: &SessionId) -> Result<(), SessionError> {
        if self.inner.store.delete(id).await? {
            Ok(())
        } else {
            Err(SessionError::NotFound)
        }
    }

    /// Terminates the session if it belongs to `caller`; otherwise
    /// [`SessionError::NotFound`] and the session is untouched.
    pub async fn delete_for(&self, id: &SessionId, caller: &Identity) -> Result<(), SessionError> {
        self.get_for(id, caller).await?;
        self.delete(id).await
    }
}
