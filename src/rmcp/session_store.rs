//! rmcp's session store over ours: stateful rmcp (adopt mode) on many
//! replicas without sticky routing. See [`SessionStateStore`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore as RmcpSessionStore, SessionStoreError,
};
use moka::sync::Cache;

use crate::events::SessionEnded;
use crate::log::log_warn;
use crate::{SessionError, SessionId, SessionManager, SessionStore, StoreError};

/// Largest state kept for one session (the client's `initialize`
/// parameters, encoded): a larger one is not stored, and that session
/// cannot be restored elsewhere (its client re-initializes after a 404).
pub const MAX_STATE_BYTES: usize = 16 * 1024;

/// Default memory budget of [`SessionStateStore::in_memory`]: 64 MiB of
/// encoded states.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// The key space of the states in Redis: `<prefix>rmcp:<digest>`.
#[cfg(feature = "redis")]
const SPACE: &str = "rmcp";

/// Whether a session is still live (the manager's `get`), for rmcp's
/// `delete`.
type LiveCheck = Box<
    dyn Fn(SessionId) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>
        + Send
        + Sync,
>;

enum States {
    Memory(Cache<u64, Arc<[u8]>>),
    #[cfg(feature = "redis")]
    Redis(crate::RedisStore),
}

/// rmcp's [`SessionStore`](::rmcp::transport::streamable_http_server::session::SessionStore)
/// (its cross-instance session recovery) over this crate's stores: the
/// `initialize` parameters rmcp saves for each session, so that a replica
/// that never saw the session restores it by replaying `initialize` — two
/// or more stateful (adopt mode) rmcp servers behind a load balancer serve
/// each other's sessions without sticky routing.
///
/// It only keeps rmcp's [`SessionState`], keyed by the session's
/// [digest](SessionId::digest) (never the whole id): the
/// [`SessionLayer`](crate::SessionLayer) in front of rmcp has already
/// checked, on every request, that the session exists in the shared store
/// and belongs to the caller, and every cap holds as before. A state lives:
///
/// - until the session ends (deleted, revoked, evicted, refused…: a hook
///   registered with [`SessionManager::on_session_end`] removes it);
/// - until rmcp closes its copy of a session that has expired (rmcp calls
///   `delete` when the layer closes its session — the layer does that on
///   every end and when the session idles out on this replica; the state is
///   removed only if the session is gone from the shared store, since
///   another replica may still be serving it);
/// - at most the session's lifetime cap ([`Config::max_lifetime`](crate::Config::max_lifetime),
///   the TTL of each state).
///
/// Each state also carries a check of the whole id, so two ids with the
/// same 64-bit digest never restore each other's parameters (the second
/// one is simply not found).
///
/// Two variants:
///
/// - `SessionStateStore::redis` (feature `redis`): in Redis/Valkey
///   (standalone or Cluster), under `<prefix>rmcp:<digest as 16 hex
///   digits>`, next to the sessions of the same `RedisStore`: one `SET` per
///   new session, one `GET` per restore, one `DEL` per end.
/// - [`SessionStateStore::in_memory`]: one process, bounded (a memory
///   budget, [`DEFAULT_MEMORY_BYTES`]). rmcp then restores a session its
///   own keep-alive dropped while the layer still holds it, instead of
///   answering 404.
///
/// ```no_run
/// # use rmcp::{model::ServerConfig, ServerHandler};
/// # #[derive(Clone)] struct MyServer;
/// # impl ServerHandler for MyServer { fn get_info(&self) -> ServerConfig { ServerConfig::default() } }
/// # #[cfg(feature = "redis")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_session::rmcp::SessionStateStore;
/// use mcp_session::{Config, IdMode, RedisStore, SessionLayer, SessionManager};
/// use rmcp::transport::streamable_http_server::{
///     session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
/// };
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let manager = SessionManager::new(store.clone(), Config::default());
///
/// // rmcp in its legacy session mode (it mints the ids: adopt mode), with
/// // its session states in the same Redis as the sessions.
/// let mut config = StreamableHttpServerConfig::default().with_legacy_session_mode(true);
/// config.session_store = Some(SessionStateStore::redis(&manager, &store));
/// let rmcp = StreamableHttpService::new(
///     || Ok(MyServer),
///     LocalSessionManager::default().into(),
///     config,
/// );
/// let layer = SessionLayer::new(manager).id_mode(IdMode::Adopt);
/// let mcp = tower::ServiceBuilder::new().layer(layer).service(rmcp);
/// let app: axum::Router = axum::Router::new().nest_service("/mcp", mcp);
/// // … `.layer(auth)` outermost, then serve `app` on every replica.
/// # let _ = app; Ok(()) }
/// ```
pub struct SessionStateStore {
    states: States,
    live: LiveCheck,
    ttl: Duration,
}

