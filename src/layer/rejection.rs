//! The errors the layer answers itself, each an HTTP status plus a JSON-RPC
//! error body.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};

use super::body::ResponseBody;
use super::error_response::ErrorResponse;
use crate::{CapacityScope, InvalidSessionId, SessionError, StoreError};

/// JSON-RPC error codes used in the layer's error bodies.
pub mod codes {
    /// The body is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The request is not acceptable (missing, malformed or repeated session id, bad body).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No live session with this id for this caller.
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// The request is not authenticated.
    pub const UNAUTHENTICATED: i64 = -32002;
    /// The session store failed or timed out; retry later.
    pub const STORE_UNAVAILABLE: i64 = -32003;
    /// A session cap was reached.
    pub const TOO_MANY_SESSIONS: i64 = -32004;
    /// The inner server misbehaved (for example minted an unusable session id).
    pub const UPSTREAM_ERROR: i64 = -32005;
    /// The caller's roles could not be looked up (the role source failed or
    /// timed out); retry later.
    pub const ROLES_UNAVAILABLE: i64 = -32006;
}

/// Why the layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// With the `WWW-Authenticate` challenge to send (plain `Bearer` when
    /// none is configured).
    Unauthenticated(Option<HeaderValue>),
    MissingSessionId,
    RepeatedSessionId,
    MalformedSessionId(InvalidSessionId),
    SessionNotFound,
    StoreUnavailable,
    TooManySessions(CapacityScope),
    BodyTooLarge(usize),
    BodyTimeout,
    BodyUnreadable,
    InvalidJson,
    AmbiguousMethod,
    InitializeInBatch,
    UnusableUpstreamSessionId,
    /// Mint mode, but the inner server minted a session id of its own.
    UpstreamMintsSessions,
    /// Adopt mode, but the inner server answered `initialize` without one.
    UpstreamIsStateless,
    UpstreamFailed,
    RolesUnavailable,
}

impl Rejection {
    pub(crate) fn from_session_error(e: &SessionError) -> Self {
        match e {
            SessionError::NotFound => Rejection::SessionNotFound,
            SessionError::Store(e) => Self::from_store_error(e),
        }
    }

    pub(crate) fn from_store_error(e: &StoreError) -> Self {
        match e {
            StoreError::AtCapacity(scope) => Rejection::TooManySessions(*scope),
            // AlreadyExists only reaches here in adopt mode when the inner
            // server reuses an id: treat as an upstream fault.
            StoreError::AlreadyExists => Rejection::UnusableUpstreamSessionId,
            StoreError::Timeout(_) | StoreError::Unavailable(_) => Rejection::StoreUnavailable,
        }
    }

    /// The `reason` label of
    /// [`SESSION_REJECTIONS`](crate::observe::metrics::SESSION_REJECTIONS)
    /// (and the span's `outcome`): one short word per kind of refusal.
    pub(crate) fn reason(&self) -> &'static str {
        use Rejection::*;
        match self {
            Unauthenticated(_) => "unauthenticated",
            MissingSessionId => "missing_id",
            RepeatedSessionId => "repeated_id",
            MalformedSessionId(_) => "malformed_id",
            SessionNotFound => "not_found",
            StoreUnavailable => "store_unavailable",
            TooManySessions(CapacityScope::Global) => "global_cap",
            TooManySessions(CapacityScope::Identity) => "identity_cap",
            BodyTooLarge(_) => "too_large",
            BodyTimeout => "timeout",
            BodyUnreadable => "unreadable_body",
            InvalidJson => "invalid_json",
            AmbiguousMethod => "ambiguous_method",
            InitializeInBatch => "initialize_in_batch",
            UnusableUpstreamSessionId | UpstreamFailed => "upstream",
            UpstreamMintsSessions | UpstreamIsStateless => "misconfigured",
            RolesUnavailable => "roles_unavailable",
        }
    }

    fn status_code_message(&self) -> (StatusCode, i64, String) {
        use Rejection::*;
        match self {
            Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHENTICATED,
                "authentication required: no authenticated identity on the request".into(),
            ),
            MissingSessionId => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "missing Mcp-Session-Id header: send initialize first, then the session id it returned".into(),
            ),
            RepeatedSessionId => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "more than one Mcp-Session-Id header".into(),
            ),
            MalformedSessionId(why) => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                format!("malformed Mcp-Session-Id header: {why}"),
            ),
            SessionNotFound => (
                StatusCode::NOT_FOUND,
                codes::SESSION_NOT_FOUND,
                "session not found: it is unknown, expired or terminated; send a new initialize".into(),
            ),
            StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::STORE_UNAVAILABLE,
                "session store unavailable; retry later".into(),
            ),
            TooManySessions(CapacityScope::Global) => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::TOO_MANY_SESSIONS,
                "the server holds its maximum number of sessions; retry later".into(),
            ),
            TooManySessions(CapacityScope::Identity) => (
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_SESSIONS,
                "this identity holds its maximum number of sessions; delete one or let one expire".into(),
            ),
            BodyTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::INVALID_REQUEST,
                format!("request body without a session id exceeds {limit} bytes"),
            ),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                codes::INVALID_REQUEST,
                "request body was not received in time".into(),
            ),
            BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "request body could not be read".into(),
            ),
            InvalidJson => (
                StatusCode::BAD_REQUEST,
                codes::PARSE_ERROR,
                "request body is not valid JSON".into(),
            ),
            AmbiguousMethod => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "request body has more than one top-level \"method\" member".into(),
            ),
            InitializeInBatch => (
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "initialize must not be part of a JSON-RPC batch".into(),
            ),
            UnusableUpstreamSessionId => (
                StatusCode::BAD_GATEWAY,
                codes::UPSTREAM_ERROR,
                "the MCP server returned a session id that cannot be tracked".into(),
            ),
            UpstreamMintsSessions => (
                StatusCode::BAD_GATEWAY,
                codes::UPSTREAM_ERROR,
                "misconfigured server: the inner MCP server mints its own sessions (it answered \
                 initialize with an Mcp-Session-Id) while the session layer is in mint mode: use \
                 adopt mode (IdMode::Adopt) or make the inner server stateless (rmcp: \
                 StreamableHttpServerConfig::with_legacy_session_mode(false))"
                    .into(),
            ),
            UpstreamIsStateless => (
                StatusCode::BAD_GATEWAY,
                codes::UPSTREAM_ERROR,
                "misconfigured server: the inner MCP server is stateless (it answered initialize \
                 without an Mcp-Session-Id) while the session layer is in adopt mode: use mint \
                 mode (IdMode::Mint, the default) or let the inner server mint sessions (rmcp: \
                 legacy session mode on)"
                    .into(),
            ),
            UpstreamFailed => (
                StatusCode::BAD_GATEWAY,
                codes::UPSTREAM_ERROR,
                "the MCP server failed while handling initialize".into(),
            ),
            RolesUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::ROLES_UNAVAILABLE,
                "the caller's roles could not be looked up; retry later".into(),
            ),
        }
    }

    /// The answer to send; counts the refusal (every refusal of the layer
    /// goes through here).
    pub(crate) fn into_response<B>(self, retry_after: Duration) -> Response<ResponseBody<B>> {
        crate::observe::rejected(self.reason());
        let (status, code, message) = self.status_code_message();
        let challenge = match self {
            Rejection::Unauthenticated(challenge) => challenge,
            _ => None,
        };
        ErrorResponse::new(status, code, message)
            .challenge(challenge)
            .retry_after(retry_after)
            .into_bytes_response()
            .map(|bytes| ResponseBody::held(bytes))
    }
}
