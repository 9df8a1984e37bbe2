//! Principal-bound handles for sessionless (2026-07-28) MCP (feature
//! `handles`): cross-call state that a tool mints, returns to the client as
//! an ordinary string argument, and gets back on later calls.
//!
//! The 2026-07-28 revision has no protocol session. State that spans tool
//! calls travels as a *handle* the server minted (SEP-2567): a shopping
//! basket, a draft, a notes buffer. [`Handles`] stores such state, typed
//! (`T: Serialize + DeserializeOwned`), in the same backends as the sessions
//! ([`MokaStore`](crate::MokaStore) in memory; `RedisStore`, standalone or
//! Cluster, with feature `redis`), and applies the specification's
//! guidance for you:
//!
//! - **Possession is not authentication.** Every call passes the
//!   authenticated caller ([`Identity`]); a handle is bound server-side to
//!   the identity that created it, and any other principal gets exactly the
//!   error an unknown handle gets ([`HandleErrorReason::NotFound`], same
//!   message). Authenticate every request before it reaches a tool; a
//!   handle is never a credential.
//! - **Unguessable.** 32 bytes from the operating system's CSPRNG, shown as
//!   `h_` and 64 lowercase hex characters. A handle never parses as a
//!   session id, nor a session id as a handle, and they live in separate
//!   namespaces: a handle never works as `Mcp-Session-Id`.
//! - **Bounded life.** A sliding idle timeout plus an absolute lifetime
//!   ([`HandleConfig`]). Say so in the description of the tool that creates
//!   handles. The owner of a handle that expired gets
//!   [`HandleErrorReason::Expired`] ("notes handle h_… has expired") for
//!   [`HandleConfig::expired_grace`] afterwards, then `NotFound`.
//! - **Bounded number.** Caps per identity and in total, for each kind,
//!   separate from the session caps: minting handles never evicts or
//!   refuses a session, and sessions never use up handles.
//! - **Atomic updates.** [`Handles::update`] is a compare-and-set on a
//!   version: concurrent updates of one handle are never lost.
//! - **Kinds.** A [`Handles`] serves one kind (`"notes"`, `"basket"`); a
//!   handle of one kind is unknown to every other kind.
//!
//! With rmcp, the `rmcp::OwnHandles` extractor (features `rmcp` and
//! `handles`) hands a `#[tool]` the caller and the store in one parameter,
//! and turns these errors into tool errors a model can act on.
//!
//! ```
//! use mcp_session::handles::{HandleConfig, HandleErrorReason, Handles};
//! use mcp_session::{Identity, MokaStore};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = MokaStore::default(); // the same store the sessions use
//! let config = HandleConfig::default().idle_timeout(Duration::from_secs(15 * 60));
//! let notes: Handles<Vec<String>> = Handles::new(store, "notes", config).create_tool("notes_create");
//!
//! let alice = Identity::new("alice", "Alice", ["user"]);
//! let bob = Identity::new("bob", "Bob", ["user"]);
//!
//! let handle = notes.create(&alice, &Vec::new()).await.unwrap();
//! let text = handle.reveal(); // what the tool returns: "h_" + 64 hex characters
//! notes.update(&alice, &text, |lines| lines.push("first".into())).await.unwrap();
//! assert_eq!(notes.get(&alice, &text).await.unwrap(), ["first"]);
//!
//! // Bob holds the string, but not the handle: the same answer as a made-up one.
//! let stolen = notes.get(&bob, &text).await.unwrap_err();
//! let made_up = notes.get(&bob, &mcp_session::handles::Handle::generate().reveal()).await.unwrap_err();
//! assert_eq!(stolen.reason(), HandleErrorReason::NotFound);
//! assert_eq!(made_up.reason(), HandleErrorReason::NotFound);
//! # });
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Clock, Identity, SessionId, StoreError, SystemClock, Timestamp};

mod any;
mod error;
mod layer;
mod memory;
mod store;

pub use error::{HandleError, HandleErrorReason};
pub use layer::{HandlesLayer, HandlesService};
pub use memory::{MemoryHandles, DEFAULT_MAX_NONCES};
pub use store::{
    HandleInfo, HandleKey, HandleLimits, HandleStore, Lookup, NewHandle, Replaced, StoredHandle,
};

