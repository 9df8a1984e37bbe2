//! [`MokaStore`]: the default, bounded, in-process store.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

use super::{CreateOutcome, RemovedSession, SessionStore};
use crate::{
    CapacityScope, Identity, IdentityLimitPolicy, Limits, Session, SessionId, StoreError, Timestamp,
};

/// Default capacity of a [`MokaStore`]: 1,000,000 live sessions.
pub const DEFAULT_CAPACITY: u64 = 1_000_000;

/// The default store: an in-process [moka](https://docs.rs/moka) cache.
///
/// - **Bounded**: never holds more than its capacity; a create beyond it (or
///   beyond [`Limits::max_sessions`], whichever is lower) fails with
///   [`StoreError::AtCapacity`] rather than silently evicting a live session.
/// - **Per-entry expiry**: each entry leaves memory soon after its own
///   session expires (idle timeout or deadline; at most an eighth of the
///   idle timeout later); reads never return an expired one.
/// - **Compact**: an entry is the 32-byte id plus a small record; identities
///   (name and roles) are interned, so a million sessions of a thousand users
///   hold a thousand copies of the names and role lists, not a million.
/// - The hot path (`touch`) is one hash lookup and one atomic store, and
///   returns a ready future.
///
/// Cloning shares the same sessions.
///
/// ```
/// use mcp_session::{Identity, Limits, MokaStore, Session, SessionId, SessionStore, Timestamp};
/// use std::time::Duration;
///
/// # tokio_test_block_on(async {
/// let store = MokaStore::new(10_000);
/// let now = Timestamp::from_millis(1_000);
/// let alice = Identity::new("alice", "Alice", ["reader"]);
/// let session = Session::new(SessionId::generate(), alice, now, Duration::from_secs(60), Duration::from_secs(3600));
/// store.create(&session, &Limits::default()).await.unwrap();
/// let seen = store.touch(session.id(), "alice", now).await.unwrap().unwrap();
/// assert_eq!(seen.identity_id(), "alice");
/// assert!(store.touch(session.id(), "mallory", now).await.unwrap().is_none());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MokaStore {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<SessionId, Arc<Record>>,
    capacity: u64,
    /// Live entries: incremented on create, decremented by the eviction
    /// listener. Only changes under `index`'s lock or in the listener.
    live: Arc<AtomicU64>,
    /// Which sessions each identity holds (for per-identity caps), and the
    /// interned identity they share.
    index: Mutex<HashMap<Box<str>, IdentitySessions>>,
    /// Removals reported by moka's eviction listener, applied to `index` the
    /// next time it is locked. The listener may run inside any cache call, so
    /// it must never take `index` itself (that could deadlock).
    removed: Arc<Mutex<Vec<(Identity, SessionId)>>>,
    /// A lower bound (ms) on the earliest logical expiry of any stored
    /// session: a sweep at the global cap cannot free anything before then.
    earliest_expiry: AtomicU64,
    /// Handles (feature `handles`): caches and caps of their own.
    #[cfg(feature = "handles")]
    handles: crate::handles::MemoryHandles,
}

struct IdentitySessions {
    identity: Identity,
    /// The identity's sessions, oldest first, each with the record the
    /// cache holds for it (the same allocation: touches update both). Lets a
    /// create at the per-identity cap tell live sessions from expired ones
    /// without a cache read per session.
    sessions: Vec<(SessionId, Arc<Record>)>,
}

/// What the cache stores per session; the id is the key.
struct Record {
    identity: Identity,
    created_at: Timestamp,
    deadline: Timestamp,
    idle_ms: u64,
    last_access_ms: AtomicU64,
}

impl Record {
    fn expires_at(&self) -> Timestamp {
        let last = self.last_access_ms.load(Ordering::Acquire);
        Timestamp::from_millis(last.saturating_add(self.idle_ms)).min(self.deadline)
    }

    fn to_session(&self, id: &SessionId) -> Session {
        Session::from_parts(
            id.clone(),
            self.identity.clone(),
            self.created_at,
            Timestamp::from_millis(self.last_access_ms.load(Ordering::Acquire)),
            Duration::from_millis(self.idle_ms),
            self.deadline,
        )
    }

