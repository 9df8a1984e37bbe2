//! [`SessionLayer`]: identity-bound MCP sessions as tower middleware.
//!
//! On every request the layer:
//!
//! 1. finds the caller's [`Identity`] through a [`ResolveIdentity`] (by
//!    default the `Identity` an auth layer put in the request extensions);
//!    none → `401` with `WWW-Authenticate: Bearer`, plus
//!    `resource_metadata="…"` once
//!    [`resource_metadata`](SessionLayer::resource_metadata) is set (MCP
//!    authorization asks for it);
//! 2. reads `Mcp-Session-Id`:
//!    - present: malformed → `400` (no store call); unknown, expired,
//!      terminated or owned by someone else → `404` (indistinguishable);
//!      otherwise the idle expiry slides (one store call) and the request
//!      goes on with the [`Session`](crate::Session) (which carries the
//!      roles cached at its creation) and the caller's [`Identity`] in its
//!      extensions. `DELETE` terminates it.
//!    - absent, POST: the body is read (capped, time-limited: see
//!      [Reading bodies](self#reading-bodies)) for its top-level `method`.
//!      `initialize`, in either era and whatever `MCP-Protocol-Version` or
//!      `Mcp-Method` say, creates a session bound to the caller and counted
//!      against the caps; its id goes out on the 2xx response in
//!      `Mcp-Session-Id`. `server/discover`, and anything else in the
//!      sessionless era (`MCP-Protocol-Version: 2026-07-28` or a later real
//!      date), is passed on with the caller's `Identity` and the
//!      [`Sessionless`] mark in the extensions; no id is minted or
//!      demanded. Anything else in the handshake era → `400`.
//!    - absent, any other method: sessionless era → passed through as
//!      above; handshake era → `400`.
//!
//! Whatever the path, the caller's current roles go into the extensions too
//! (from the manager's [`RoleSource`](crate::roles::RoleSource) through its
//! per-identity cache, never older than
//! [`Config::roles_max_age`](crate::Config::roles_max_age); a failed lookup
//! → `503`): [`Roles::of`](crate::Roles::of) reads them, the same way with a
//! session and without one.
//!
//! Every error the layer answers itself carries a JSON-RPC error body; see
//! [`codes`] for the codes and the README for the status table. `503` and
//! `429` carry `Retry-After` ([`retry_after`](SessionLayer::retry_after)).
//!
//! # Reading bodies
//!
//! A POST without a session id is read whole before the inner service sees
//! it, because only its body tells whether it is an `initialize`: headers
//! can lie, and an inner server such as rmcp 3.11 creates a session for
//! every `initialize`, whatever version it names. Passed on unread, such a
//! request would leave a session the layer neither binds nor counts. Two
//! caps apply:
//!
//! - handshake era: [`max_initialize_body`](SessionLayer::max_initialize_body)
//!   (64 KiB): only `initialize` and `server/discover` come without a
//!   session id;
//! - sessionless era: [`max_sessionless_body`](SessionLayer::max_sessionless_body)
//!   (4 MiB, rmcp's own request limit): every request comes without one,
//!   and tool arguments can be large.
//!
//! Either way the body must arrive within
//! [`initialize_body_timeout`](SessionLayer::initialize_body_timeout)
//! (10 s); larger → `413`, slower → `408`. It is parsed once, without
//! building a tree (only the top-level `method` is kept), and handed on
//! byte for byte. What the layer cannot read as one JSON-RPC message is
//! refused rather than passed to a server that might read it otherwise:
//! invalid JSON or UTF-8 → `400` (`-32700`); two top-level `method`
//! members → `400`; in the sessionless era, a batch holding an
//! `initialize` → `400`. The cost: sessionless POSTs are buffered and
//! parsed by the layer before the inner server parses them again.
//!
//! # Session ends and streams
//!
//! The layer keeps a registry of the sessions it serves in this process
//! (expiring with them) and hooks the manager's
//! [session-end events](crate::events). When a session ends, here or on
//! another replica, or expires here: its open event streams (GET streams,
//! SSE answers to POSTs) end, and in [`IdMode::Adopt`] the layer sends
//! `DELETE` with the id straight to the inner service, so the inner
//! server's own session goes too. While an event stream is open, its
//! session is refreshed every third of the idle timeout (at most every
//! 60 s), never past its deadline.
//!
//! # Ordering
//!
//! Put the authentication layer *outside* this one (so it runs first and
//! inserts the `Identity`), and CORS outside both (preflights carry no
//! credentials). With `tower::ServiceBuilder` the first layer listed is the
//! outermost; with axum's `Router::layer` the *last* call is the outermost.
//!
//! # Id modes
//!
//! - [`IdMode::Mint`] (default): the layer mints 64-hex-character ids. Use
//!   it in front of a stateless inner server (rmcp with
//!   `legacy_session_mode(false)`, a hand-written handler): the inner
//!   service never sees a session it did not get from the layer.
//! - [`IdMode::Adopt`]: the inner server mints ids (rmcp's default legacy
//!   session mode, which keeps server-to-client streams); the layer binds
//!   the id found on the `initialize` response to the caller and tracks its
//!   expiry. Foreign ids must be 1–128 visible ASCII characters. rmcp's own
//!   session keep-alive should be at least the layer's idle timeout, or rmcp
//!   drops sessions the layer still considers live (its 404 then reaches the
//!   client, which re-initializes).
//!
//! # Example
//!
//! ```
//! use axum::{routing::post, Extension, Router};
//! use mcp_session::{Roles, Session, SessionLayer, SessionManager};
//!
//! async fn handler(Extension(session): Extension<Session>, extensions: http::Extensions) -> String {
//!     let roles = Roles::of(&extensions).map_or(0, Roles::len);
//!     format!("{} has {roles} roles", session.identity_name())
//! }
//!
//! let manager = SessionManager::default();
//! let app: Router = Router::new()
//!     .route("/mcp", post(handler))
//!     .layer(SessionLayer::new(manager));
//!     // .layer(your_auth_layer) — outermost: it runs first.
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

