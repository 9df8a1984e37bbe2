//! Handles in process memory: [`MemoryHandles`], which every
//! [`MokaStore`] carries next to (never among) its sessions.

use std::collections::HashMap;
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

use super::store::{
    HandleInfo, HandleKey, HandleLimits, HandleStore, Lookup, NewHandle, Replaced, StoredHandle,
};
use super::{expires_at, Handle, HANDLE_BYTES};
use crate::{CapacityScope, MokaStore, StoreError, Timestamp};

/// Default bound on the single-use records (nonces) a [`MemoryHandles`]
/// keeps: 1,000,000. A claim beyond it fails closed.
pub const DEFAULT_MAX_NONCES: u64 = 1_000_000;

/// Handles held in process memory, in moka caches of their own (separate
/// from any sessions), with per-entry expiry: a record leaves memory once
/// its grace after expiry has passed. Each record has its own lock, under
/// which [`HandleStore::replace_handle`] compares and sets.
///
/// Every [`MokaStore`] carries one ([`MokaStore::handles`]); a
/// `MokaStore` is a [`HandleStore`] through it. Cloning shares the handles.
#[derive(Clone)]
pub struct MemoryHandles {
    inner: Arc<Inner>,
}

/// Records that left the cache: their list's key and their handle.
type Removals = Arc<Mutex<Vec<(Box<str>, [u8; HANDLE_BYTES])>>>;

struct Inner {
    records: Cache<[u8; HANDLE_BYTES], Arc<Record>>,
    /// Handles per (kind, owner), for caps and lists; entries leave when
    /// their record leaves the cache (through `removed`) or once found
    /// expired by a create at a cap.
    index: Mutex<Index>,
    /// Removals reported by the eviction listener, applied when `index` is
    /// next locked (the listener must never take `index`: it may run inside
    /// any cache call).
    removed: Removals,
    nonces: Cache<[u8; 16], Duration>,
    max_nonces: u64,
}

#[derive(Default)]
struct Index {
    /// `kind \0 owner` → handles, oldest first.
    lists: HashMap<Box<str>, Vec<[u8; HANDLE_BYTES]>>,
    /// Per kind: entries in `lists`, and a lower bound (ms) on their
    /// earliest expiry (a recount cannot free anything before then).
    kinds: HashMap<Box<str>, KindCount>,
}

struct KindCount {
    entries: u64,
    earliest_expiry: u64,
}

struct Record {
    owner: Box<str>,
    kind: Box<str>,
    created_at: Timestamp,
    idle: Duration,
    deadline: Timestamp,
    grace: Duration,
    last_access_ms: AtomicU64,
    state: Mutex<State>,
}

struct State {
    version: u64,
    payload: Arc<[u8]>,
}

impl Record {
    fn index_key(&self) -> Box<str> {
        index_key(&self.kind, &self.owner)
    }

    fn expires_at(&self) -> Timestamp {
        let last = Timestamp::from_millis(self.last_access_ms.load(Ordering::Acquire));
        expires_at(last, self.idle, self.deadline)
    }

    fn belongs_to(&self, key: &HandleKey<'_>) -> bool {
        *self.owner == *key.owner && *self.kind == *key.kind
    }

    /// How long moka keeps the record from its last access: until its
    /// expiry plus the grace (relative, so independent of the clock in use;
    /// the logical check on every read decides).
    fn keep_for(&self) -> Duration {
        let last = Timestamp::from_millis(self.last_access_ms.load(Ordering::Acquire));
        self.expires_at()
            .saturating_since(last)
            .saturating_add(self.grace)
    }

    fn slide(&self, now: Timestamp) {
        self.last_access_ms
            .fetch_max(now.as_millis(), Ordering::AcqRel);
    }
}

fn index_key(kind: &str, owner: &str) -> Box<str> {
    let mut key = String::with_capacity(kind.len() + 1 + owner.len());
    key.push_str(kind);
    key.push('\0');
    key.push_str(owner);
    key.into()
}

struct RecordExpiry;

impl Expiry<[u8; HANDLE_BYTES], Arc<Record>> for RecordExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; HANDLE_BYTES],
        v: &Arc<Record>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.keep_for())
    }

    fn expire_after_read(
        &self,
        _: &[u8; HANDLE_BYTES],
        v: &Arc<Record>,
        _: Instant,
        current: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        // Called before a read slides the record: keep the longer of the
        // two, the next read moves it on.
        Some(current.map_or_else(|| v.keep_for(), |c| c.max(v.keep_for())))
    }
}

struct NonceExpiry;

impl Expiry<[u8; 16], Duration> for NonceExpiry {
    fn expire_after_create(&self, _: &[u8; 16], keep: &Duration, _: Instant) -> Option<Duration> {
        Some(*keep)
    }
}

impl Default for MemoryHandles {
    fn default() -> Self {
        MemoryHandles::new(DEFAULT_MAX_NONCES)
    }
}