    /// How long moka should keep the entry from now: the idle timeout, but no
    /// longer than the rest of the session's life. Relative durations keep
    /// this independent of the [`crate::Clock`] in use (the logical expiry
    /// check on every read is what is authoritative; this only frees memory).
    fn keep_for(&self) -> Duration {
        let last = Timestamp::from_millis(self.last_access_ms.load(Ordering::Acquire));
        Duration::from_millis(self.idle_ms).min(self.deadline.saturating_since(last))
    }

    /// Reports an entry that leaves because its session expired (the
    /// listener hears each removal once, whoever removed it): moka's timer
    /// (`Expired`), or a read, a sweep or a create that found it expired
    /// (`Explicit`, on an expired record). An explicit removal of a live
    /// session is a delete, eviction or revocation, which the manager
    /// reports itself. Judged on the system clock (metrics and logs only).
    fn report_if_expired(&self, id: &SessionId, cause: RemovalCause) {
        let expires = self.expires_at();
        if cause != RemovalCause::Expired && crate::Clock::now(&crate::SystemClock) < expires {
            return;
        }
        let reason = if expires >= self.deadline {
            crate::EndReason::Deadline
        } else {
            crate::EndReason::Expired
        };
        crate::observe::session_ended(
            "moka",
            id.digest(),
            reason,
            Some(expires.saturating_since(self.created_at)),
        );
    }

    /// How much longer than needed a read may schedule the entry to stay:
    /// an eighth of the idle timeout.
    fn slack(&self) -> Duration {
        Duration::from_millis(self.idle_ms / 8)
    }
}

struct RecordExpiry;

impl Expiry<SessionId, Arc<Record>> for RecordExpiry {
    fn expire_after_create(&self, _: &SessionId, v: &Arc<Record>, _: Instant) -> Option<Duration> {
        Some(v.keep_for())
    }

    fn expire_after_read(
        &self,
        _: &SessionId,
        v: &Arc<Record>,
        _: Instant,
        current: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        // A read is (almost always) a touch: the idle period restarts. Moving
        // moka's timer costs more than the lookup itself, so it is pushed
        // out with some slack and then left alone while it still covers the
        // session: a session read many times a second moves it once per
        // `slack`. The logical expiry check on every read stays exact; the
        // slack only delays when memory is freed.
        let wanted = v.keep_for();
        match current {
            Some(current) if current >= wanted => Some(current),
            _ => Some(wanted.saturating_add(v.slack())),
        }
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        v: &Arc<Record>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.keep_for())
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        MokaStore::new(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaStore")
            .field("capacity", &self.inner.capacity)
            .field("live", &self.inner.live.load(Ordering::Relaxed))
            .finish()
    }
}

impl MokaStore {
    /// A store holding at most `capacity` live sessions.
    pub fn new(capacity: u64) -> Self {
        let live = Arc::new(AtomicU64::new(0));
        let removed: Arc<Mutex<Vec<(Identity, SessionId)>>> = Arc::default();
        let (listener_live, listener_removed) = (live.clone(), removed.clone());
        // No moka `max_capacity`: we bound the count ourselves in `create`, so
        // moka never evicts a live session to admit another.
        let cache = Cache::builder()
            .expire_after(RecordExpiry)
            .eviction_listener(move |id: Arc<SessionId>, record: Arc<Record>, cause| {
                if cause == RemovalCause::Replaced {
                    return;
                }
                record.report_if_expired(&id, cause);
                listener_live.fetch_sub(1, Ordering::AcqRel);
                lock(&listener_removed).push((record.identity.clone(), (*id).clone()));
            })
            .build();
        MokaStore {
            inner: Arc::new(Inner {
                cache,
                capacity,
                live,
                index: Mutex::new(HashMap::new()),
                removed,
                earliest_expiry: AtomicU64::new(u64::MAX),
                #[cfg(feature = "handles")]
                handles: crate::handles::MemoryHandles::default(),
            }),
        }
    }

    /// The store's handles (feature `handles`): kept apart from its
    /// sessions, in caches of their own; neither counts against the other's
    /// caps.
    #[cfg(feature = "handles")]
    pub fn handles(&self) -> &crate::handles::MemoryHandles {
        &self.inner.handles
    }

