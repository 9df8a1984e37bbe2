//! The [`HandleStore`] trait: what a backend does for [`Handles`](super::Handles).

use std::future::Future;
use std::time::Duration;

use super::Handle;
use crate::{StoreError, Timestamp};

/// Which handle a call is about: the handle, and who asks for it, as what
/// kind. A store finds a record only if all three match the ones it was
/// created with; otherwise it answers exactly as for an unknown handle.
#[derive(Clone, Copy, Debug)]
pub struct HandleKey<'a> {
    /// The handle.
    pub handle: &'a Handle,
    /// The caller's [`Identity::id`](crate::Identity::id).
    pub owner: &'a str,
    /// The kind of handle (`"notes"`).
    pub kind: &'a str,
}

/// A handle to store ([`HandleStore::create_handle`]).
#[derive(Clone, Copy, Debug)]
pub struct NewHandle<'a> {
    /// The handle, its owner and kind.
    pub key: HandleKey<'a>,
    /// The serialized value.
    pub payload: &'a [u8],
    /// When it was created (also its first access).
    pub created_at: Timestamp,
    /// Its sliding idle timeout.
    pub idle_timeout: Duration,
    /// Its absolute expiry.
    pub deadline: Timestamp,
    /// How long the store keeps it after it expired, to answer
    /// [`Lookup::Expired`] to its owner.
    pub grace: Duration,
}

/// Caps a [`HandleStore::create_handle`] enforces, per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleLimits {
    /// Most live handles of the kind per owner.
    pub max_per_identity: u64,
    /// Most live handles of the kind in the store.
    pub max_handles: u64,
}

/// A live handle's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHandle {
    /// Changes on every write: the compare-and-set token of
    /// [`HandleStore::replace_handle`].
    pub version: u64,
    /// The serialized value.
    pub payload: Vec<u8>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires unless used again.
    pub expires_at: Timestamp,
}

/// What a store knows of a handle, for its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Live (its idle expiry was slid to the `now` of the call).
    Live(StoredHandle),
    /// It belonged to this owner and expired less than its grace ago.
    Expired,
    /// Unknown, deleted, long expired, or someone else's.
    Missing,
}

/// The outcome of [`HandleStore::replace_handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replaced {
    /// Stored (the version changed, the idle expiry slid).
    Written,
    /// The version was not the expected one: nothing written.
    Stale,
    /// The handle expired: nothing written.
    Expired,
    /// The handle is gone (or someone else's): nothing written.
    Missing,
}

/// A live handle, as [`HandleStore::list_handles`] reports it to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    /// The handle (its owner may see it whole: [`Handle::reveal`]).
    pub handle: Handle,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires unless used again.
    pub expires_at: Timestamp,
}

/// Persistence for [`Handles`](super::Handles), and for the single-use
/// records of [sealed request state](crate::sealed).
///
/// Implemented by [`MokaStore`](crate::MokaStore) (in process) and
/// `RedisStore` (feature `redis`), next to their sessions but apart from
/// them: a separate namespace and separate caps. The contract, checked by
/// one conformance suite (`tests/handle_conformance.rs`) on every store:
///
/// - a record is found only with the owner and kind it was created with;
///   for anyone else it is [`Lookup::Missing`], by the same code path;
/// - a handle is live until `min(last_access + idle, deadline)`; its owner
///   then gets [`Lookup::Expired`] until `grace` later, then `Missing`;
/// - `open_handle` and a written `replace_handle` slide `last_access` to
///   `now` (never backwards, never past the deadline);
/// - `replace_handle` writes only if the version is the expected one
///   (compare-and-set), so concurrent updates are never lost;
/// - `create_handle` counts only live handles of the same kind, never
///   exceeds a cap under concurrent creates on one replica (on Redis, the
///   per-identity cap is atomic across replicas too; see `RedisStore`),
///   and touches no session cap;
/// - `claim_once` returns `true` for a nonce only once until `until`.
pub trait HandleStore: Send + Sync + 'static {
    /// Stores a new handle. [`StoreError::AtCapacity`] when a cap forbids
    /// it; [`StoreError::AlreadyExists`] if the handle exists (never
    /// overwritten).
    fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The handle for its owner, with its idle expiry slid to `now` if live.
    fn open_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Replaces a live handle's payload if its version is still `version`.
    fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> impl Future<Output = Result<Replaced, StoreError>> + Send;

    /// Removes the handle. Returns what it was: `Live` (with its last
    /// state), `Expired` or `Missing`.
    fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// The owner's live handles of this kind, in no particular order.
    fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<HandleInfo>, StoreError>> + Send;

    /// Records `nonce` as used until `until`: `true` the first time, `false`
    /// while a record of it exists. Fails closed (an error, never `true`)
    /// when the record cannot be kept.
    fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