impl fmt::Debug for SessionStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.states {
            States::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            States::Redis(_) => "redis",
        };
        f.debug_struct("SessionStateStore")
            .field("kind", &kind)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl SessionStateStore {
    /// States in this process's memory, at most [`DEFAULT_MEMORY_BYTES`]
    /// of them (least recently used go first), for the sessions of
    /// `manager`.
    pub fn in_memory<S: SessionStore>(manager: &SessionManager<S>) -> Arc<Self> {
        Self::in_memory_with_budget(manager, DEFAULT_MEMORY_BYTES)
    }

    /// States in this process's memory, at most `bytes` of them (encoded).
    pub fn in_memory_with_budget<S: SessionStore>(
        manager: &SessionManager<S>,
        bytes: u64,
    ) -> Arc<Self> {
        let ttl = manager.config().max_lifetime;
        let cache = Cache::builder()
            .max_capacity(bytes)
            .weigher(|_, state: &Arc<[u8]>| u32::try_from(state.len()).unwrap_or(u32::MAX))
            .time_to_live(ttl)
            .build();
        Self::hooked(manager, States::Memory(cache))
    }

    /// States in `store`'s Redis (the same one as `manager`'s sessions, as
    /// a rule), under `<prefix>rmcp:<digest>`, shared by every replica.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis<S: SessionStore>(
        manager: &SessionManager<S>,
        store: &crate::RedisStore,
    ) -> Arc<Self> {
        Self::hooked(manager, States::Redis(store.clone()))
    }

    fn hooked<S: SessionStore>(manager: &SessionManager<S>, states: States) -> Arc<Self> {
        let checker = manager.clone();
        let this = Arc::new(SessionStateStore {
            states,
            live: Box::new(move |id| {
                let manager = checker.clone();
                Box::pin(async move {
                    match manager.get_any_owner(&id).await {
                        Ok(_) => Ok(true),
                        Err(SessionError::NotFound) => Ok(false),
                        Err(SessionError::Store(e)) => Err(e),
                    }
                })
            }),
            ttl: manager.config().max_lifetime,
        });
        let hooked: Weak<Self> = Arc::downgrade(&this);
        manager.on_session_end(move |ended: &SessionEnded| {
            if let Some(this) = hooked.upgrade() {
                this.ended(ended);
            }
        });
        this
    }

    /// A session ended: its state goes.
    fn ended(&self, ended: &SessionEnded) {
        match &self.states {
            States::Memory(cache) => cache.invalidate(&ended.digest()),
            // Shared: the replica where it ended deletes it, once.
            #[cfg(feature = "redis")]
            States::Redis(redis) if !ended.is_remote() => {
                let (redis, digest) = (redis.clone(), ended.digest());
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = redis.delete_by_digest(SPACE, digest).await {
                            log_warn!(e; "mcp-session: could not delete an ended session's rmcp state (it expires with its TTL)");
                        }
                    });
                }
            }
            #[cfg(feature = "redis")]
            States::Redis(_) => {}
        }
    }

    /// The stored state of `id`, if any.
    pub async fn state(&self, id: &SessionId) -> Result<Option<SessionState>, StoreError> {
        let raw = match &self.states {
            States::Memory(cache) => cache.get(&id.digest()).map(|s| s.to_vec()),
            #[cfg(feature = "redis")]
            States::Redis(redis) => redis.get_by_digest(SPACE, id.digest()).await?,
        };
        Ok(raw.and_then(|raw| decode(id, &raw)))
    }

    async fn put(&self, id: &SessionId, state: &SessionState) -> Result<(), StoreError> {
        let Some(raw) = encode(id, state) else {
            log_warn!(MAX_STATE_BYTES; "mcp-session: an rmcp session state exceeds the limit and is not stored (the session cannot move between replicas)");
            return Ok(());
        };
        match &self.states {
            States::Memory(cache) => {
                cache.insert(id.digest(), raw.into());
                Ok(())
            }
            #[cfg(feature = "redis")]
            States::Redis(redis) => {
                redis
                    .put_by_digest(SPACE, id.digest(), &raw, self.ttl)
                    .await
            }
        }
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        match &self.states {
            States::Memory(cache) => {
                cache.invalidate(&id.digest());
                Ok(())
            }
            #[cfg(feature = "redis")]
            States::Redis(redis) => redis.delete_by_digest(SPACE, id.digest()).await,
        }
    }

    /// rmcp closed its copy of the session here: the state goes only if the
    /// session itself is gone (another replica may be serving it).
    async fn closed(&self, id: &SessionId) -> Result<(), StoreError> {
        if (self.live)(id.clone()).await? {
            return Ok(());
        }
        self.remove(id).await
    }
}