    /// The most sessions this store holds.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Live sessions (those expired but not yet swept may still count until
    /// the next [`MokaStore::run_pending_tasks`]).
    pub fn len(&self) -> u64 {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweeps expired entries now (moka otherwise does it during later calls).
    pub fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks();
        let mut index = lock(&self.inner.index);
        self.apply_removals(&mut index);
    }

    /// Number of identities that hold at least one session.
    pub fn identity_count(&self) -> usize {
        let mut index = lock(&self.inner.index);
        self.apply_removals(&mut index);
        index.len()
    }

    fn apply_removals(&self, index: &mut HashMap<Box<str>, IdentitySessions>) {
        let removed = std::mem::take(&mut *lock(&self.inner.removed));
        for (identity, id) in removed {
            if let Some(entry) = index.get_mut(identity.id()) {
                entry.sessions.retain(|(held, _)| *held != id);
                if entry.sessions.is_empty() {
                    index.remove(identity.id());
                }
            }
        }
    }

    fn live_record(&self, id: &SessionId, now: Timestamp) -> Option<Arc<Record>> {
        let record = self.inner.cache.get(id)?;
        if now >= record.expires_at() {
            self.remove(id);
            return None;
        }
        Some(record)
    }

    /// Removes an entry under moka's per-key lock, the same lock `update`
    /// takes, so an update that read the entry before a removal can never
    /// write it back afterwards (a plain `Cache::remove` does not take it).
    fn remove(&self, id: &SessionId) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let result =
            self.inner
                .cache
                .entry(id.clone())
                .and_compute_with(|existing| match existing {
                    Some(_) => Op::Remove,
                    None => Op::Nop,
                });
        matches!(result, CompResult::Removed(_))
    }

    /// Points the identity index at a session's new record (after an
    /// update), so the index keeps sharing the cache's record. Taken after
    /// the cache's per-key lock is released: `create` takes the two in the
    /// other order.
    fn reindex(&self, id: &SessionId, record: &Arc<Record>) {
        let mut index = lock(&self.inner.index);
        self.apply_removals(&mut index);
        if let Some(entry) = index.get_mut(record.identity.id()) {
            if let Some((_, held)) = entry.sessions.iter_mut().find(|(held, _)| held == id) {
                *held = record.clone();
            }
        }
    }

    fn create_now(&self, session: &Session, limits: &Limits) -> Result<CreateOutcome, StoreError> {
        let inner = &*self.inner;
        let mut index = lock(&inner.index);
        self.apply_removals(&mut index);
        // Only a live session makes the id taken: one that is logically
        // expired but still in memory is replaced below.
        if inner.cache.contains_key(session.id())
            && inner
                .cache
                .get(session.id())
                .is_some_and(|r| session.created_at() < r.expires_at())
        {
            return Err(StoreError::AlreadyExists);
        }

        let mut outcome = CreateOutcome::default();
        let identity_id = session.identity_id();
        // Per-identity cap.
        if let Some(entry) = index.get_mut(identity_id) {
            let max = limits.max_sessions_per_identity as usize;
            // At the cap, drop entries whose sessions expired but were not
            // swept yet (below the cap that changes nothing: sessions gone
            // from the cache leave the list through `apply_removals`). The
            // index shares each record with the cache, so it is asked only
            // about a session its record calls expired: after an `update`
            // the cache holds a newer record.
            if entry.sessions.len() >= max {
                let now = session.created_at();
                entry.sessions.retain_mut(|(id, record)| {
                    if now < record.expires_at() {
                        return true;
                    }
                    match inner.cache.get(id) {
                        Some(current) if now < current.expires_at() => {
                            *record = current;
                            true
                        }
                        _ => false,
                    }
                });
            }
            if entry.sessions.len() >= max {
                match limits.per_identity_policy {
                    IdentityLimitPolicy::Reject => {
                        return Err(StoreError::AtCapacity(CapacityScope::Identity))
                    }
                    IdentityLimitPolicy::EvictOldest => {
                        let excess = entry.sessions.len() + 1 - max.max(1);
                        let evicted: Vec<_> =
                            entry.sessions.drain(..excess).map(|(id, _)| id).collect();
                        for id in evicted {
                            self.remove(&id);
                            outcome.evicted.push(id.into());
                        }
                    }
                }
            }
        }
        // Global cap (ours, so moka never has to evict a live session).
        let max_live = limits.max_sessions.min(inner.capacity);
        if inner.live.load(Ordering::Acquire) >= max_live {
            inner.cache.run_pending_tasks();
            if inner.live.load(Ordering::Acquire) >= max_live {
                self.sweep_expired(session.created_at());
            }
            if inner.live.load(Ordering::Acquire) >= max_live {
                return Err(StoreError::AtCapacity(CapacityScope::Global));
            }
        }

        // Intern the identity: sessions of one identity share name and roles.
        // (A key is allocated only for an identity's first session.)
        let entry = match index.get_mut(identity_id) {
            Some(entry) => entry,
            None => index
                .entry(identity_id.into())
                .or_insert_with(|| IdentitySessions {
                    identity: session.identity().clone(),
                    sessions: Vec::new(),
                }),
        };
        if !entry.identity.same_as(session.identity()) {
            entry.identity = session.identity().clone();
        }
        let record = Arc::new(Record {
            identity: entry.identity.clone(),
            created_at: session.created_at(),
            deadline: session.deadline(),
            idle_ms: duration_millis(session.idle_timeout()),
            last_access_ms: AtomicU64::new(session.last_access().as_millis()),
        });
        // A plain insert cannot overwrite a live session: the id was absent
        // above, and only creates (serialized by the index lock) ever add an
        // entry, since `update` only replaces present ones. (moka's
        // `entry().or_insert_with` would check again, under a per-key lock of
        // its own, at 2.5 times the cost.) An expired entry of the same id
        // may still be in memory (an inner server that reuses ids): remove it
        // first, so the listener sees a removal, not a replacement, and the
        // count and the index stay right.
        inner.cache.invalidate(session.id());
        inner.cache.insert(session.id().clone(), record.clone());
        inner.live.fetch_add(1, Ordering::AcqRel);
        inner
            .earliest_expiry
            .fetch_min(session.expires_at().as_millis(), Ordering::AcqRel);
        entry.sessions.push((session.id().clone(), record));
        Ok(outcome)
    }
}