/// Random bytes in a handle.
pub const HANDLE_BYTES: usize = 32;
/// What every handle starts with (a session id never does: it is hex only).
pub const HANDLE_PREFIX: &str = "h_";
/// Length of a handle's text: the prefix and 64 hex characters.
pub const HANDLE_LEN: usize = HANDLE_PREFIX.len() + 2 * HANDLE_BYTES;

/// Default idle timeout of a handle: 30 minutes, like sessions.
pub const DEFAULT_HANDLE_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default absolute lifetime of a handle: 24 hours.
pub const DEFAULT_HANDLE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Default cap on the live handles of one kind per identity: 100.
pub const DEFAULT_HANDLES_PER_IDENTITY: u64 = 100;
/// Default cap on the live handles of one kind in a store: 100,000.
pub const DEFAULT_MAX_HANDLES: u64 = 100_000;
/// Default largest serialized payload: 64 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// How many times [`Handles::update`] retries after a concurrent update won.
const UPDATE_ATTEMPTS: usize = 64;

/// A server-minted handle: 32 random bytes, `h_` + 64 lowercase hex
/// characters as text.
///
/// `Debug` and `Display` show only a prefix (`h_1a2b3c4d…`); the whole
/// string, which the client must send back, is [`Handle::reveal`].
///
/// ```
/// use mcp_session::handles::Handle;
/// use mcp_session::SessionId;
///
/// let handle = Handle::generate();
/// let text = handle.reveal();
/// assert!(text.starts_with("h_") && text.len() == 66);
/// assert_eq!(Handle::parse(&text).unwrap(), handle);
/// assert!(!format!("{handle}").contains(&text));
/// // A handle is never a session id, and a session id never a handle.
/// assert!(SessionId::parse(&text).is_err());
/// assert!(Handle::parse(&SessionId::generate().reveal()).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Handle([u8; HANDLE_BYTES]);

/// A string that is not a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidHandle;

impl fmt::Display for InvalidHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a handle (expected h_ and 64 lowercase hex characters)")
    }
}

impl std::error::Error for InvalidHandle {}

impl Handle {
    /// A fresh handle from the operating system's CSPRNG (as
    /// [`SessionId::generate`]).
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes at all.
    pub fn generate() -> Self {
        let mut bytes = [0u8; HANDLE_BYTES];
        if let Err(error) = getrandom::fill(&mut bytes) {
            panic!("the operating system's random number generator failed: {error}");
        }
        Handle(bytes)
    }

    /// Parses a handle strictly: `h_` and exactly 64 lowercase hex characters.
    pub fn parse(text: &str) -> Result<Self, InvalidHandle> {
        let hex = text.strip_prefix(HANDLE_PREFIX).ok_or(InvalidHandle)?;
        // The same strict, branch-free hex decoder as session ids.
        let id = SessionId::parse(hex).map_err(|_| InvalidHandle)?;
        id.minted_bytes().map(|b| Handle(*b)).ok_or(InvalidHandle)
    }

    /// The random bytes.
    pub fn as_bytes(&self) -> &[u8; HANDLE_BYTES] {
        &self.0
    }

    /// The whole handle as text, to return to the client.
    pub fn reveal(&self) -> String {
        let mut text = String::with_capacity(HANDLE_LEN);
        text.push_str(HANDLE_PREFIX);
        text.push_str(&hex::encode(self.0));
        text
    }

    /// A 16-byte SHA-256 digest of the handle: what store indexes and key
    /// names hold instead of the handle.
    #[cfg(feature = "redis")]
    pub(crate) fn digest_hex(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(b"mcp-session handle\0")
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..16])
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({self})")
    }
}

/// Shows `h_` and the first 8 hex characters, never the whole handle.
impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HANDLE_PREFIX}{}…", hex::encode(&self.0[..4]))
    }
}

