//! [`AnyStore`]: the built-in stores behind one type, chosen at run time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{
    CreateOutcome, MokaStore, NoticeListener, RemovedSession, ReplicaNotice, SessionStore,
};
use crate::{Limits, Session, SessionId, StoreError, Timestamp};

/// One of the built-in stores, picked at run time (in memory unless a Redis
/// URL is configured, say) without making the rest of the program generic
/// over the store type. It costs one `match` per call; the hot path stays
/// unboxed.
///
/// ```
/// use mcp_session::store::AnyStore;
/// use mcp_session::{Config, MokaStore, SessionLayer, SessionManager};
///
/// # async fn demo() -> Result<(), mcp_session::StoreError> {
/// let store: AnyStore = match std::env::var("REDIS_URL") {
///     # #[cfg(feature = "redis")]
///     Ok(url) => mcp_session::RedisStore::connect(&url).await?.into(),
///     _ => MokaStore::default().into(),
/// };
/// let layer: SessionLayer<AnyStore> = SessionLayer::new(SessionManager::new(store, Config::default()));
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// In this process.
    Moka(MokaStore),
    /// In Redis/Valkey, standalone or Cluster.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(super::redis::RedisStore),
}

impl AnyStore {
    /// The in-memory store, if that is the one.
    pub fn as_moka(&self) -> Option<&MokaStore> {
        match self {
            AnyStore::Moka(store) => Some(store),
            #[cfg(feature = "redis")]
            AnyStore::Redis(_) => None,
        }
    }

    /// The Redis store, if that is the one.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn as_redis(&self) -> Option<&super::redis::RedisStore> {
        match self {
            AnyStore::Redis(store) => Some(store),
            AnyStore::Moka(_) => None,
        }
    }
}

impl From<MokaStore> for AnyStore {
    fn from(store: MokaStore) -> Self {
        AnyStore::Moka(store)
    }
}

#[cfg(feature = "redis")]
impl From<super::redis::RedisStore> for AnyStore {
    fn from(store: super::redis::RedisStore) -> Self {
        AnyStore::Redis(store)
    }
}

/// The touch future of an [`AnyStore`]: the chosen store's own.
pub enum AnyTouchFuture {
    /// [`MokaStore`]'s.
    Moka(<MokaStore as SessionStore>::TouchFuture),
    /// `RedisStore`'s.
    #[cfg(feature = "redis")]
    Redis(<super::redis::RedisStore as SessionStore>::TouchFuture),
}

impl Future for AnyTouchFuture {
    type Output = Result<Option<Session>, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both futures are `Unpin` (the trait requires it), so is this.
        match self.get_mut() {
            AnyTouchFuture::Moka(future) => Pin::new(future).poll(cx),
            #[cfg(feature = "redis")]
            AnyTouchFuture::Redis(future) => Pin::new(future).poll(cx),
        }
    }
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Moka($store) => $call,
            #[cfg(feature = "redis")]
            AnyStore::Redis($store) => $call,
        }
    };
}

impl SessionStore for AnyStore {
    type TouchFuture = AnyTouchFuture;

    /// The chosen store's name (`moka`, `redis`): what metrics label it.
    fn name(&self) -> &'static str {
        each!(self, store => store.name())
    }

    async fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        each!(self, store => store.create(session, limits).await)
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        each!(self, store => store.get(id, now).await)
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> AnyTouchFuture {
        match self {
            AnyStore::Moka(store) => AnyTouchFuture::Moka(store.touch(id, owner, now)),
            #[cfg(feature = "redis")]
            AnyStore::Redis(store) => AnyTouchFuture::Redis(store.touch(id, owner, now)),
        }
    }

    async fn update(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        each!(self, store => store.update(session, now).await)
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        each!(self, store => store.delete(id).await)
    }

    async fn delete_all_of(&self, identity_id: &str) -> Result<Vec<RemovedSession>, StoreError> {
        each!(self, store => store.delete_all_of(identity_id).await)
    }

    async fn publish(&self, notice: &ReplicaNotice) -> Result<(), StoreError> {
        each!(self, store => store.publish(notice).await)
    }

    fn subscribe(&self, listener: NoticeListener) -> bool {
        each!(self, store => store.subscribe(listener))
    }
}
