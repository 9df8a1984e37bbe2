//! [`SessionManager`]: the domain operations on sessions, over any store.

use std::fmt;
use std::sync::Arc;

use crate::events::{EndReason, Hooks, OnSessionEnd, SessionEnded};
use crate::log::log_warn;
use crate::observe::{self, Started, TimedTouch};
use crate::roles::{DynRoleSource, RoleCache, RoleSource, RolesUnavailable};
use crate::store::{CreateOutcome, NoticeListener, RemovedSession, ReplicaNotice, SessionStore};
use crate::{
    Clock, Config, ConfigError, Identity, MokaStore, Roles, Session, SessionError, SessionId,
    StoreError, SystemClock, Timestamp,
};

/// Creates, looks up, refreshes and deletes sessions in a [`SessionStore`],
/// applying a [`Config`] (idle timeout, lifetime cap, caps).
///
/// Cheap to clone: clones share the store and configuration. The
/// [`SessionLayer`](crate::SessionLayer) uses one. For the cross-call
/// state of sessionless (2026-07-28) tools, use handles (feature `handles`:
/// the `handles` module), not sessions: they have a namespace and caps of
/// their own.
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
/// assert!(manager.get(session.id(), &alice).await.is_ok());
/// // Another caller cannot see it: indistinguishable from an unknown id.
/// assert!(manager.get(session.id(), &bob).await.unwrap_err().is_not_found());
///
/// manager.delete(session.id(), &bob).await.unwrap_err(); // not bob's to end
/// manager.delete(session.id(), &alice).await.unwrap();
/// assert!(manager.get(session.id(), &alice).await.unwrap_err().is_not_found());
/// # });
/// ```
pub struct SessionManager<S = MokaStore> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    config: Config,
    clock: Arc<dyn Clock>,
    roles: RoleResolver,
    hooks: Arc<Hooks>,
    #[cfg(feature = "metrics")]
    metrics: Arc<observe::metrics::Handles>,
}

/// Where the roles of a request come from.
enum RoleResolver {
    /// [`RolesFromIdentity`](crate::roles::RolesFromIdentity): the request's
    /// own identity carries them, fresh; nothing to cache.
    FromIdentity,
    /// A [`RoleSource`] behind the per-identity cache.
    Cached(Arc<RoleCache>),
}

/// Builds a [`SessionManager`]: store, [`Config`], clock and [`RoleSource`].
///
/// ```
/// use mcp_session::roles::RolesFromIdentity;
/// use mcp_session::{Config, ManualClock, MokaStore, SessionManager};
///
/// let manager = SessionManager::builder(MokaStore::default())
///     .config(Config::default())
///     .clock(ManualClock::starting_now())
///     .role_source(RolesFromIdentity)
///     .build();
/// # let _ = manager;
/// ```
pub struct SessionManagerBuilder<S> {
    store: S,
    config: Config,
    clock: Arc<dyn Clock>,
    source: Option<Box<dyn DynRoleSource>>,
}

impl<S: SessionStore> SessionManagerBuilder<S> {
    /// Lifetimes, caps and role-cache settings (default [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The clock (default [`SystemClock`]; tests use [`crate::ManualClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where the callers' roles come from (default
    /// [`RolesFromIdentity`](crate::roles::RolesFromIdentity)). See the
    /// [`roles`](crate::roles) module.
    pub fn role_source(mut self, source: impl RoleSource) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The manager. Over a store shared by replicas, it subscribes to the
    /// store's notices: [`SessionManager::invalidate_roles`] on any replica
    /// reaches its role cache, and sessions ended elsewhere reach its
    /// [hooks](SessionManager::on_session_end).
    ///
    /// # Panics
    ///
    /// If the [`Config`] is invalid ([`Config::validate`]), with its
    /// message: a setup mistake, found at start-up. Use
    /// [`SessionManagerBuilder::try_build`] to handle it instead.
    pub fn build(self) -> SessionManager<S> {
        match self.try_build() {
            Ok(manager) => manager,
            Err(error) => panic!("invalid mcp_session::Config: {error}"),
        }
    }

