//! The [`Session`] record.

use std::time::Duration;

use crate::{Identity, Roles, SessionId, Timestamp};

/// One live session, bound to the identity that created it.
///
/// A session binds an identity, not its roles: authorize with
/// [`Roles::of`](crate::Roles::of), which the layer fills for every request
/// from the [`RoleSource`](crate::roles::RoleSource). (The [`Identity`]
/// stored with a session keeps the roles its creator claimed then, for
/// display and audit only.)
///
/// A session expires at `min(last_access + idle_timeout, deadline)`: every
/// refresh slides the idle expiry, but never past the absolute `deadline`
/// (`created_at + max_lifetime`). Times are UTC.
///
/// ```
/// use mcp_session::{Identity, Session, SessionId, Timestamp};
/// use std::time::Duration;
///
/// let t0 = Timestamp::from_millis(0);
/// let s = Session::new(
///     SessionId::generate(),
///     Identity::new("alice", "Alice", ["admin"]),
///     t0,
///     Duration::from_secs(60),
///     Duration::from_secs(90),
/// );
/// assert_eq!(s.expires_at(), Timestamp::from_millis(60_000));
/// let later = s.touched(Timestamp::from_millis(50_000));
/// assert_eq!(later.expires_at(), Timestamp::from_millis(90_000)); // capped
/// assert_eq!(s.identity_id(), "alice");
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    id: SessionId,
    identity: Identity,
    created_at: Timestamp,
    last_access: Timestamp,
    idle_timeout: Duration,
    deadline: Timestamp,
    /// The roles the layer found for the request this session came with
    /// (read by `Roles::of`); only the layer sets them.
    granted: Option<Roles>,
}

impl Session {
    /// A new session created at `now`, idle-expiring after `idle_timeout` and
    /// never living past `now + max_lifetime`.
    pub fn new(
        id: SessionId,
        identity: Identity,
        now: Timestamp,
        idle_timeout: Duration,
        max_lifetime: Duration,
    ) -> Self {
        Session {
            id,
            identity,
            created_at: now,
            last_access: now,
            idle_timeout,
            deadline: now + max_lifetime,
            granted: None,
        }
    }

    /// Rebuilds a session from stored parts (for store implementations).
    pub fn from_parts(
        id: SessionId,
        identity: Identity,
        created_at: Timestamp,
        last_access: Timestamp,
        idle_timeout: Duration,
        deadline: Timestamp,
    ) -> Self {
        Session {
            id,
            identity,
            created_at,
            last_access,
            idle_timeout,
            deadline,
            granted: None,
        }
    }

    /// The same session, accessed at `now` (its idle expiry slides).
    pub fn touched(&self, now: Timestamp) -> Session {
        Session {
            last_access: now.max(self.last_access),
            ..self.clone()
        }
    }

    /// The same session, carrying the roles granted for a request (one
    /// extension on the hot path instead of two).
    pub(crate) fn with_granted(mut self, roles: Roles) -> Session {
        self.granted = Some(roles);
        self
    }

    pub(crate) fn granted(&self) -> Option<&Roles> {
        self.granted.as_ref()
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The identity the session is bound to.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The bound identity's subject id.
    pub fn identity_id(&self) -> &str {
        self.identity.id()
    }

    /// The bound identity's display name.
    pub fn identity_name(&self) -> &str {
        self.identity.name()
    }

    /// When the session was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When the session was last used.
    pub fn last_access(&self) -> Timestamp {
        self.last_access
    }

    /// How long the session may stay unused.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute end of the session's life, however often it is refreshed.
    pub fn deadline(&self) -> Timestamp {
        self.deadline
    }

    /// When the session expires unless it is used again.
    pub fn expires_at(&self) -> Timestamp {
        (self.last_access + self.idle_timeout).min(self.deadline)
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }

    /// Whether the session belongs to `identity`.
    pub fn is_owned_by(&self, identity: &Identity) -> bool {
        self.identity.id() == identity.id()
    }
}