/// Lifetimes and caps of the handles of one [`Handles`].
///
/// ```
/// use mcp_session::handles::HandleConfig;
/// use std::time::Duration;
///
/// let config = HandleConfig::default()
///     .idle_timeout(Duration::from_secs(600))
///     .max_lifetime(Duration::from_secs(3600))
///     .max_per_identity(10);
/// assert_eq!(config.max_per_identity, 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandleConfig {
    /// A handle not used for this long expires. Every successful `get`,
    /// `update` slides it. Default [`DEFAULT_HANDLE_IDLE`].
    pub idle_timeout: Duration,
    /// A handle expires this long after its creation, however much it is
    /// used. Default [`DEFAULT_HANDLE_LIFETIME`].
    pub max_lifetime: Duration,
    /// How long the store remembers an expired handle, so that its owner
    /// gets [`HandleErrorReason::Expired`] rather than `NotFound`. Expired
    /// handles keep neither a cap slot nor (beyond this) memory. Default:
    /// the idle timeout.
    pub expired_grace: Duration,
    /// Most live handles of this kind one identity holds; one more is
    /// refused ([`CapacityScope::Identity`](crate::CapacityScope::Identity)). Default
    /// [`DEFAULT_HANDLES_PER_IDENTITY`].
    pub max_per_identity: u64,
    /// Most live handles of this kind in the store ([`CapacityScope::Global`](crate::CapacityScope::Global)).
    /// Default [`DEFAULT_MAX_HANDLES`].
    pub max_handles: u64,
    /// Largest serialized (JSON) payload; a larger create or update is
    /// refused. Default [`DEFAULT_MAX_PAYLOAD`].
    pub max_payload_bytes: usize,
}

impl Default for HandleConfig {
    fn default() -> Self {
        HandleConfig {
            idle_timeout: DEFAULT_HANDLE_IDLE,
            max_lifetime: DEFAULT_HANDLE_LIFETIME,
            expired_grace: DEFAULT_HANDLE_IDLE,
            max_per_identity: DEFAULT_HANDLES_PER_IDENTITY,
            max_handles: DEFAULT_MAX_HANDLES,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl HandleConfig {
    /// Sets the idle timeout (and the expired grace, if it was the old
    /// idle timeout).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        if self.expired_grace == self.idle_timeout {
            self.expired_grace = timeout;
        }
        self.idle_timeout = timeout;
        self
    }

    /// Sets the absolute lifetime.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Sets how long expired handles are remembered as expired.
    pub fn expired_grace(mut self, grace: Duration) -> Self {
        self.expired_grace = grace;
        self
    }

    /// Sets the per-identity cap.
    pub fn max_per_identity(mut self, max: u64) -> Self {
        self.max_per_identity = max;
        self
    }

    /// Sets the store-wide cap.
    pub fn max_handles(mut self, max: u64) -> Self {
        self.max_handles = max;
        self
    }

    /// Sets the largest payload.
    pub fn max_payload_bytes(mut self, max: usize) -> Self {
        self.max_payload_bytes = max;
        self
    }

    fn limits(&self) -> HandleLimits {
        HandleLimits {
            max_per_identity: self.max_per_identity,
            max_handles: self.max_handles,
        }
    }
}

/// Typed, principal-bound handles of one kind over a [`HandleStore`]. See
/// the [module docs](self).
///
/// Cheap to clone (clones share the store and settings).
pub struct Handles<T, S = crate::MokaStore> {
    inner: Arc<Inner<S>>,
    _payload: PhantomData<fn() -> T>,
}

struct Inner<S> {
    store: S,
    kind: Arc<str>,
    create_tool: Option<Arc<str>>,
    config: HandleConfig,
    clock: Arc<dyn Clock>,
}

impl<T, S> Clone for Handles<T, S> {
    fn clone(&self) -> Self {
        Handles {
            inner: self.inner.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T, S> fmt::Debug for Handles<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handles")
            .field("kind", &self.inner.kind)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<T, S> Handles<T, S>
where
    T: Serialize + DeserializeOwned,
    S: HandleStore,
{
    /// Handles of `kind` (a short name the errors use: `"notes"`) in
    /// `store`, with the system clock.
    pub fn new(store: S, kind: impl AsRef<str>, config: HandleConfig) -> Self {
        Handles {
            inner: Arc::new(Inner {
                store,
                kind: Arc::from(kind.as_ref()),
                create_tool: None,
                config,
                clock: Arc::new(SystemClock),
            }),
            _payload: PhantomData,
        }
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner<S>)) -> Self
    where
        S: Clone,
    {
        let inner = &*self.inner;
        let mut copy = Inner {
            store: inner.store.clone(),
            kind: inner.kind.clone(),
            create_tool: inner.create_tool.clone(),
            config: inner.config.clone(),
            clock: inner.clock.clone(),
        };
        f(&mut copy);
        Handles {
            inner: Arc::new(copy),
            _payload: PhantomData,
        }
    }

    /// Names the tool that creates handles of this kind, so that errors
    /// tell the model what to do ("create a new one with notes_create").
    pub fn create_tool(self, tool: impl AsRef<str>) -> Self
    where
        S: Clone,
    {
        let tool: Arc<str> = Arc::from(tool.as_ref());
        self.map_inner(|inner| inner.create_tool = Some(tool))
    }

    /// The same handles read with another clock (tests use
    /// [`crate::ManualClock`]).
    pub fn clock(self, clock: impl Clock) -> Self
    where
        S: Clone,
    {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        self.map_inner(|inner| inner.clock = clock)
    }

    /// The kind of these handles.
    pub fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The settings.
    pub fn config(&self) -> &HandleConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    fn error(&self, reason: HandleErrorReason, handle: Option<&Handle>) -> HandleError {
        HandleError::new(
            reason,
            self.inner.kind.clone(),
            handle.cloned(),
            self.inner.create_tool.clone(),
        )
    }

    fn store_error(&self, error: StoreError, handle: Option<&Handle>) -> HandleError {
        let reason = match error {
            StoreError::AtCapacity(scope) => HandleErrorReason::AtCapacity(scope),
            _ => HandleErrorReason::Store,
        };
        self.error(reason, handle).with_store_error(error)
    }

    fn encode(&self, value: &T, handle: Option<&Handle>) -> Result<Vec<u8>, HandleError> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            self.error(HandleErrorReason::Payload, handle)
                .with_json_error(e)
        })?;
        if bytes.len() > self.inner.config.max_payload_bytes {
            return Err(self.error(HandleErrorReason::TooLarge, handle));
        }
        Ok(bytes)
    }

