//! [`AnyStore`] as a [`HandleStore`]: handles in whichever built-in store
//! was chosen at run time.

use super::store::{HandleInfo, HandleKey, HandleLimits, HandleStore, Lookup, NewHandle, Replaced};
use crate::{AnyStore, StoreError, Timestamp};

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

/// The chosen store's handles ([`MokaStore`](crate::MokaStore)'s in memory,
/// or `RedisStore`'s).
impl HandleStore for AnyStore {
    async fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> Result<(), StoreError> {
        each!(self, store => store.create_handle(new, limits).await)
    }

    async fn open_handle(&self, key: &HandleKey<'_>, now: Timestamp) -> Result<Lookup, StoreError> {
        each!(self, store => store.open_handle(key, now).await)
    }

    async fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<Replaced, StoreError> {
        each!(self, store => store.replace_handle(key, version, payload, now).await)
    }

    async fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        each!(self, store => store.delete_handle(key, now).await)
    }

    async fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> Result<Vec<HandleInfo>, StoreError> {
        each!(self, store => store.list_handles(owner, kind, now).await)
    }

    async fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.claim_once(nonce, until, now).await)
    }
}