mod body;
mod classify;
mod error_response;
mod future;
mod local;
mod rejection;
mod unsessioned;

pub use body::{LayerBody, RequestBody, ResponseBody};
pub use classify::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID, SESSIONLESS_PROTOCOL_VERSION};
pub use error_response::ErrorResponse;
pub use future::ResponseFuture;
pub use rejection::codes;

use self::classify::{classify_headers, HeaderVerdict};
use self::local::LocalSessions;
use self::rejection::Rejection;
use crate::identity::GrantedRoles;
use crate::log::log_warn;
use crate::observe::RequestSpan;
use crate::{
    Identity, IdentityFromExtensions, MokaStore, ResolveIdentity, Roles, SessionManager,
    SessionStore,
};

/// Default cap on the body of a handshake-era POST without a session id
/// (read to detect `initialize`): 64 KiB.
pub const DEFAULT_MAX_INITIALIZE_BODY: usize = 64 * 1024;
/// Default cap on the body of a sessionless-era POST (read to make sure it is
/// not an `initialize`): 4 MiB, rmcp's own default request limit.
pub const DEFAULT_MAX_SESSIONLESS_BODY: usize = 4 * 1024 * 1024;
/// Default time allowed to receive a body the layer reads: 10 seconds.
pub const DEFAULT_INITIALIZE_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `Retry-After` on `503` and `429` answers: 1 second.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Who mints session ids. See the [module docs](self#id-modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IdMode {
    /// The layer mints ids (64 lowercase hex characters).
    #[default]
    Mint,
    /// The inner server mints ids; the layer binds and tracks them.
    Adopt,
}

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) id_mode: IdMode,
    pub(crate) allow_anonymous: bool,
    pub(crate) max_initialize_body: usize,
    pub(crate) max_sessionless_body: usize,
    pub(crate) initialize_body_timeout: Duration,
    pub(crate) retry_after: Duration,
    /// `WWW-Authenticate` on the layer's `401` (plain `Bearer` when `None`).
    pub(crate) challenge: Option<HeaderValue>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            id_mode: IdMode::Mint,
            allow_anonymous: false,
            max_initialize_body: DEFAULT_MAX_INITIALIZE_BODY,
            max_sessionless_body: DEFAULT_MAX_SESSIONLESS_BODY,
            initialize_body_timeout: DEFAULT_INITIALIZE_BODY_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            challenge: None,
        }
    }
}

