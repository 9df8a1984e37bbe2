//! [`ErrorResponse`]: the layer's error answers (an HTTP status plus a
//! JSON-RPC error body), public so that an auth layer answers the same way.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use super::rejection::codes;

/// An error answer as the session layer sends its own: an HTTP status, a
/// JSON-RPC error body (`{"jsonrpc":"2.0","id":null,"error":{"code","message"}}`)
/// with `Content-Type: application/json`, and the headers the status calls
/// for (`WWW-Authenticate` on `401`, `Retry-After` on `429` and `503`).
///
/// MCP clients read the body's message; HTTP clients and proxies read the
/// status and headers. An auth layer in front of the session layer answers
/// `401` with [`ErrorResponse::unauthorized`]:
///
/// ```
/// use http::StatusCode;
/// use mcp_session::layer::ErrorResponse;
///
/// let response: http::Response<String> = ErrorResponse::unauthorized("token expired")
///     .resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource")
///     .into_response();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#
/// );
/// let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
/// assert_eq!(body["error"]["code"], mcp_session::layer::codes::UNAUTHENTICATED);
/// assert_eq!(body["error"]["message"], "token expired");
/// ```
///
/// The body type is any `B: From<String>`: `String`, `axum::body::Body`,
/// `http_body_util::Full<Bytes>`, …
#[derive(Clone, Debug)]
pub struct ErrorResponse {
    status: StatusCode,
    code: i64,
    message: Cow<'static, str>,
    challenge: Option<HeaderValue>,
    retry_after: Duration,
}

/// When a `429` or `503` answer says to try again, unless told otherwise.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ErrorResponse {
    /// An answer with this status, JSON-RPC error code (see
    /// [`codes`](super::codes)) and message.
    pub fn new(status: StatusCode, code: i64, message: impl Into<Cow<'static, str>>) -> Self {
        ErrorResponse {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }

    /// `401 Unauthorized`, code [`UNAUTHENTICATED`](super::codes::UNAUTHENTICATED),
    /// `WWW-Authenticate: Bearer` (see [`resource_metadata`](Self::resource_metadata)).
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED, message)
    }

    /// Names the protected resource metadata document in the `401`
    /// challenge: `WWW-Authenticate: Bearer resource_metadata="<url>"`
    /// (RFC 9728; MCP clients find the authorization server from it). `"`
    /// and `\` are escaped; controls and non-ASCII, which a header cannot
    /// hold, are percent-encoded, so the header is always valid.
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.challenge = Some(bearer_challenge(url));
        self
    }

    /// How long a `429` or `503` answer tells the client to wait
    /// (`Retry-After`, whole seconds, at least 1). Default 1 s.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON-RPC error body.
    pub fn body(&self) -> String {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": self.code, "message": self.message },
        })
        .to_string()
    }

    /// The answer, with any body type that can hold a string.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        self.set_head(&mut response);
        response
    }

    /// The answer with a [`Bytes`] body (what the layer's own body type wraps).
    pub(crate) fn into_bytes_response(self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.body()));
        self.set_head(&mut response);
        response
    }

    fn set_head<B>(self, response: &mut Response<B>) {
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // RFC 9110 (503) and RFC 6585 (429): when to try again.
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(self.retry_after.as_secs().max(1)),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                self.challenge.unwrap_or(HeaderValue::from_static("Bearer")),
            );
        }
    }

    /// Uses this challenge on a `401` (already built by the layer).
    pub(crate) fn challenge(mut self, challenge: Option<HeaderValue>) -> Self {
        if challenge.is_some() {
            self.challenge = challenge;
        }
        self
    }
}

/// `Bearer resource_metadata="<url>"`: a quoted-string (`"` and `\`
/// escaped), with controls and non-ASCII percent-encoded.
pub(crate) fn bearer_challenge(url: &str) -> HeaderValue {
    let mut quoted = String::with_capacity(url.len() + 2);
    for byte in url.bytes() {
        match byte {
            b'"' | b'\\' => {
                quoted.push('\\');
                quoted.push(byte as char);
            }
            0..=0x1f | 0x7f..=0xff => quoted.push_str(&format!("%{byte:02X}")),
            _ => quoted.push(byte as char),
        }
    }
    HeaderValue::from_str(&format!("Bearer resource_metadata=\"{quoted}\""))
        .unwrap_or(HeaderValue::from_static("Bearer"))
}