impl std::fmt::Debug for MemoryHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHandles")
            .field("records", &self.inner.records.entry_count())
            .field("max_nonces", &self.inner.max_nonces)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryHandles {
    /// Empty, keeping at most `max_nonces` single-use records.
    pub fn new(max_nonces: u64) -> Self {
        let removed: Removals = Arc::default();
        let listener_removed = removed.clone();
        let records = Cache::builder()
            .expire_after(RecordExpiry)
            .eviction_listener(
                move |handle: Arc<[u8; HANDLE_BYTES]>, record: Arc<Record>, cause| {
                    if cause != RemovalCause::Replaced {
                        lock(&listener_removed).push((record.index_key(), *handle));
                    }
                },
            )
            .build();
        MemoryHandles {
            inner: Arc::new(Inner {
                records,
                index: Mutex::default(),
                removed,
                nonces: Cache::builder().expire_after(NonceExpiry).build(),
                max_nonces,
            }),
        }
    }

    /// Handle records in memory, live or expired within their grace
    /// (approximate until moka's pending tasks ran).
    pub fn len(&self) -> u64 {
        self.inner.records.run_pending_tasks();
        self.inner.records.entry_count()
    }

    /// Whether no handle record is in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_removals(&self, index: &mut Index) {
        let removed = std::mem::take(&mut *lock(&self.inner.removed));
        for (key, handle) in removed {
            let Some(list) = index.lists.get_mut(&key) else {
                continue;
            };
            let before = list.len();
            list.retain(|h| *h != handle);
            let gone = (before - list.len()) as u64;
            if list.is_empty() {
                index.lists.remove(&key);
            }
            let kind = key.split('\0').next().unwrap_or_default();
            if let Some(count) = index.kinds.get_mut(kind) {
                count.entries = count.entries.saturating_sub(gone);
            }
        }
    }

    /// The record for `key`'s owner and kind, whoever else's it may be.
    fn record(&self, key: &HandleKey<'_>) -> Option<Arc<Record>> {
        // Always one lookup, then one comparison: the same work for an
        // unknown handle and for another principal's.
        self.inner
            .records
            .get(key.handle.as_bytes())
            .filter(|record| record.belongs_to(key))
    }

    fn lookup(&self, key: &HandleKey<'_>, now: Timestamp) -> (Lookup, Option<Arc<Record>>) {
        let Some(record) = self.record(key) else {
            return (Lookup::Missing, None);
        };
        let expires = record.expires_at();
        if now >= expires {
            let state = if now < expires + record.grace {
                Lookup::Expired
            } else {
                Lookup::Missing
            };
            return (state, None);
        }
        (Lookup::Live(snapshot(&record, now)), Some(record))
    }

    /// Live handles in a list at `now`; drops the entries whose record left
    /// the cache or expired (those stay in the cache as tombstones only).
    fn prune(&self, list: &mut Vec<[u8; HANDLE_BYTES]>, now: Timestamp, earliest: &mut u64) -> u64 {
        let before = list.len();
        list.retain(|handle| match self.inner.records.get(handle) {
            Some(record) if now < record.expires_at() => {
                *earliest = (*earliest).min(record.expires_at().as_millis());
                true
            }
            _ => false,
        });
        (before - list.len()) as u64
    }

    fn create_now(&self, new: &NewHandle<'_>, limits: &HandleLimits) -> Result<(), StoreError> {
        let now = new.created_at;
        let mut guard = lock(&self.inner.index);
        let index = &mut *guard;
        self.apply_removals(index);
        if self.inner.records.contains_key(new.key.handle.as_bytes()) {
            return Err(StoreError::AlreadyExists);
        }
        let list_key = index_key(new.key.kind, new.key.owner);
        // Per identity: expired entries leave the list first.
        if let Some(list) = index.lists.get_mut(&list_key) {
            if list.len() as u64 >= limits.max_per_identity {
                let mut earliest = u64::MAX;
                let dropped = self.prune(list, now, &mut earliest);
                if let Some(count) = index.kinds.get_mut(new.key.kind) {
                    count.entries -= dropped;
                }
            }
            if list.len() as u64 >= limits.max_per_identity {
                return Err(StoreError::AtCapacity(CapacityScope::Identity));
            }
        } else if limits.max_per_identity == 0 {
            return Err(StoreError::AtCapacity(CapacityScope::Identity));
        }
        // Per kind, store-wide: recount only at the cap, and only once
        // something may have expired since the last recount.
        let count = index.kinds.entry(new.key.kind.into()).or_insert(KindCount {
            entries: 0,
            earliest_expiry: u64::MAX,
        });
        if count.entries >= limits.max_handles && now.as_millis() >= count.earliest_expiry {
            let prefix = index_key(new.key.kind, "");
            let mut earliest = u64::MAX;
            let mut dropped = 0;
            index.lists.retain(|key, list| {
                if key.starts_with(&*prefix) {
                    dropped += self.prune(list, now, &mut earliest);
                }
                !list.is_empty()
            });
            // (Re-borrow: `lists` was walked above.)
            let count = index.kinds.get_mut(new.key.kind).expect("inserted above");
            count.entries -= dropped;
            count.earliest_expiry = earliest;
        }
        let count = index.kinds.get_mut(new.key.kind).expect("inserted above");
        if count.entries >= limits.max_handles {
            return Err(StoreError::AtCapacity(CapacityScope::Global));
        }
        let record = Arc::new(Record {
            owner: new.key.owner.into(),
            kind: new.key.kind.into(),
            created_at: now,
            idle: new.idle_timeout,
            deadline: new.deadline,
            grace: new.grace,
            last_access_ms: AtomicU64::new(now.as_millis()),
            state: Mutex::new(State {
                version: 1,
                payload: Arc::from(new.payload),
            }),
        });
        count.entries += 1;
        count.earliest_expiry = count.earliest_expiry.min(record.expires_at().as_millis());
        self.inner
            .records
            .insert(*new.key.handle.as_bytes(), record);
        index
            .lists
            .entry(list_key)
            .or_default()
            .push(*new.key.handle.as_bytes());
        Ok(())
    }

    fn replace_now(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> Replaced {
        let record = match self.lookup(key, now) {
            (Lookup::Live(_), Some(record)) => record,
            (Lookup::Expired, _) => return Replaced::Expired,
            _ => return Replaced::Missing,
        };
        let mut state = lock(&record.state);
        if state.version != version {
            return Replaced::Stale;
        }
        state.version += 1;
        state.payload = Arc::from(payload);
        record.slide(now);
        Replaced::Written
    }

    fn delete_now(&self, key: &HandleKey<'_>, now: Timestamp) -> Lookup {
        use moka::ops::compute::Op;
        let (found, _) = self.lookup(key, now);
        if found != Lookup::Missing {
            // Under moka's per-key lock, and only the owner's record.
            self.inner
                .records
                .entry(*key.handle.as_bytes())
                .and_compute_with(|existing| match existing {
                    Some(entry) if entry.value().belongs_to(key) => Op::Remove,
                    _ => Op::Nop,
                });
        }
        found
    }

    fn list_now(&self, owner: &str, kind: &str, now: Timestamp) -> Vec<HandleInfo> {
        let mut index = lock(&self.inner.index);
        self.apply_removals(&mut index);
        let Some(list) = index.lists.get(&index_key(kind, owner)) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|handle| {
                let record = self.inner.records.get(handle)?;
                let expires_at = record.expires_at();
                (now < expires_at && *record.owner == *owner && *record.kind == *kind).then(|| {
                    HandleInfo {
                        handle: Handle(*handle),
                        created_at: record.created_at,
                        expires_at,
                    }
                })
            })
            .collect()
    }

    fn claim_now(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let nonces = &self.inner.nonces;
        if nonces.contains_key(nonce) {
            return Ok(false);
        }
        if nonces.entry_count() >= self.inner.max_nonces {
            nonces.run_pending_tasks();
            if nonces.entry_count() >= self.inner.max_nonces {
                // Forgetting a live nonce would allow a replay: refuse.
                return Err(StoreError::AtCapacity(CapacityScope::Global));
            }
        }
        // One more millisecond: the record outlives the last instant at
        // which the sealed state still opens.
        let keep = until.saturating_since(now) + Duration::from_millis(1);
        Ok(nonces.entry(*nonce).or_insert(keep).is_fresh())
    }
}