/// Tower layer that applies [`SessionMiddleware`]. Cheap to clone.
///
/// ```
/// use mcp_session::{IdMode, SessionLayer, SessionManager};
/// use std::time::Duration;
///
/// let layer = SessionLayer::new(SessionManager::default())
///     .id_mode(IdMode::Adopt)
///     .max_initialize_body(16 * 1024)
///     .initialize_body_timeout(Duration::from_secs(5));
/// # let _ = layer;
/// ```
pub struct SessionLayer<S = MokaStore, R = IdentityFromExtensions> {
    manager: SessionManager<S>,
    resolver: R,
    settings: Settings,
    local: Arc<LocalSessions>,
}

impl<S, R: Clone> Clone for SessionLayer<S, R> {
    fn clone(&self) -> Self {
        SessionLayer {
            manager: self.manager.clone(),
            resolver: self.resolver.clone(),
            settings: self.settings.clone(),
            local: self.local.clone(),
        }
    }
}

impl<S, R: std::fmt::Debug> std::fmt::Debug for SessionLayer<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("resolver", &self.resolver)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> SessionLayer<S> {
    /// A layer over `manager`, reading the caller from the request
    /// extensions ([`IdentityFromExtensions`]), minting ids.
    pub fn new(manager: SessionManager<S>) -> Self {
        SessionLayer {
            local: LocalSessions::new(&manager),
            manager,
            resolver: IdentityFromExtensions,
            settings: Settings::default(),
        }
    }
}

impl<S: SessionStore, R: ResolveIdentity> SessionLayer<S, R> {
    /// Uses another way to find the caller.
    pub fn resolve_identity<R2: ResolveIdentity>(self, resolver: R2) -> SessionLayer<S, R2> {
        SessionLayer {
            manager: self.manager,
            resolver,
            settings: self.settings,
            local: self.local,
        }
    }

    /// Who mints session ids (default [`IdMode::Mint`]).
    pub fn id_mode(mut self, mode: IdMode) -> Self {
        self.settings.id_mode = mode;
        self
    }

    /// Lets unauthenticated callers in as [`Identity::anonymous`] (they then
    /// share one identity: anyone holding a session id can use it). Off by
    /// default: no identity → `401`.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.settings.allow_anonymous = allow;
        self
    }

    /// Cap on the body of a handshake-era POST without a session id
    /// (default 64 KiB); larger → `413`.
    pub fn max_initialize_body(mut self, bytes: usize) -> Self {
        self.settings.max_initialize_body = bytes;
        self
    }

    /// Cap on the body of a sessionless-era POST (`MCP-Protocol-Version:
    /// 2026-07-28` or later, no session id), which the layer reads to make
    /// sure it is not an `initialize` (default 4 MiB, rmcp's own limit);
    /// larger → `413`. Keep it at least the inner server's own limit, or
    /// the layer refuses requests the server would take.
    pub fn max_sessionless_body(mut self, bytes: usize) -> Self {
        self.settings.max_sessionless_body = bytes;
        self
    }

    /// Time allowed to receive a body the layer reads (either cap above;
    /// default 10 s); slower → `408`.
    pub fn initialize_body_timeout(mut self, timeout: Duration) -> Self {
        self.settings.initialize_body_timeout = timeout;
        self
    }

    /// `Retry-After` sent with `503` and `429` answers (default 1 s).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.settings.retry_after = after;
        self
    }

    /// Where the protected resource metadata (RFC 9728) is, for the layer's
    /// own `401` answers: `WWW-Authenticate: Bearer resource_metadata="<url>"`,
    /// as MCP authorization asks of a server (clients discover the
    /// authorization server from it). Without it the challenge is a plain
    /// `Bearer`.
    ///
    /// ```
    /// use http::Uri;
    /// use mcp_session::{SessionLayer, SessionManager};
    ///
    /// let layer = SessionLayer::new(SessionManager::default()).resource_metadata(
    ///     Uri::from_static("https://mcp.example.com/.well-known/oauth-protected-resource"),
    /// );
    /// # let _ = layer;
    /// ```
    pub fn resource_metadata(mut self, url: http::Uri) -> Self {
        self.settings.challenge = Some(error_response::bearer_challenge(&url.to_string()));
        self
    }

    /// The manager.
    pub fn manager(&self) -> &SessionManager<S> {
        &self.manager
    }
}

