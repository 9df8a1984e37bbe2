//! Session lifecycle events: why a session ended, and who hears about it.
//!
//! A session ends for one of the [`EndReason`]s. The
//! [`SessionManager`](crate::SessionManager) tells every hook registered
//! with [`SessionManager::on_session_end`](crate::SessionManager::on_session_end)
//! about each end it causes or learns of:
//!
//! - ends it causes itself: `delete`, per-identity eviction on `create`,
//!   `revoke_sessions`;
//! - ends the layer reports through
//!   [`SessionManager::report_end`](crate::SessionManager::report_end)
//!   (a session the inner server created that the layer refused, could not
//!   store, or whose client left mid-`initialize`);
//! - ends on other replicas sharing a store with a notice channel (Redis):
//!   they arrive as [`ReplicaNotice::SessionEnded`](crate::ReplicaNotice)
//!   with the id's [digest](crate::SessionId::digest) only.
//!
//! Hooks run on the task that ended the session (or the store's notice
//! task): they must return quickly and never block — spawn the slow part.
//! Whoever keeps per-session state (the layer's adopt mode closes the inner
//! server's session; open streams close) keys it by
//! [`SessionId::digest`](crate::SessionId::digest), which every event
//! carries.
//!
//! Expiry (idle or deadline) is not an event of the store: nothing is told
//! when a session silently times out. Holders of per-session state expire
//! it on their own clock, as the layer does.

use std::fmt;
use std::sync::Arc;

use crate::SessionId;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// Terminated on request (`DELETE`, [`SessionManager::delete`](crate::SessionManager::delete)).
    Deleted,
    /// Unused for its idle timeout.
    Expired,
    /// Reached its absolute lifetime.
    Deadline,
    /// Its identity's oldest, dropped to make room for a new session.
    Evicted,
    /// Ended with every session of its identity
    /// ([`SessionManager::revoke_sessions`](crate::SessionManager::revoke_sessions)).
    Revoked,
    /// Created by the inner server, then refused by the layer (a cap).
    Refused,
    /// Created by the inner server, then lost to a store failure.
    Failed,
    /// Its client left before `initialize` was answered.
    Abandoned,
}

impl EndReason {
    /// The reason as a short lowercase word (log fields, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::Expired => "expired",
            EndReason::Deadline => "deadline",
            EndReason::Evicted => "evicted",
            EndReason::Revoked => "revoked",
            EndReason::Refused => "refused",
            EndReason::Failed => "failed",
            EndReason::Abandoned => "abandoned",
        }
    }

    /// The reason named by [`EndReason::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "deleted" => EndReason::Deleted,
            "expired" => EndReason::Expired,
            "deadline" => EndReason::Deadline,
            "evicted" => EndReason::Evicted,
            "revoked" => EndReason::Revoked,
            "refused" => EndReason::Refused,
            "failed" => EndReason::Failed,
            "abandoned" => EndReason::Abandoned,
            _ => return None,
        })
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session ended.
#[derive(Clone, Debug)]
pub struct SessionEnded {
    digest: u64,
    id: Option<SessionId>,
    reason: EndReason,
    remote: bool,
}

impl SessionEnded {
    pub(crate) fn local(id: &SessionId, reason: EndReason) -> Self {
        SessionEnded {
            digest: id.digest(),
            id: Some(id.clone()),
            reason,
            remote: false,
        }
    }

    /// Ended here by a store that knows the session by its digest only
    /// (see [`RemovedSession`](crate::RemovedSession)).
    pub(crate) fn local_by_digest(digest: u64, reason: EndReason) -> Self {
        SessionEnded {
            digest,
            id: None,
            reason,
            remote: false,
        }
    }

    pub(crate) fn remote(digest: u64, reason: EndReason) -> Self {
        SessionEnded {
            digest,
            id: None,
            reason,
            remote: true,
        }
    }

    /// The session's [`SessionId::digest`].
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The session's id, when it ended in this process and the store knew it
    /// (`None` for an end heard from another replica, and for sessions a
    /// [`RedisStore`](crate::store::redis::RedisStore) evicted or revoked:
    /// it keeps only hashes of ids. Match on [`SessionEnded::digest`]).
    pub fn id(&self) -> Option<&SessionId> {
        self.id.as_ref()
    }

    /// Why it ended.
    pub fn reason(&self) -> EndReason {
        self.reason
    }

    /// Whether another replica ended it.
    pub fn is_remote(&self) -> bool {
        self.remote
    }
}

/// A hook told of every session end. Any `Fn(&SessionEnded)` is one.
pub trait OnSessionEnd: Send + Sync + 'static {
    /// Called once per end, on the task that ended the session: return
    /// quickly, never block.
    fn session_ended(&self, ended: &SessionEnded);
}

impl<F: Fn(&SessionEnded) + Send + Sync + 'static> OnSessionEnd for F {
    fn session_ended(&self, ended: &SessionEnded) {
        self(ended)
    }
}

/// The hooks of one manager.
#[derive(Default)]
pub(crate) struct Hooks {
    hooks: std::sync::RwLock<Vec<Arc<dyn OnSessionEnd>>>,
}

impl Hooks {
    pub(crate) fn add(&self, hook: Arc<dyn OnSessionEnd>) {
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    pub(crate) fn tell(&self, ended: &SessionEnded) {
        // A copy of the list: a hook may register another one.
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        for hook in hooks {
            hook.session_ended(ended);
        }
    }
}
