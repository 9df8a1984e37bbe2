//! Typed errors.

use std::fmt;
use std::time::Duration;

/// Why a string is not a valid session id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSessionId {
    /// Wrong length (the length seen).
    Length(usize),
    /// A character outside the allowed set.
    Character,
}

impl fmt::Display for InvalidSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidSessionId::Length(n) => write!(f, "session id has invalid length {n}"),
            InvalidSessionId::Character => f.write_str("session id has an invalid character"),
        }
    }
}

impl std::error::Error for InvalidSessionId {}

/// Which cap a create ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapacityScope {
    /// The store-wide cap ([`crate::Limits::max_sessions`]).
    Global,
    /// The identity's cap with [`crate::IdentityLimitPolicy::Reject`].
    Identity,
}

/// A failure of a [`crate::SessionStore`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` found a session with the same id (never overwritten).
    AlreadyExists,
    /// A cap was reached.
    AtCapacity(CapacityScope),
    /// The store did not answer within its timeout.
    Timeout(Duration),
    /// The store is unreachable or failed (connection refused, I/O error, …).
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying later may succeed (the layer answers 503 + `Retry-After`).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Timeout(_) | StoreError::Unavailable(_))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::AlreadyExists => f.write_str("a session with this id already exists"),
            StoreError::AtCapacity(CapacityScope::Global) => {
                f.write_str("the session store is at its global session cap")
            }
            StoreError::AtCapacity(CapacityScope::Identity) => {
                f.write_str("this identity is at its session cap")
            }
            StoreError::Timeout(after) => write!(f, "session store timed out after {after:?}"),
            StoreError::Unavailable(e) => write!(f, "session store unavailable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A failure of a [`crate::SessionManager`] operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// No live session with this id (missing, expired, terminated) — or, for
    /// owner-checked lookups, one that belongs to someone else: the two are
    /// deliberately indistinguishable.
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl SessionError {
    /// Whether this is [`SessionError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, SessionError::NotFound)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NotFound => f.write_str("session not found"),
            SessionError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::NotFound => None,
            SessionError::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Store(e)
    }
}