fn snapshot(record: &Record, now: Timestamp) -> StoredHandle {
    record.slide(now);
    let state = lock(&record.state);
    StoredHandle {
        version: state.version,
        payload: state.payload.to_vec(),
        created_at: record.created_at,
        expires_at: record.expires_at(),
    }
}

impl HandleStore for MemoryHandles {
    fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        ready(self.create_now(new, limits))
    }

    fn open_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Lookup, StoreError>> + Send {
        ready(Ok(self.lookup(key, now).0))
    }

    fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Replaced, StoreError>> + Send {
        ready(Ok(self.replace_now(key, version, payload, now)))
    }

    fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Lookup, StoreError>> + Send {
        ready(Ok(self.delete_now(key, now)))
    }

    fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Vec<HandleInfo>, StoreError>> + Send {
        ready(Ok(self.list_now(owner, kind, now)))
    }

    fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        ready(self.claim_now(nonce, until, now))
    }
}

/// The store's [`MemoryHandles`]: handles live next to the sessions,
/// in caches of their own, with caps of their own.
impl HandleStore for MokaStore {
    fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        ready(self.handles().create_now(new, limits))
    }

    fn open_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Lookup, StoreError>> + Send {
        ready(Ok(self.handles().lookup(key, now).0))
    }

    fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Replaced, StoreError>> + Send {
        ready(Ok(self.handles().replace_now(key, version, payload, now)))
    }

    fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Lookup, StoreError>> + Send {
        ready(Ok(self.handles().delete_now(key, now)))
    }

    fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<Vec<HandleInfo>, StoreError>> + Send {
        ready(Ok(self.handles().list_now(owner, kind, now)))
    }

    fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        ready(self.handles().claim_now(nonce, until, now))
    }
}