impl MokaStore {
    /// Removes every session that is logically expired at `now`. moka drops
    /// entries by its own (real-time) timers, so a session can count
    /// against the global cap after its logical expiry: when its deadline
    /// falls inside its last idle period, within moka's timer granularity,
    /// or under a [`crate::Clock`] other than the system's. Called under the
    /// index lock, only at the global cap, and only when some session may
    /// have expired since the last sweep, so a flood of refused creates does
    /// not rescan the store.
    fn sweep_expired(&self, now: Timestamp) {
        let inner = &*self.inner;
        let hint = inner.earliest_expiry.load(Ordering::Acquire);
        if now.as_millis() < hint {
            return;
        }
        let mut earliest = u64::MAX;
        let mut expired = Vec::new();
        // Iterating does not reset moka's timers (unlike `get`).
        for (id, record) in inner.cache.iter() {
            let expires = record.expires_at();
            if now >= expires {
                expired.push(id);
            } else {
                earliest = earliest.min(expires.as_millis());
            }
        }
        // An `update` that lowered the bound meanwhile wins (it is lower).
        let _ = inner.earliest_expiry.compare_exchange(
            hint,
            earliest,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        for id in expired {
            self.remove(&id);
        }
    }
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Locks a mutex, recovering from poisoning: the guarded data is only ever
/// left consistent (no panicking code runs while it is held).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionStore for MokaStore {
    fn name(&self) -> &'static str {
        "moka"
    }

    type TouchFuture = Ready<Result<Option<Session>, StoreError>>;

    fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> impl std::future::Future<Output = Result<CreateOutcome, StoreError>> + Send {
        ready(self.create_now(session, limits))
    }

