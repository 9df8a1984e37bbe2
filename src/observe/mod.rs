//! Observability: `tracing` spans and events (feature `tracing`) and
//! metrics through the `metrics` facade (feature `metrics`).
//!
//! # Tracing
//!
//! - A `DEBUG` span `mcp.session.request` for every request the
//!   [`SessionLayer`](crate::SessionLayer) handles, with OpenTelemetry's MCP
//!   attribute names where they exist: `mcp.method.name` (when the layer
//!   read it from the body itself: `initialize`, `server/discover`),
//!   `mcp.protocol.version` (the `MCP-Protocol-Version` header),
//!   `mcp.session.id` (**redacted**: the id's 64-bit
//!   [digest](crate::SessionId::digest) in hex, never the id), and the
//!   outcome: `outcome` (the rejection reason of a request the layer
//!   refused, as in [`metrics::SESSION_REJECTIONS`]) and
//!   `http.response.status_code`.
//! - `INFO` events `session created` (with `mcp.session.id`, `store`) and
//!   `session ended` (with `mcp.session.id`, `reason`, and `duration_ms`
//!   where known).
//! - `WARN` events for store failures, with `store`, `operation` and
//!   `latency_ms`.
//!
//! Events carry the target `mcp_session`. Without the feature nothing is
//! built; with it and no subscriber interested, the span is
//! `Span::none()` (no allocation).
//!
//! # Metrics
//!
//! See [`metrics`] for every name, type and label.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
#[cfg(any(feature = "metrics", feature = "tracing"))]
use std::time::{Duration, Instant};

use crate::{EndReason, StoreError};

pub mod metrics;
mod span;

pub(crate) use span::RequestSpan;

/// When a measured operation started (nothing without either feature).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Started {
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    at: Instant,
}

impl Started {
    #[inline]
    pub(crate) fn now() -> Self {
        Started {
            #[cfg(any(feature = "metrics", feature = "tracing"))]
            at: Instant::now(),
        }
    }

    #[cfg(any(feature = "metrics", feature = "tracing"))]
    fn elapsed(self) -> Duration {
        self.at.elapsed()
    }
}

/// A session id as logs and spans show it: its digest in hex.
#[cfg(feature = "tracing")]
#[derive(Clone, Copy)]
pub(crate) struct Redacted(pub(crate) u64);

#[cfg(feature = "tracing")]
impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A store call finished.
#[inline]
pub(crate) fn store_done<T>(
    store: &'static str,
    operation: &'static str,
    started: Started,
    result: &Result<T, StoreError>,
) {
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    {
        let took = started.elapsed();
        #[cfg(feature = "metrics")]
        metrics::store_operation(store, operation, took);
        if let Err(error) = result {
            if is_failure(error) {
                #[cfg(feature = "metrics")]
                metrics::store_error(store, operation);
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "mcp_session",
                    %error,
                    store,
                    operation,
                    latency_ms = took.as_secs_f64() * 1e3,
                    "session store call failed"
                );
            }
        }
    }
    let _ = (store, operation, started, result);
}

/// A failure of the store itself, not a refusal it was asked to make.
#[cfg(any(feature = "metrics", feature = "tracing"))]
fn is_failure(error: &StoreError) -> bool {
    matches!(error, StoreError::Timeout(_) | StoreError::Unavailable(_))
}

/// A session was created (or adopted) by this process.
pub(crate) fn session_created(store: &'static str, digest: u64) {
    #[cfg(feature = "metrics")]
    metrics::session_created(store);
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "mcp_session",
        { mcp.session.id = %Redacted(digest), store },
        "session created"
    );
    let _ = (store, digest);
}

/// A session ended in this process (or its store noticed its expiry).
/// `lasted`: from creation to the end, when known.
pub(crate) fn session_ended(
    store: &'static str,
    digest: u64,
    reason: EndReason,
    lasted: Option<std::time::Duration>,
) {
    #[cfg(feature = "metrics")]
    metrics::session_ended(store, reason, lasted);
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "mcp_session",
        {
            mcp.session.id = %Redacted(digest),
            store,
            reason = reason.as_str(),
            duration_ms = lasted.map(|d| d.as_millis() as u64),
        },
        "session ended"
    );
    let _ = (store, digest, reason, lasted);
}

/// The layer refused a request (`reason`: see
/// [`metrics::SESSION_REJECTIONS`]).
pub(crate) fn rejected(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::rejected(reason);
    #[cfg(feature = "tracing")]
    tracing::Span::current().record("outcome", reason);
    let _ = reason;
}

/// A role lookup finished (`ok`, `failed`, `timeout`).
pub(crate) fn role_lookup(outcome: &'static str, started: Started) {
    #[cfg(feature = "metrics")]
    metrics::role_lookup(outcome, started.elapsed());
    #[cfg(feature = "tracing")]
    if outcome != "ok" {
        tracing::warn!(
            target: "mcp_session",
            outcome,
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "role lookup failed"
        );
    }
    let _ = (outcome, started);
}

/// The policy layer denied a request for `method` (a client's string: only
/// a few known values become a label).
#[cfg(feature = "policy")]
pub(crate) fn policy_denied(method: &str) {
    #[cfg(feature = "metrics")]
    metrics::policy_denied(match method {
        "tools/call" => "tools/call",
        "resources/read" => "resources/read",
        "resources/subscribe" => "resources/subscribe",
        "prompts/get" => "prompts/get",
        "batch" => "batch",
        _ => "other",
    });
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "mcp_session", { mcp.method.name = method }, "denied by policy");
    let _ = method;
}

/// The store's `touch` future with its start time (the hot path: no
/// boxing, no handle cloned per request). Its failures are logged and
/// counted here; its duration is recorded by whoever holds the handle (the
/// layer's registry, the manager) through [`TimedTouch::started`].
pub(crate) struct TimedTouch<F> {
    inner: F,
    store: &'static str,
    started: Started,
}

impl<F> TimedTouch<F> {
    #[inline]
    pub(crate) fn new(inner: F, store: &'static str) -> Self {
        TimedTouch {
            inner,
            store,
            started: Started::now(),
        }
    }

    /// When the lookup started.
    #[inline]
    pub(crate) fn started(&self) -> Started {
        self.started
    }
}

/// Records a finished `touch` in the hot path's cached histogram.
#[inline]
pub(crate) fn touch_done(
    #[cfg(feature = "metrics")] handles: &metrics::Handles,
    store: &'static str,
    started: Started,
) {
    #[cfg(feature = "metrics")]
    handles.touch(store).record(started.elapsed());
    let _ = (store, started);
}

impl<T, F: Future<Output = Result<T, StoreError>> + Unpin> Future for TimedTouch<F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(Pin::new(&mut self.inner).poll(cx));
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        if result.is_err() {
            store_error_only(self.store, &result, self.started.elapsed());
        }
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        let _ = (self.store, self.started);
        Poll::Ready(result)
    }
}

#[cfg(any(feature = "metrics", feature = "tracing"))]
fn store_error_only<T>(store: &'static str, result: &Result<T, StoreError>, took: Duration) {
    if let Err(error) = result {
        if is_failure(error) {
            #[cfg(feature = "metrics")]
            metrics::store_error(store, "touch");
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "mcp_session",
                %error,
                store,
                operation = "touch",
                latency_ms = took.as_secs_f64() * 1e3,
                "session store call failed"
            );
        }
    }
    let _ = (store, took);
}
