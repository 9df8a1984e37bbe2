//! The span of one request through the session layer (feature `tracing`;
//! a zero-sized no-op without it).

use http::Request;

use crate::SessionId;

/// The request's span (`Span::none()` when no subscriber wants it).
#[derive(Clone, Debug)]
pub(crate) struct RequestSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Default for RequestSpan {
    #[inline]
    fn default() -> Self {
        RequestSpan {
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }
}

impl RequestSpan {
    #[inline]
    pub(crate) fn new<B>(request: &Request<B>) -> Self {
        #[cfg(feature = "tracing")]
        {
            use tracing::field::Empty;
            let span = tracing::debug_span!(
                target: "mcp_session",
                "mcp.session.request",
                http.request.method = %request.method(),
                mcp.method.name = Empty,
                mcp.protocol.version = Empty,
                mcp.session.id = Empty,
                outcome = Empty,
                http.response.status_code = Empty,
            );
            if !span.is_disabled() {
                if let Some(version) = request
                    .headers()
                    .get(crate::layer::MCP_PROTOCOL_VERSION)
                    .and_then(|v| v.to_str().ok())
                {
                    span.record("mcp.protocol.version", version);
                }
            }
            RequestSpan { span }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = request;
            RequestSpan {}
        }
    }

    /// The session the request names (redacted).
    #[inline]
    pub(crate) fn session(&self, id: &SessionId) {
        #[cfg(feature = "tracing")]
        if !self.span.is_disabled() {
            self.span.record(
                "mcp.session.id",
                tracing::field::display(super::Redacted(id.digest())),
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = id;
    }

    /// The MCP method, when the layer read it from the body.
    pub(crate) fn method(&self, method: &'static str) {
        #[cfg(feature = "tracing")]
        self.span.record("mcp.method.name", method);
        #[cfg(not(feature = "tracing"))]
        let _ = method;
    }

    /// The answer's status.
    #[inline]
    pub(crate) fn status(&self, status: http::StatusCode) {
        #[cfg(feature = "tracing")]
        if !self.span.is_disabled() {
            self.span
                .record("http.response.status_code", status.as_u16());
        }
        #[cfg(not(feature = "tracing"))]
        let _ = status;
    }

    /// Runs `f` inside the span.
    #[inline]
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        {
            let _entered = self.span.enter();
            f()
        }
        #[cfg(not(feature = "tracing"))]
        f()
    }

    /// The current span (for the layer's boxed paths, polled inside it).
    pub(crate) fn current() -> Self {
        RequestSpan {
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        }
    }

    /// `future`, polled inside the span (for futures spawned elsewhere).
    pub(crate) fn instrument<F: std::future::Future>(
        self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        {
            tracing::Instrument::instrument(future, self.span)
        }
        #[cfg(not(feature = "tracing"))]
        future
    }
}