    /// The manager, or why its [`Config`] is invalid.
    pub fn try_build(self) -> Result<SessionManager<S>, ConfigError> {
        self.config.validate()?;
        let config = self.config;
        let cache = self.source.map(|source| {
            Arc::new(RoleCache::new(
                source,
                config.roles_max_age,
                config.roles_lookup_timeout,
                config.max_cached_identities,
            ))
        });
        let hooks = Arc::new(Hooks::default());
        if let Some(cache) = &cache {
            // Untrusted until the store says its channel is up: an
            // invalidation sent before then would be missed.
            cache.set_trusted(false);
        }
        let shared = self
            .store
            .subscribe(notice_listener(cache.as_ref(), &hooks));
        if let (Some(cache), false) = (&cache, shared) {
            cache.set_trusted(true); // one process: nothing to miss
        }
        Ok(SessionManager {
            inner: Arc::new(Inner {
                store: self.store,
                config,
                clock: self.clock,
                roles: cache.map_or(RoleResolver::FromIdentity, RoleResolver::Cached),
                hooks,
                #[cfg(feature = "metrics")]
                metrics: Arc::default(),
            }),
        })
    }
}

/// What a manager does with the notices of its store. Holds the role cache
/// and the hooks weakly: a dropped manager stops listening.
fn notice_listener(cache: Option<&Arc<RoleCache>>, hooks: &Arc<Hooks>) -> NoticeListener {
    let cache = cache.map(Arc::downgrade);
    let hooks = Arc::downgrade(hooks);
    Arc::new(move |notice: &ReplicaNotice| {
        let cache = cache.as_ref().and_then(std::sync::Weak::upgrade);
        match notice {
            ReplicaNotice::RolesChanged(identity_id) => {
                if let Some(cache) = cache {
                    cache.invalidate(identity_id);
                }
            }
            ReplicaNotice::Connected => {
                if let Some(cache) = cache {
                    cache.set_trusted(true);
                }
            }
            ReplicaNotice::Disconnected => {
                if let Some(cache) = cache {
                    cache.set_trusted(false);
                }
            }
            ReplicaNotice::SessionEnded { digest, reason } => {
                if let Some(hooks) = hooks.upgrade() {
                    hooks.tell(&SessionEnded::remote(*digest, *reason));
                }
            }
        }
    })
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
    /// A manager over `store` with `config`, using the system clock and the
    /// roles on each request's identity
    /// ([`RolesFromIdentity`](crate::roles::RolesFromIdentity)).
    ///
    /// # Panics
    ///
    /// If `config` is invalid ([`Config::validate`]); see
    /// [`SessionManagerBuilder::try_build`] to handle that instead.
    pub fn new(store: S, config: Config) -> Self {
        Self::builder(store).config(config).build()
    }

    /// A manager with an explicit clock (tests use [`crate::ManualClock`]).
    pub fn with_clock(store: S, config: Config, clock: impl Clock) -> Self {
        Self::builder(store).config(config).clock(clock).build()
    }

    /// A builder, for a [`RoleSource`] or a clock.
    pub fn builder(store: S) -> SessionManagerBuilder<S> {
        SessionManagerBuilder {
            store,
            config: Config::default(),
            clock: Arc::new(SystemClock),
            source: None,
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
        let started = Started::now();
        let outcome = self.inner.store.create(&session, &config.limits).await;
        self.store_done("create", started, &outcome);
        let outcome = outcome?;
        observe::session_created(self.inner.store.name(), session.id().digest());
        for evicted in &outcome.evicted {
            self.removed(evicted, EndReason::Evicted);
        }
        Ok((session, outcome))
    }

    /// The live session with this id, **whoever owns it**: for
    /// administration only. A request path uses [`SessionManager::get`],
    /// which checks the caller.
    pub async fn get_any_owner(&self, id: &SessionId) -> Result<Session, SessionError> {
        let started = Started::now();
        let found = self.inner.store.get(id, self.now()).await;
        self.store_done("get", started, &found);
        found?.ok_or(SessionError::NotFound)
    }

    /// The live session with this id if it belongs to `caller`; otherwise
    /// [`SessionError::NotFound`], exactly as for an unknown id.
    pub async fn get(&self, id: &SessionId, caller: &Identity) -> Result<Session, SessionError> {
        match self.get_any_owner(id).await {
            Ok(session) if session.is_owned_by(caller) => Ok(session),
            Ok(_) => Err(SessionError::NotFound),
            Err(e) => Err(e),
        }
    }

    /// Slides the session's idle expiry (never past its deadline) and
    /// returns it, **whoever owns it**: for administration only (a request
    /// path uses [`SessionManager::refresh`]). Two store calls.
    pub async fn refresh_any_owner(&self, id: &SessionId) -> Result<Session, SessionError> {
        let owner = self.get_any_owner(id).await?;
        self.refresh(id, owner.identity()).await
    }

    /// Slides the idle expiry of `caller`'s session (never past its
    /// deadline) and returns it: one store call. Someone else's session is
    /// neither returned nor refreshed ([`SessionError::NotFound`], as for
    /// an unknown id).
    pub async fn refresh(
        &self,
        id: &SessionId,
        caller: &Identity,
    ) -> Result<Session, SessionError> {
        let touch = self.touch(id, caller, self.now());
        let started = touch.started();
        let touched = touch.await;
        self.touch_done(started);
        touched?.ok_or(SessionError::NotFound)
    }

    /// The store's touch future (what the layer polls on its hot path),
    /// timed.
    #[inline]
    pub(crate) fn touch(
        &self,
        id: &SessionId,
        caller: &Identity,
        now: Timestamp,
    ) -> TimedTouch<S::TouchFuture> {
        TimedTouch::new(
            self.inner.store.touch(id, caller.id(), now),
            self.inner.store.name(),
        )
    }

    /// Records a finished [`SessionManager::touch`].
    #[inline]
    pub(crate) fn touch_done(&self, started: Started) {
        observe::touch_done(
            #[cfg(feature = "metrics")]
            &self.inner.metrics,
            self.inner.store.name(),
            started,
        );
    }

    /// The hot path's metric handles (for the layer's registry).
    #[cfg(feature = "metrics")]
    pub(crate) fn metric_handles(&self) -> Arc<observe::metrics::Handles> {
        self.inner.metrics.clone()
    }

    /// Records a store call's latency (and its failure).
    #[inline]
    fn store_done<T>(
        &self,
        operation: &'static str,
        started: Started,
        result: &Result<T, StoreError>,
    ) {
        observe::store_done(self.inner.store.name(), operation, started, result);
    }

    /// Writes a session's state back (for example after changing its
    /// roles). Fails with [`SessionError::NotFound`] if it was deleted or
    /// expired meanwhile: an update never brings a session back.
    pub async fn update(&self, session: &Session) -> Result<(), SessionError> {
        let started = Started::now();
        let updated = self.inner.store.update(session, self.now()).await;
        self.store_done("update", started, &updated);
        if updated? {
            Ok(())
        } else {
            Err(SessionError::NotFound)
        }
    }

    /// Terminates the session, **whoever owns it**: for administration only
    /// (a request path uses [`SessionManager::delete`]).
    /// [`SessionError::NotFound`] if there was none.
    pub async fn delete_any_owner(&self, id: &SessionId) -> Result<(), SessionError> {
        if self.end(id, EndReason::Deleted).await? {
            Ok(())
        } else {
            Err(SessionError::NotFound)
        }
    }

    /// Terminates the session if it belongs to `caller`; otherwise
    /// [`SessionError::NotFound`] and the session is untouched.
    pub async fn delete(&self, id: &SessionId, caller: &Identity) -> Result<(), SessionError> {
        let session = self.get(id, caller).await?;
        match self
            .end_timed(id, EndReason::Deleted, Some(session.created_at()))
            .await?
        {
            true => Ok(()),
            false => Err(SessionError::NotFound),
        }
    }

    /// Terminates every session of the identity, on every replica sharing
    /// the store (their ids answer `404` from the next request on), and
    /// drops its cached roles everywhere. Returns how many sessions ended.
    /// Sessions created after the call are not affected: to lock a caller
    /// out for good, stop authenticating it (or take its roles away) first.
    pub async fn revoke_sessions(&self, identity_id: &str) -> Result<usize, SessionError> {
        let started = Started::now();
        let ended = self.inner.store.delete_all_of(identity_id).await;
        self.store_done("delete_all_of", started, &ended);
        let ended = ended?;
        for removed in &ended {
            self.removed(removed, EndReason::Revoked);
        }
        self.invalidate_roles(identity_id).await?;
        Ok(ended.len())
    }

    // -- Lifecycle events ----------------------------------------------------

    /// Removes a session for `reason`; whether there was one to remove.
    pub(crate) async fn end(
        &self,
        id: &SessionId,
        reason: EndReason,
    ) -> Result<bool, SessionError> {
        self.end_timed(id, reason, None).await
    }

    /// [`SessionManager::end`], knowing when the session was created (its
    /// duration is then recorded).
    pub(crate) async fn end_timed(
        &self,
        id: &SessionId,
        reason: EndReason,
        created_at: Option<Timestamp>,
    ) -> Result<bool, SessionError> {
        let started = Started::now();
        let removed = self.inner.store.delete(id).await;
        self.store_done("delete", started, &removed);
        let removed = removed?;
        if removed {
            self.ended(id, reason, created_at);
        }
        Ok(removed)
    }

    /// Registers a hook told of every session end: those this manager
    /// causes, those reported with [`SessionManager::report_end`], and
    /// (over a store with a notice channel) those on other replicas. See
    /// the [`events`](crate::events) module.
    ///
    /// ```
    /// use mcp_session::events::{EndReason, SessionEnded};
    /// use mcp_session::{Identity, SessionManager};
    /// use std::sync::{Arc, Mutex};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::default();
    /// let ends = Arc::new(Mutex::new(Vec::new()));
    /// let seen = ends.clone();
    /// manager.on_session_end(move |ended: &SessionEnded| seen.lock().unwrap().push(ended.reason()));
    /// let alice = Identity::new("alice", "Alice", ["reader"]);
    /// let session = manager.create(&alice).await.unwrap();
    /// manager.delete(session.id(), &alice).await.unwrap();
    /// assert_eq!(*ends.lock().unwrap(), [EndReason::Deleted]);
    /// # });
    /// ```
    pub fn on_session_end(&self, hook: impl OnSessionEnd) {
        self.inner.hooks.add(Arc::new(hook));
    }

    /// Reports the end of a session this manager did not end itself: for
    /// example one an inner server created that was then refused. Its hooks
    /// are told, and so are the other replicas'.
    pub fn report_end(&self, id: &SessionId, reason: EndReason) {
        self.ended(id, reason, None);
    }

    /// Tells the hooks here, and the other replicas (in the background: an
    /// end never waits on them). Counted here only: the other replicas do
    /// not count what they hear.
    fn ended(&self, id: &SessionId, reason: EndReason, created_at: Option<Timestamp>) {
        let lasted = created_at.map(|at| self.now().saturating_since(at));
        observe::session_ended(self.inner.store.name(), id.digest(), reason, lasted);
        self.tell_ended(SessionEnded::local(id, reason));
    }

    /// A session the store removed by itself, known by id or only by digest.
    fn removed(&self, removed: &RemovedSession, reason: EndReason) {
        match removed.id() {
            Some(id) => self.ended(id, reason, None),
            None => {
                observe::session_ended(self.inner.store.name(), removed.digest(), reason, None);
                self.tell_ended(SessionEnded::local_by_digest(removed.digest(), reason));
            }
        }
    }

    fn tell_ended(&self, ended: SessionEnded) {
        self.inner.hooks.tell(&ended);
        let notice = ReplicaNotice::SessionEnded {
            digest: ended.digest(),
            reason: ended.reason(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let manager = self.clone();
            runtime.spawn(async move {
                let started = Started::now();
                let published = manager.inner.store.publish(&notice).await;
                manager.store_done("publish", started, &published);
                if let Err(error) = published {
                    log_warn!(error; "could not tell the other replicas of a session end");
                }
            });
        }
    }

    // -- Roles ---------------------------------------------------------------

    /// The roles to authorize `caller` with now: from the
    /// [`RoleSource`](crate::roles::RoleSource) through the per-identity
    /// cache (at most [`Config::roles_max_age`] old; one lookup at a time
    /// per identity), or the identity's own with the default source.
    pub async fn roles(&self, caller: &Identity) -> Result<Roles, RolesUnavailable> {
        match &self.inner.roles {
            RoleResolver::FromIdentity => Ok(caller.roles().clone()),
            RoleResolver::Cached(cache) => cache.load(caller, self.now()).await,
        }
    }

    /// The hot path of [`SessionManager::roles`]: `Some` without waiting
    /// when no lookup is needed.
    #[inline]
    pub(crate) fn roles_now(&self, caller: &Identity, now: Timestamp) -> Option<Roles> {
        match &self.inner.roles {
            RoleResolver::FromIdentity => Some(caller.roles().clone()),
            RoleResolver::Cached(cache) => cache.cached(caller.id(), now),
        }
    }

    /// Drops the identity's cached roles here at once and, through the
    /// store, on every other replica (see
    /// [`ReplicaNotice::RolesChanged`]): its next request anywhere reads the
    /// [`RoleSource`](crate::roles::RoleSource) again. Call it right after
    /// changing the roles where they live. An error means the other
    /// replicas may not have heard; they then keep the old roles at most
    /// [`Config::roles_max_age`].
    pub async fn invalidate_roles(&self, identity_id: &str) -> Result<(), StoreError> {
        if let RoleResolver::Cached(cache) = &self.inner.roles {
            cache.invalidate(identity_id);
        }
        let started = Started::now();
        let published = self
            .inner
            .store
            .publish(&ReplicaNotice::RolesChanged(Arc::from(identity_id)))
            .await;
        self.store_done("publish", started, &published);
        published
    }

    /// Number of identities whose roles are cached here (0 with the default
    /// source, which caches nothing).
    pub fn cached_identities(&self) -> usize {
        match &self.inner.roles {
            RoleResolver::FromIdentity => 0,
            RoleResolver::Cached(cache) => cache.len(),
        }
    }
}