impl<T, S: SessionStore, R: ResolveIdentity> Layer<T> for SessionLayer<S, R> {
    type Service = SessionMiddleware<T, S, R>;

    fn layer(&self, inner: T) -> Self::Service {
        SessionMiddleware {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] produces. See the [module docs](self).
pub struct SessionMiddleware<T, S = MokaStore, R = IdentityFromExtensions> {
    inner: T,
    layer: SessionLayer<S, R>,
}

impl<T: Clone, S, R: Clone> Clone for SessionMiddleware<T, S, R> {
    fn clone(&self) -> Self {
        SessionMiddleware {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<T: std::fmt::Debug, S, R: std::fmt::Debug> std::fmt::Debug for SessionMiddleware<T, S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<T, S, R> SessionMiddleware<T, S, R> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T, S, R, ReqB, ResB> Service<Request<ReqB>> for SessionMiddleware<T, S, R>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Send + 'static,
    S: SessionStore,
    R: ResolveIdentity,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Send,
    ResB: Send + 'static,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = T::Error;
    type Future = ResponseFuture<T, S, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The ready service goes into the future; a clone stays for next time.
        let clone = self.inner.clone();
        if self.layer.settings.id_mode == IdMode::Adopt {
            // Whoever ends a session can then close the inner server's.
            self.layer.local.close_with(&clone, &request);
        }
        let inner = std::mem::replace(&mut self.inner, clone);
        let span = RequestSpan::new(&request);
        let future = span.in_scope(|| self.layer.route(inner, request, None, &span));
        future.in_span(span)
    }
}

impl<S: SessionStore, R: ResolveIdentity> SessionLayer<S, R> {
    /// Decides what a request is and what happens to it. `roles` are the
    /// caller's, when a lookup already found them (the second pass after a
    /// cold role cache).
    fn route<T, ReqB, ResB>(
        &self,
        inner: T,
        mut request: Request<ReqB>,
        roles: Option<Roles>,
        span: &RequestSpan,
    ) -> ResponseFuture<T, S, ReqB, ResB>
    where
        T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Send + 'static,
        T::Future: Send + 'static,
        T::Error: Send + 'static,
        ReqB: Body<Data = Bytes> + Send + 'static,
        ReqB::Error: Send,
        ResB: Send + 'static,
    {
        let retry_after = self.settings.retry_after;
        let reject = |r: Rejection| ResponseFuture::rejected(r.into_response(retry_after));

        let identity = match self.resolver.resolve(&request) {
            Some(identity) => identity,
            None if self.settings.allow_anonymous => Cow::Owned(Identity::anonymous()),
            None => return reject(Rejection::Unauthenticated(self.settings.challenge.clone())),
        };
        let verdict =
            match classify_headers(request.method(), request.headers(), self.settings.id_mode) {
                Ok(HeaderVerdict::Missing) => return reject(Rejection::MissingSessionId),
                Ok(verdict) => verdict,
                Err(rejection) => return reject(rejection),
            };
        // The roles to authorize with: cached (the hot path), or looked up
        // once for everyone waiting on this identity, then routed again.
        // One clock read serves the role cache and the session's expiry.
        let now = self.manager.now();
        let Some(roles) = roles.or_else(|| self.manager.roles_now(&identity, now)) else {
            let caller = identity.into_owned();
            let layer = self.clone();
            let span = span.clone();
            return ResponseFuture::boxed(async move {
                match layer.manager.roles(&caller).await {
                    Ok(roles) => layer.route(inner, request, Some(roles), &span).await,
                    Err(error) => {
                        log_warn!(error; "no roles for {}; answering 503", caller.id());
                        Ok(Rejection::RolesUnavailable.into_response(retry_after))
                    }
                }
            });
        };
        match verdict {
            HeaderVerdict::Session(id) if request.method() == http::Method::DELETE => {
                span.session(&id);
                let identity = identity.into_owned();
                request.extensions_mut().insert(GrantedRoles(roles));
                ResponseFuture::boxed(unsessioned::terminate(
                    inner,
                    self.manager.clone(),
                    self.local.clone(),
                    self.settings.clone(),
                    id,
                    identity,
                    request,
                ))
            }
            HeaderVerdict::Session(id) => {
                span.session(&id);
                // The hot path: no clone of the caller when the auth layer
                // left it in the extensions.
                let touch = self.manager.touch(&id, &identity, now);
                if let Cow::Owned(identity) = identity {
                    request.extensions_mut().insert(identity);
                }
                ResponseFuture::touching(touch, inner, request, roles, &self.local, retry_after)
            }
            HeaderVerdict::Sessionless => {
                if let Cow::Owned(identity) = identity {
                    request.extensions_mut().insert(identity);
                }
                let extensions = request.extensions_mut();
                extensions.insert(GrantedRoles(roles));
                extensions.insert(Sessionless);
                ResponseFuture::calling(inner, request)
            }
            HeaderVerdict::InspectBody(era) => {
                let identity = identity.into_owned();
                request.extensions_mut().insert(GrantedRoles(roles));
                ResponseFuture::boxed(unsessioned::inspect_body(
                    inner,
                    self.manager.clone(),
                    self.local.clone(),
                    self.settings.clone(),
                    era,
                    identity,
                    request,
                ))
            }
            HeaderVerdict::Missing => reject(Rejection::MissingSessionId),
        }
    }
}

/// Marks a request the layer let through without a [`Session`]: a
/// sessionless-era (2026-07-28 or later) request, `server/discover`, or in
/// [`IdMode::Adopt`] the `initialize` and `DELETE` it hands to the inner
/// server. The caller's [`Identity`] is in the extensions beside it.
///
/// A request with a session carries the [`Session`] instead. Either one
/// tells a handler that the layer checked the request (an auth layer alone
/// inserts only the `Identity`); [`Roles::of`](crate::Roles::of) reads the
/// roles to authorize with from whichever is there.
///
/// [`Session`]: crate::Session
///
/// ```
/// use mcp_session::layer::Sessionless;
/// use mcp_session::Session;
///
/// fn era(extensions: &http::Extensions) -> &'static str {
///     match (extensions.get::<Session>(), extensions.get::<Sessionless>()) {
///         (Some(_), _) => "handshake session",
///         (None, Some(_)) => "no session",
///         (None, None) => "not through the session layer",
///     }
/// }
/// assert_eq!(era(&http::Extensions::new()), "not through the session layer");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sessionless;

/// Requests let through without a session lookup still get the caller, and
/// the [`Sessionless`] mark (zero-sized: no allocation).
fn insert_caller<B>(request: &mut Request<B>, identity: Identity) {
    ensure_identity(request, identity);
    request.extensions_mut().insert(Sessionless);
}

/// Puts the caller into the extensions unless that very identity is there
/// already (the default resolver read it from there): replacing it would
/// cost an allocation and a free on every request for nothing.
fn ensure_identity<B>(request: &mut Request<B>, identity: Identity) {
    let present = request.extensions().get::<Identity>();
    if !present.is_some_and(|present| present.same_as(&identity)) {
        request.extensions_mut().insert(identity);
    }
}