    fn parse(&self, handle: &str) -> Result<Handle, HandleError> {
        // A malformed string is nobody's handle: the same answer as an
        // unknown one (it may be a session id sent by mistake).
        Handle::parse(handle).map_err(|_| self.error(HandleErrorReason::NotFound, None))
    }

    fn key<'a>(&'a self, caller: &'a Identity, handle: &'a Handle) -> HandleKey<'a> {
        HandleKey {
            handle,
            owner: caller.id(),
            kind: &self.inner.kind,
        }
    }

    /// Mints a handle bound to `caller`, holding `value`.
    pub async fn create(&self, caller: &Identity, value: &T) -> Result<Handle, HandleError> {
        let payload = self.encode(value, None)?;
        let config = &self.inner.config;
        let now = self.inner.clock.now();
        let handle = Handle::generate();
        let new = NewHandle {
            key: self.key(caller, &handle),
            payload: &payload,
            created_at: now,
            idle_timeout: config.idle_timeout,
            deadline: now + config.max_lifetime,
            grace: config.expired_grace,
        };
        self.inner
            .store
            .create_handle(&new, &config.limits())
            .await
            .map_err(|e| self.store_error(e, None))?;
        Ok(handle)
    }

    async fn open(&self, caller: &Identity, handle: &Handle) -> Result<StoredHandle, HandleError> {
        let now = self.inner.clock.now();
        match self
            .inner
            .store
            .open_handle(&self.key(caller, handle), now)
            .await
        {
            Ok(Lookup::Live(stored)) => Ok(stored),
            Ok(Lookup::Expired) => Err(self.error(HandleErrorReason::Expired, Some(handle))),
            Ok(Lookup::Missing) => Err(self.error(HandleErrorReason::NotFound, Some(handle))),
            Err(e) => Err(self.store_error(e, Some(handle))),
        }
    }

    fn decode(&self, stored: &StoredHandle, handle: &Handle) -> Result<T, HandleError> {
        serde_json::from_slice(&stored.payload).map_err(|e| {
            self.error(HandleErrorReason::Payload, Some(handle))
                .with_json_error(e)
        })
    }

    /// The value of `caller`'s handle (the string the client sent), sliding
    /// its idle expiry. Another principal's handle, an unknown or malformed
    /// one: [`HandleErrorReason::NotFound`]; the caller's own expired one:
    /// [`HandleErrorReason::Expired`].
    pub async fn get(&self, caller: &Identity, handle: &str) -> Result<T, HandleError> {
        let handle = self.parse(handle)?;
        let stored = self.open(caller, &handle).await?;
        self.decode(&stored, &handle)
    }

    /// Changes the value of `caller`'s handle with `change` and stores it,
    /// atomically: a compare-and-set on the stored version, retried when a
    /// concurrent update won (so `change` may run more than once; keep it
    /// free of side effects). Returns what `change` returned on the run
    /// that was stored. Errors as [`Handles::get`], plus
    /// [`HandleErrorReason::Busy`] after 64 lost races and
    /// [`HandleErrorReason::TooLarge`].
    pub async fn update<R>(
        &self,
        caller: &Identity,
        handle: &str,
        mut change: impl FnMut(&mut T) -> R,
    ) -> Result<R, HandleError> {
        let handle = self.parse(handle)?;
        let key = self.key(caller, &handle);
        for _ in 0..UPDATE_ATTEMPTS {
            let stored = self.open(caller, &handle).await?;
            let mut value = self.decode(&stored, &handle)?;
            let result = change(&mut value);
            let payload = self.encode(&value, Some(&handle))?;
            let now = self.inner.clock.now();
            let replaced = self
                .inner
                .store
                .replace_handle(&key, stored.version, &payload, now)
                .await
                .map_err(|e| self.store_error(e, Some(&handle)))?;
            match replaced {
                Replaced::Written => return Ok(result),
                Replaced::Stale => tokio::task::yield_now().await,
                Replaced::Expired => {
                    return Err(self.error(HandleErrorReason::Expired, Some(&handle)))
                }
                Replaced::Missing => {
                    return Err(self.error(HandleErrorReason::NotFound, Some(&handle)))
                }
            }
        }
        Err(self.error(HandleErrorReason::Busy, Some(&handle)))
    }

    /// Destroys `caller`'s handle. Errors as [`Handles::get`] (deleting an
    /// expired handle reports it expired, and forgets it).
    pub async fn delete(&self, caller: &Identity, handle: &str) -> Result<(), HandleError> {
        let handle = self.parse(handle)?;
        let now = self.inner.clock.now();
        match self
            .inner
            .store
            .delete_handle(&self.key(caller, &handle), now)
            .await
        {
            Ok(Lookup::Live(_)) => Ok(()),
            Ok(Lookup::Expired) => Err(self.error(HandleErrorReason::Expired, Some(&handle))),
            Ok(Lookup::Missing) => Err(self.error(HandleErrorReason::NotFound, Some(&handle))),
            Err(e) => Err(self.store_error(e, Some(&handle))),
        }
    }

    /// `caller`'s live handles of this kind, oldest first (nobody else's).
    pub async fn list(&self, caller: &Identity) -> Result<Vec<HandleInfo>, HandleError> {
        let now = self.inner.clock.now();
        let mut list = self
            .inner
            .store
            .list_handles(caller.id(), &self.inner.kind, now)
            .await
            .map_err(|e| self.store_error(e, None))?;
        list.sort_by_key(|info| info.created_at);
        Ok(list)
    }
}

/// Milliseconds of a duration, saturating.
#[cfg(feature = "redis")]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The logical expiry of a handle.
pub(crate) fn expires_at(last_access: Timestamp, idle: Duration, deadline: Timestamp) -> Timestamp {
    (last_access + idle).min(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_session_ids_never_parse_as_each_other() {
        for _ in 0..1000 {
            let handle = Handle::generate();
            assert!(SessionId::parse(&handle.reveal()).is_err());
            let id = SessionId::generate();
            assert!(Handle::parse(&id.reveal()).is_err());
        }
        assert!(Handle::parse("h_").is_err());
        assert!(Handle::parse(&format!("h_{}", "A".repeat(64))).is_err());
        assert!(Handle::parse(&format!("H_{}", "a".repeat(64))).is_err());
        assert!(Handle::parse(&format!("h_{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn shown_handles_are_redacted() {
        let handle = Handle::generate();
        let text = handle.reveal();
        for shown in [format!("{handle}"), format!("{handle:?}")] {
            assert!(!shown.contains(&text[2..]));
            assert!(shown.contains(&text[..10]));
        }
    }
}