    fn get(
        &self,
        id: &SessionId,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Option<Session>, StoreError>> + Send {
        ready(Ok(self.live_record(id, now).map(|r| r.to_session(id))))
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture {
        let session = self.live_record(id, now).and_then(|record| {
            if record.identity.id() != owner {
                return None;
            }
            // Most touches of a busy session fall in the same millisecond:
            // skip the read-modify-write then.
            let now = now.as_millis();
            if record.last_access_ms.load(Ordering::Acquire) < now {
                record.last_access_ms.fetch_max(now, Ordering::AcqRel);
            }
            Some(record.to_session(id))
        });
        ready(Ok(session))
    }

    fn update(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        use moka::ops::compute::Op;
        let mut updated = None;
        let mut expires = u64::MAX;
        let _ = self
            .inner
            .cache
            .entry(session.id().clone())
            .and_compute_with(|existing| match existing {
                // Live, and still the same principal's: an update never
                // moves a session to another identity.
                Some(entry)
                    if now < entry.value().expires_at()
                        && entry.value().identity.id() == session.identity_id() =>
                {
                    let old = entry.value();
                    expires = session.expires_at().as_millis();
                    let record = Arc::new(Record {
                        // Keep the interned identity if nothing changed.
                        identity: if old.identity.same_as(session.identity()) {
                            old.identity.clone()
                        } else {
                            session.identity().clone()
                        },
                        created_at: session.created_at(),
                        deadline: session.deadline(),
                        idle_ms: duration_millis(session.idle_timeout()),
                        last_access_ms: AtomicU64::new(session.last_access().as_millis()),
                    });
                    updated = Some(record.clone());
                    Op::Put(record)
                }
                _ => Op::Nop,
            });
        self.inner
            .earliest_expiry
            .fetch_min(expires, Ordering::AcqRel);
        if let Some(record) = &updated {
            self.reindex(session.id(), record);
        }
        ready(Ok(updated.is_some()))
    }

    fn delete(
        &self,
        id: &SessionId,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        ready(Ok(self.remove(id)))
    }

    fn delete_all_of(
        &self,
        identity_id: &str,
    ) -> impl std::future::Future<Output = Result<Vec<RemovedSession>, StoreError>> + Send {
        let held: Vec<SessionId> = {
            let mut index = lock(&self.inner.index);
            self.apply_removals(&mut index);
            index.get(identity_id).map_or_else(Vec::new, |entry| {
                entry.sessions.iter().map(|(id, _)| id.clone()).collect()
            })
        };
        // Each removal reaches the index through the eviction listener.
        let removed = held
            .into_iter()
            .filter(|id| self.remove(id))
            .map(RemovedSession::from)
            .collect();
        ready(Ok(removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adopted(identity: &Identity, id: &str, now: Timestamp) -> Session {
        let idle = Duration::from_secs(60);
        let id = SessionId::parse_adopted(id).unwrap();
        Session::new(id, identity.clone(), now, idle, idle * 10)
    }

    /// An inner server that reuses an id: once the first session expired
    /// (logically; moka still holds it), the id can be bound again, to
    /// anyone, and the live count and the identity index stay exact.
    #[test]
    fn an_expired_id_can_be_created_again() {
        let store = MokaStore::new(100);
        let limits = Limits::default();
        let (alice, bob) = (
            Identity::new("alice", "Alice", ["reader"]),
            Identity::new("bob", "Bob", ["reader"]),
        );
        let t0 = Timestamp::from_millis(1_000_000);
        let first = adopted(&alice, "reused-id", t0);
        store.create_now(&first, &limits).unwrap();
        // Live: taken.
        let again = adopted(&bob, "reused-id", t0 + Duration::from_secs(30));
        assert!(matches!(
            store.create_now(&again, &limits),
            Err(StoreError::AlreadyExists)
        ));
        // Expired: free again.
        let later = adopted(&bob, "reused-id", t0 + Duration::from_secs(61));
        store.create_now(&later, &limits).unwrap();
        store.run_pending_tasks();
        assert_eq!(store.len(), 1);
        assert_eq!(store.identity_count(), 1, "alice's entry left the index");
        let seen = store.live_record(later.id(), later.created_at()).unwrap();
        assert_eq!(seen.identity.id(), "bob");
    }
}
