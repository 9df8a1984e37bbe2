//! [`HandleError`]: what went wrong with a handle, worded for a model.

use std::fmt;
use std::sync::Arc;

use super::Handle;
use crate::{CapacityScope, StoreError};

/// Why a [`Handles`](super::Handles) call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleErrorReason {
    /// No such handle for this caller: unknown, malformed, deleted, long
    /// expired, of another kind — or another principal's. Deliberately one
    /// answer for all of them.
    NotFound,
    /// The caller's own handle expired (idle or lifetime).
    Expired,
    /// A cap refused a new handle.
    AtCapacity(CapacityScope),
    /// The value would exceed [`HandleConfig::max_payload_bytes`](super::HandleConfig::max_payload_bytes).
    TooLarge,
    /// Concurrent updates kept winning; retrying later may succeed.
    Busy,
    /// The value could not be serialized, or the stored one deserialized
    /// (the payload type changed?).
    Payload,
    /// The store failed (unreachable, timed out).
    Store,
}

/// A failed [`Handles`](super::Handles) call: a [reason](HandleError::reason)
/// to match on, and a message a model can act on (the kind, a redacted
/// handle, what to do next), for example:
///
/// `notes handle h_1a2b3c4d… has expired; create a new one with notes_create`
///
/// The message of [`HandleErrorReason::NotFound`] depends only on what the
/// caller sent, never on whether the handle exists for someone else.
#[derive(Debug)]
pub struct HandleError {
    reason: HandleErrorReason,
    kind: Arc<str>,
    handle: Option<Handle>,
    create_tool: Option<Arc<str>>,
    source: Option<Source>,
}

#[derive(Debug)]
enum Source {
    Store(StoreError),
    Json(serde_json::Error),
}

impl HandleError {
    pub(crate) fn new(
        reason: HandleErrorReason,
        kind: Arc<str>,
        handle: Option<Handle>,
        create_tool: Option<Arc<str>>,
    ) -> Self {
        HandleError {
            reason,
            kind,
            handle,
            create_tool,
            source: None,
        }
    }

    pub(crate) fn with_store_error(mut self, error: StoreError) -> Self {
        self.source = Some(Source::Store(error));
        self
    }

    pub(crate) fn with_json_error(mut self, error: serde_json::Error) -> Self {
        self.source = Some(Source::Json(error));
        self
    }

    /// Why it failed.
    pub fn reason(&self) -> HandleErrorReason {
        self.reason
    }

    /// The kind of handle (`"notes"`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The store's error, for [`HandleErrorReason::Store`] and
    /// [`HandleErrorReason::AtCapacity`].
    pub fn store_error(&self) -> Option<&StoreError> {
        match &self.source {
            Some(Source::Store(e)) => Some(e),
            _ => None,
        }
    }

    fn create_hint(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.create_tool {
            Some(tool) => write!(f, "; create a new one with {tool}"),
            None => f.write_str("; create a new one"),
        }
    }
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = &self.kind;
        let handle = |f: &mut fmt::Formatter<'_>| match &self.handle {
            Some(handle) => write!(f, "{kind} handle {handle}"),
            None => write!(f, "that {kind} handle"),
        };
        match self.reason {
            HandleErrorReason::NotFound => {
                handle(f)?;
                f.write_str(" does not exist (it is unknown, was deleted, or expired long ago)")?;
                self.create_hint(f)
            }
            HandleErrorReason::Expired => {
                handle(f)?;
                f.write_str(" has expired")?;
                self.create_hint(f)
            }
            HandleErrorReason::AtCapacity(CapacityScope::Identity) => write!(
                f,
                "you have too many open {kind} handles; delete one you no longer need, or wait \
                 for one to expire"
            ),
            HandleErrorReason::AtCapacity(CapacityScope::Global) => write!(
                f,
                "the server holds too many {kind} handles right now; try again later"
            ),
            HandleErrorReason::TooLarge => {
                write!(
                    f,
                    "the {kind} state would be too large; nothing was changed"
                )
            }
            HandleErrorReason::Busy => {
                handle(f)?;
                f.write_str(" is being changed by other calls right now; try again")
            }
            HandleErrorReason::Payload => {
                write!(f, "the stored {kind} state could not be read or written")
            }
            HandleErrorReason::Store => write!(
                f,
                "the {kind} store is unavailable right now; try again later"
            ),
        }
    }
}

impl std::error::Error for HandleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(Source::Store(e)) => Some(e),
            Some(Source::Json(e)) => Some(e),
            None => None,
        }
    }
}
