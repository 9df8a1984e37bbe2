//! The per-identity role cache: a sharded map of single-flight slots.
//!
//! The hot path is a read lock on one shard, one hash of the identity id and
//! a timestamp comparison; lookups (cold, stale, invalidated) are async and
//! coalesced per identity through the slot's `OnceCell`.

use crate::observe::{self, Started};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::{DynRoleSource, RolesUnavailable};
use crate::{Identity, Roles, Timestamp};

const SHARDS: usize = 16;

type Shard = RwLock<HashMap<Arc<str>, Arc<Slot>>>;

pub(crate) struct RoleCache {
    source: Box<dyn DynRoleSource>,
    shards: Box<[Shard]>,
    max_age: Duration,
    timeout: Duration,
    per_shard: usize,
    /// False while a store's cross-replica notice channel is down (or not
    /// yet up): invalidations may be missed then, so nothing cached is used.
    trusted: AtomicBool,
}

/// One identity's entry: filled once by the lookup that created it, shared
/// by every request that arrived while it ran.
#[derive(Default)]
struct Slot {
    outcome: OnceCell<Outcome>,
}

type Outcome = Result<Fetched, RolesUnavailable>;

struct Fetched {
    roles: Roles,
    /// When the lookup started: the roles are at least this fresh.
    read_at: Timestamp,
}

impl Slot {
    /// The roles, if this slot holds a lookup result still young enough at `now`.
    fn fresh(&self, now: Timestamp, max_age: Duration) -> Option<&Roles> {
        match self.outcome.get()? {
            Ok(fetched) if now < fetched.read_at + max_age => Some(&fetched.roles),
            _ => None,
        }
    }

    /// Whether a new request may join this slot rather than start a lookup:
    /// its lookup is still running, or its result is fresh.
    fn joinable(&self, now: Timestamp, max_age: Duration) -> bool {
        !self.outcome.initialized() || self.fresh(now, max_age).is_some()
    }
}

impl RoleCache {
    pub(crate) fn new(
        source: Box<dyn DynRoleSource>,
        max_age: Duration,
        timeout: Duration,
        capacity: usize,
    ) -> Self {
        RoleCache {
            source,
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            max_age,
            timeout,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            trusted: AtomicBool::new(true),
        }
    }

    fn shard(&self, identity_id: &str) -> &Shard {
        // FNV-1a: cheap and good enough to spread ids over 16 shards (the
        // map inside uses a keyed hash, so this needs no secret).
        let mut hash: u32 = 0x811c_9dc5;
        for byte in identity_id.bytes() {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        &self.shards[hash as usize % SHARDS]
    }

    /// The hot path: the identity's roles if a fresh entry is cached.
    #[inline]
    pub(crate) fn cached(&self, identity_id: &str, now: Timestamp) -> Option<Roles> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let shard = read(self.shard(identity_id));
        shard.get(identity_id)?.fresh(now, self.max_age).cloned()
    }

    /// Looks the roles up (or joins the lookup already running for this
    /// identity). `now` is when the request started.
    pub(crate) async fn load(
        &self,
        caller: &Identity,
        now: Timestamp,
    ) -> Result<Roles, RolesUnavailable> {
        if let Some(roles) = self.cached(caller.id(), now) {
            return Ok(roles);
        }
        let slot = self.slot_for(caller.id(), now);
        let outcome = slot
            .outcome
            .get_or_init(|| async {
                let started = Started::now();
                let (outcome, label) =
                    match tokio::time::timeout(self.timeout, self.source.roles_boxed(caller)).await
                    {
                        Ok(Ok(roles)) => (
                            Ok(Fetched {
                                roles,
                                read_at: now,
                            }),
                            "ok",
                        ),
                        Ok(Err(error)) => {
                            (Err(RolesUnavailable::Failed(Arc::new(error))), "failed")
                        }
                        Err(_) => (Err(RolesUnavailable::TimedOut(self.timeout)), "timeout"),
                    };
                observe::role_lookup(label, started);
                outcome
            })
            .await;
        if !self.trusted.load(Ordering::Acquire) {
            // Invalidations may have been missed while this ran: keep
            // nothing for later requests (this one still gets its answer,
            // read after it started).
            self.forget_slot(caller.id(), &slot);
        }
        match outcome {
            Ok(fetched) => Ok(fetched.roles.clone()),
            Err(error) => Err(error.clone()),
        }
    }

    /// The slot a lookup for `identity_id` joins: the current one if it is
    /// running or fresh, otherwise a new one that replaces it.
    fn slot_for(&self, identity_id: &str, now: Timestamp) -> Arc<Slot> {
        let mut shard = write(self.shard(identity_id));
        if let Some(slot) = shard.get(identity_id) {
            if slot.joinable(now, self.max_age) {
                return slot.clone();
            }
        }
        if shard.len() >= self.per_shard && !shard.contains_key(identity_id) {
            let max_age = self.max_age;
            shard.retain(|_, slot| slot.joinable(now, max_age));
            if shard.len() >= self.per_shard {
                // Still full of fresh entries: drop any one (it costs that
                // identity one lookup, never a wrong answer).
                if let Some(victim) = shard.keys().next().cloned() {
                    shard.remove(&victim);
                }
            }
        }
        let slot = Arc::new(Slot::default());
        shard.insert(Arc::from(identity_id), slot.clone());
        slot
    }

    fn forget_slot(&self, identity_id: &str, slot: &Arc<Slot>) {
        let mut shard = write(self.shard(identity_id));
        if shard.get(identity_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            shard.remove(identity_id);
        }
    }

    /// Drops the identity's entry: its next request looks the roles up again.
    pub(crate) fn invalidate(&self, identity_id: &str) {
        write(self.shard(identity_id)).remove(identity_id);
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            write(shard).clear();
        }
    }

    /// Whether cached entries may be used (see `trusted`). Turning trust on
    /// or off drops every entry: whatever was cached may predate a missed
    /// invalidation.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
        self.clear();
    }

    /// Number of identities with an entry (tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Slot>>> {
    // A panic while holding the lock cannot leave the map inconsistent
    // (every write is a single insert/remove/retain): keep using it.
    shard
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Slot>>> {
    shard
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