/// `v1 <check:16 hex>\n<JSON>`; `None` if larger than [`MAX_STATE_BYTES`].
fn encode(id: &SessionId, state: &SessionState) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(state).ok()?;
    let mut raw = format!("v1 {:016x}\n", check(id)).into_bytes();
    raw.extend_from_slice(&json);
    (raw.len() <= MAX_STATE_BYTES).then_some(raw)
}

fn decode(id: &SessionId, raw: &[u8]) -> Option<SessionState> {
    let rest = raw.strip_prefix(b"v1 ")?;
    let (hex, json) = (rest.get(..16)?, rest.get(17..)?);
    if rest.get(16) != Some(&b'\n') || hex != format!("{:016x}", check(id)).as_bytes() {
        return None; // another id with the same digest, or a format we do not know
    }
    serde_json::from_slice(json).ok()
}

/// A second 64-bit hash of the whole id (FNV-1a from another starting
/// point than [`SessionId::digest`]), stored with the state.
fn check(id: &SessionId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"mcp-session rmcp state\0"
        .iter()
        .chain(id.reveal().as_bytes())
    {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn parse(session_id: &str) -> Result<SessionId, SessionStoreError> {
    SessionId::parse_adopted(session_id).map_err(|e| Box::new(e) as SessionStoreError)
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, SessionStoreError>> + Send + 'a>>;

// rmcp's trait is an `async_trait`: these are the signatures it expands to.
impl RmcpSessionStore for SessionStateStore {
    fn load<'life0, 'life1, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
    ) -> Boxed<'async_trait, Option<SessionState>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let Ok(id) = parse(session_id) else {
                return Ok(None);
            };
            Ok(self.state(&id).await?)
        })
    }

    fn store<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
        state: &'life2 SessionState,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Ok(self.put(&parse(session_id)?, state).await?) })
    }

    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let Ok(id) = parse(session_id) else {
                return Ok(());
            };
            Ok(self.closed(&id).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Identity, ManualClock, MokaStore};
    use ::rmcp::model::{ClientCapabilities, Implementation, InitializeRequestParams};

    fn state(name: &str) -> SessionState {
        SessionState::new(InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new(name, "1"),
        ))
    }

    fn name_of(state: &SessionState) -> String {
        state.initialize_params.client_info.name.clone()
    }

    #[test]
    fn encoding_round_trips_and_refuses_another_id() {
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let raw = encode(&a, &state("client")).unwrap();
        assert_eq!(name_of(&decode(&a, &raw).unwrap()), "client");
        assert!(
            decode(&b, &raw).is_none(),
            "a state is bound to its whole id"
        );
        assert!(decode(&a, b"v2 whatever").is_none());
        assert!(decode(&a, &raw[..20]).is_none());
        let huge = state(&"x".repeat(MAX_STATE_BYTES));
        assert!(encode(&a, &huge).is_none());
    }

    #[tokio::test]
    async fn in_memory_states_follow_their_sessions() {
        let clock = ManualClock::new(crate::Timestamp::from_millis(1_000_000));
        let config = Config::default().timeout(Duration::from_secs(60));
        let manager = SessionManager::with_clock(MokaStore::new(100), config, clock.clone());
        let states = SessionStateStore::in_memory(&manager);
        let rmcp: Arc<dyn RmcpSessionStore> = states.clone();
        let alice = Identity::new("alice", "Alice", ["reader"]);

        let (kept, deleted, idle) = (
            manager.create(&alice).await.unwrap(),
            manager.create(&alice).await.unwrap(),
            manager.create(&alice).await.unwrap(),
        );
        for (session, name) in [(&kept, "kept"), (&deleted, "deleted"), (&idle, "idle")] {
            let id = session.id().reveal();
            rmcp.store(&id, &state(name)).await.unwrap();
            assert_eq!(name_of(&rmcp.load(&id).await.unwrap().unwrap()), name);
        }
        assert!(rmcp.load("unknown").await.unwrap().is_none());
        assert!(rmcp.load("not a valid id").await.unwrap().is_none());

        // Ended: gone at once (the hook).
        manager.delete_any_owner(deleted.id()).await.unwrap();
        assert!(rmcp.load(&deleted.id().reveal()).await.unwrap().is_none());

        // rmcp closing its copy of a live session keeps the state.
        rmcp.delete(&kept.id().reveal()).await.unwrap();
        assert!(rmcp.load(&kept.id().reveal()).await.unwrap().is_some());

        // Once the session has expired, rmcp closing it removes the state.
        manager.refresh_any_owner(kept.id()).await.unwrap();
        clock.advance(Duration::from_secs(61));
        rmcp.delete(&idle.id().reveal()).await.unwrap();
        assert!(rmcp.load(&idle.id().reveal()).await.unwrap().is_none());
    }
}
