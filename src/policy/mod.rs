//! [`PolicyLayer`]: tool-level authorization by role (feature `policy`).
//!
//! The layer sits *inside* [`SessionLayer`](crate::SessionLayer), in front
//! of any MCP Streamable HTTP server (rmcp, axum, hand-written hyper). It
//! reads the caller's roles with [`Roles::of`](crate::Roles::of), so it
//! works the same for sessions and for sessionless (2026-07-28) requests,
//! and decides each JSON-RPC request against a [`Policy`]: who may call
//! which tool, read which resource, get which prompt, use which method.
//!
//! On every POST the layer:
//!
//! 1. reads the body, capped ([`max_body`](PolicyLayer::max_body), 4 MiB;
//!    larger → `413`) and time-limited
//!    ([`body_timeout`](PolicyLayer::body_timeout), 10 s; slower → `408`),
//!    and parses each message's `id`, `method` and `params.name` /
//!    `params.uri` in one pass (invalid JSON → `400`, `-32700`; a repeated
//!    member, a `tools/call` without a string name and the like → `400`,
//!    `-32600`). The bytes go on to the server unchanged.
//! 2. checks the mirrored headers against the body, whatever the era in
//!    which they come: `Mcp-Method` must equal the body's `method`, and for
//!    `tools/call`, `resources/read` and `prompts/get` (also
//!    `resources/subscribe`/`unsubscribe` when sent) `Mcp-Name`, decoded
//!    from the `=?base64?…?=` form when it is in it, must equal
//!    `params.name` / `params.uri`. A mismatch → `400` with JSON-RPC error
//!    `-32020` (HeaderMismatch). On a 2026-07-28 request
//!    (`MCP-Protocol-Version: 2026-07-28` or a later date) `Mcp-Method` is
//!    required, and `Mcp-Name` on those three methods: missing → `400`,
//!    `-32020`. The decision is always taken on the body, never on the
//!    headers alone.
//! 3. decides (see [`Policy`] for the rules). A denied request gets a
//!    JSON-RPC error answer carrying its `id`, code
//!    [`codes::POLICY_DENIED`], and a message that says what is missing
//!    ("tool `admin_echo` requires role `admin`"); the inner server never
//!    sees it. HTTP status `200` by default
//!    ([`denial_status`](PolicyLayer::denial_status)): the refusal is the
//!    JSON-RPC call's outcome, which clients surface as the call's error,
//!    and not an HTTP authorization failure (a `403` makes MCP clients
//!    attempt a scope step-up that cannot help).
//! 4. filters the answers of `tools/list`, `resources/list`,
//!    `resources/templates/list` and `prompts/list` down to what the caller
//!    may use (an item is kept when calling, reading or getting it would be
//!    allowed; templates are matched by their `uriTemplate` string). JSON
//!    answers are read whole, up to
//!    [`max_list_answer`](PolicyLayer::max_list_answer) (4 MiB; larger →
//!    `502`, fail closed). SSE answers stream: the layer holds at most one
//!    event at a time (up to the same cap; larger → the stream ends with an
//!    error answer for the list request), and nothing once the list answer
//!    went by. A filtered result is marked `"cacheScope": "private"` (always
//!    on 2026-07-28 requests; on older ones when the server set the member):
//!    its content depends on who asks.
//!
//! **Batches** (2025-03-26): every element is decided; if any is denied,
//! the whole batch is refused and none of it reaches the server (a batch
//! runs as a unit or not at all). The answer is a batch answer: the
//! denied elements get their denial, the others a
//! [`codes::POLICY_DENIED`] error saying which element was denied;
//! notifications get nothing. On 2026-07-28 requests a batch is `400`
//! (that revision has no batches).
//!
//! **Fail closed.** A request without roles (it did not pass through a
//! `SessionLayer`: the layer is misplaced) → `500` with
//! [`codes::POLICY_MISPLACED`]; no request reaches the server undecided.
//! `initialize`, `ping`, `server/discover` and notifications are never
//! refused (the protocol's plumbing); GET and DELETE pass untouched.
//!
//! # Ordering
//!
//! auth → [`SessionLayer`](crate::SessionLayer) → [`PolicyLayer`] → server.
//! With `tower::ServiceBuilder` the first layer listed is the outermost.
//!
//! ```
//! use axum::{routing::post, Router};
//! use mcp_session::policy::{Policy, PolicyLayer, Rule};
//! use mcp_session::{SessionLayer, SessionManager};
//! use tower::ServiceBuilder;
//!
//! let policy = Policy::default_deny()
//!     .rule(Rule::allow(["*"]).named("open tools").tools(["whoami"]))
//!     .rule(Rule::allow(["admin"]).named("admin tools").tools(["admin_*"]))
//!     .rule(Rule::allow(["reader"]).resources(["file:///public/*"]))
//!     .build()
//!     .unwrap();
//! # async fn mcp_server() -> &'static str { "" }
//! # let auth = tower::layer::util::Identity::new();
//! let server: Router = Router::new().route("/mcp", post(mcp_server)); // the MCP server
//! let mcp = ServiceBuilder::new()
//!     .layer(auth) // outermost: puts the caller's Identity into the extensions
//!     .layer(SessionLayer::new(SessionManager::default())) // sessions, roles
//!     .layer(PolicyLayer::new(policy)) // decides on those roles
//!     .service(server);
//! # let _ = mcp;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::Value;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

mod filter;
pub mod message;
mod rules;

pub use rules::{
    is_exempt, is_list, Decision, Denial, Effect, Kind, Pattern, PendingRule, Policy,
    PolicyBuilder, PolicyError, Rule, RuleBuilder,
};

use self::filter::{ListKind, ListPlan, SseFilter, SseOutput};
use self::message::{decode_header, BodyError};
use crate::layer::{RequestBody, ResponseBody, MCP_PROTOCOL_VERSION, SESSIONLESS_PROTOCOL_VERSION};
use crate::Roles;

/// JSON-RPC error codes of the policy layer's answers (besides `-32700`
/// and `-32600` for bodies it cannot read, as the session layer uses them).
pub mod codes {
    /// The policy refuses this request for this caller.
    pub const POLICY_DENIED: i64 = -32011;
    /// The request carries no roles: the policy layer is not inside a
    /// `SessionLayer`.
    pub const POLICY_MISPLACED: i64 = -32012;
    /// A list answer could not be filtered (too large, not JSON).
    pub const LIST_UNFILTERABLE: i64 = -32013;
    /// `Mcp-Method` or `Mcp-Name` is missing or disagrees with the body
    /// (MCP 2026-07-28 HeaderMismatch).
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// The `Mcp-Method` header (2026-07-28).
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// The `Mcp-Name` header (2026-07-28).
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// Default cap on a request body the policy layer reads: 4 MiB (rmcp's own
/// request limit).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Default time allowed to receive a request body: 10 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a list answer (JSON) or one SSE event of it: 4 MiB.
pub const DEFAULT_MAX_LIST_ANSWER: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
struct Settings {
    max_body: usize,
    body_timeout: Duration,
    max_list_answer: usize,
    denial_status: StatusCode,
}

/// Tower layer that applies [`PolicyService`]. Cheap to clone. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct PolicyLayer {
    policy: Policy,
    settings: Arc<Settings>,
}

impl PolicyLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Policy) -> Self {
        PolicyLayer {
            policy,
            settings: Arc::new(Settings {
                max_body: DEFAULT_MAX_BODY,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                max_list_answer: DEFAULT_MAX_LIST_ANSWER,
                denial_status: StatusCode::OK,
            }),
        }
    }

    /// Cap on a request body (default 4 MiB); larger → `413`. Keep it at
    /// least the inner server's own limit.
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_body = bytes;
        self
    }

    /// Time allowed to receive a request body (default 10 s); slower → `408`.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.settings).body_timeout = timeout;
        self
    }

    /// Cap on a JSON list answer, or on one SSE event of a streamed one
    /// (default 4 MiB); larger fails closed.
    pub fn max_list_answer(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_list_answer = bytes;
        self
    }

    /// HTTP status of a denial (default `200`: the JSON-RPC error is the
    /// call's answer). `403` suits deployments whose gateways count HTTP
    /// statuses; MCP clients may then try a scope step-up first.
    pub fn denial_status(mut self, status: StatusCode) -> Self {
        Arc::make_mut(&mut self.settings).denial_status = status;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`PolicyLayer`] produces.
#[derive(Clone, Debug)]
pub struct PolicyService<S> {
    inner: S,
    layer: PolicyLayer,
}

impl<S> PolicyService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for PolicyService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone,
    B: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
{
    type Response = Response<PolicyBody<ResB>>;
    type Error = S::Error;
    type Future = PolicyFuture<S, B, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.layer.settings.clone();
        let Some(roles) = Roles::of(request.extensions()).cloned() else {
            return PolicyFuture::ready(Rejection::Misplaced, &settings);
        };
        if request.method() != Method::POST {
            let mut inner = inner;
            let future = inner.call(request.map(RequestBody::inner));
            return PolicyFuture {
                state: State::Calling { future, plan: None },
                settings,
            };
        }
        for header in [MCP_METHOD, MCP_NAME] {
            if request.headers().get_all(&header).iter().nth(1).is_some() {
                return PolicyFuture::ready(Rejection::RepeatedHeader(header), &settings);
            }
        }
        let (parts, body) = request.into_parts();
        PolicyFuture {
            state: State::Reading {
                body,
                deadline: None,
                started: Instant::now(),
                buf: Buf::default(),
                pending: Some(Box::new(Pending {
                    inner,
                    parts,
                    roles,
                    policy: self.layer.policy.clone(),
                })),
            },
            settings,
        }
    }
}

/// What a request waits with while its body is read.
struct Pending<S> {
    inner: S,
    parts: http::request::Parts,
    roles: Roles,
    policy: Policy,
}

/// A body being gathered: one chunk kept as it is, more copied together.
#[derive(Default)]
struct Buf {
    first: Option<Bytes>,
    more: Option<BytesMut>,
    len: usize,
}

impl Buf {
    fn push(&mut self, data: Bytes) {
        self.len += data.len();
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(first.len() + data.len());
                more.extend_from_slice(first);
                more.extend_from_slice(&data);
                self.more = Some(more);
            }
            (Some(_), Some(more)) => more.extend_from_slice(&data),
        }
    }

    fn take(&mut self) -> Bytes {
        match (self.first.take(), self.more.take()) {
            (_, Some(more)) => more.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

pin_project! {
    /// Response future of [`PolicyService`].
    pub struct PolicyFuture<S, B, ResB>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<S, S::Future, B, ResB>,
        settings: Arc<Settings>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B, ResB> {
        Reading {
            #[pin]
            body: B,
            // Armed only if the body is not there at once.
            deadline: Option<Pin<Box<Sleep>>>,
            started: Instant,
            buf: Buf,
            pending: Option<Box<Pending<S>>>,
        },
        Calling {
            #[pin]
            future: F,
            plan: Option<ListPlan>,
        },
        Collecting {
            #[pin]
            body: ResB,
            parts: Option<http::response::Parts>,
            buf: Buf,
            plan: Option<ListPlan>,
        },
        Ready {
            response: Option<Response<PolicyBody<ResB>>>,
        },
    }
}

impl<S, B, ResB> PolicyFuture<S, B, ResB>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn ready(rejection: Rejection, settings: &Arc<Settings>) -> Self {
        PolicyFuture {
            state: State::Ready {
                response: Some(rejection.into_response(settings)),
            },
            settings: settings.clone(),
        }
    }
}

impl<S, B, ResB> Future for PolicyFuture<S, B, ResB>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    B: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
{
    type Output = Result<Response<PolicyBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Ready { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Reading {
                    mut body,
                    deadline,
                    started,
                    buf,
                    pending,
                } => {
                    let done = loop {
                        match body.as_mut().poll_frame(cx) {
                            Poll::Ready(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    if buf.len + data.len() > this.settings.max_body {
                                        break Err(Rejection::BodyTooLarge(this.settings.max_body));
                                    }
                                    buf.push(data);
                                }
                            }
                            Poll::Ready(Some(Err(_))) => break Err(Rejection::BodyUnreadable),
                            Poll::Ready(None) => break Ok(()),
                            Poll::Pending => {
                                let timeout = this.settings.body_timeout;
                                let sleep = deadline.get_or_insert_with(|| {
                                    Box::pin(tokio::time::sleep_until(*started + timeout))
                                });
                                if sleep.as_mut().poll(cx).is_ready() {
                                    break Err(Rejection::BodyTimeout);
                                }
                                return Poll::Pending;
                            }
                        }
                    };
                    let pending = pending.take().expect("polled after completion");
                    match done {
                        Err(rejection) => State::Ready {
                            response: Some(rejection.into_response(this.settings)),
                        },
                        Ok(()) => decide_and_call(*pending, buf.take(), this.settings),
                    }
                }
                StateProj::Calling { future, plan } => {
                    let response = ready!(future.poll(cx))?;
                    match plan.take() {
                        None => State::Ready {
                            response: Some(response.map(passed)),
                        },
                        Some(plan) => filter_response(response, plan, this.settings),
                    }
                }
                StateProj::Collecting {
                    mut body,
                    parts,
                    buf,
                    plan,
                } => {
                    let outcome = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            Some(Ok(frame)) => {
                                if let Ok(data) = frame.into_data() {
                                    if buf.len + data.len() > this.settings.max_list_answer {
                                        break None;
                                    }
                                    buf.push(data);
                                }
                            }
                            Some(Err(_)) => break None,
                            None => break Some(()),
                        }
                    };
                    let mut plan = plan.take().expect("polled after completion");
                    let mut parts = parts.take().expect("polled after completion");
                    let filtered = match outcome {
                        Some(()) => plan.filter_json(buf.take()),
                        None => Err(plan.first_id()),
                    };
                    let response = match filtered {
                        Ok(bytes) => {
                            parts.headers.remove(CONTENT_LENGTH);
                            Response::from_parts(parts, produced(bytes))
                        }
                        Err(id) => Rejection::Unfilterable(id).into_response(this.settings),
                    };
                    State::Ready {
                        response: Some(response),
                    }
                }
            };
            this.state.set(next);
        }
    }
}

/// The inner server answered a request holding list requests.
fn filter_response<S, F, B, ResB: Body<Data = Bytes>>(
    response: Response<ResB>,
    plan: ListPlan,
    settings: &Settings,
) -> State<S, F, B, ResB> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let (mut parts, body) = response.into_parts();
    match content_type.as_deref() {
        _ if !parts.status.is_success() || parts.status == StatusCode::ACCEPTED => State::Ready {
            response: Some(Response::from_parts(parts, passed(body))),
        },
        Some("application/json") => State::Collecting {
            body,
            parts: Some(parts),
            buf: Buf::default(),
            plan: Some(plan),
        },
        Some("text/event-stream") => {
            parts.headers.remove(CONTENT_LENGTH);
            let filter = SseFilter::new(plan, settings.max_list_answer);
            State::Ready {
                response: Some(Response::from_parts(
                    parts,
                    ResponseBody::inner(FilteredBody::new(body, Some(filter))),
                )),
            }
        }
        _ => State::Ready {
            response: Some(Rejection::Unfilterable(plan.first_id()).into_response(settings)),
        },
    }
}

/// Whether the request speaks 2026-07-28 or later (a real date).
fn is_2026(headers: &HeaderMap) -> bool {
    headers.get(MCP_PROTOCOL_VERSION).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() == 10
            && v.iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
            && v >= SESSIONLESS_PROTOCOL_VERSION.as_bytes()
    })
}

/// Decides a request whose body was read, then calls the server or answers.
fn decide_and_call<S, B, ResB>(
    pending: Pending<S>,
    bytes: Bytes,
    settings: &Settings,
) -> State<S, S::Future, B, ResB>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
{
    let Pending {
        mut inner,
        parts,
        roles,
        policy,
    } = pending;
    let reject = |r: Rejection| State::Ready {
        response: Some(r.into_response(settings)),
    };
    let plan = match check(&parts.headers, &bytes, &roles, &policy) {
        Ok(plan) => plan,
        Err(rejection) => return reject(rejection),
    };
    let private_scope = is_2026(&parts.headers);
    let request = Request::from_parts(parts, RequestBody::held(bytes));
    let future = inner.call(request);
    State::Calling {
        future,
        plan: (!plan.is_empty()).then_some(ListPlan {
            pending: plan,
            roles,
            policy,
            private_scope,
        }),
    }
}

/// Parses, checks the headers, decides. `Ok`: the list requests to filter.
fn check(
    headers: &HeaderMap,
    bytes: &[u8],
    roles: &Roles,
    policy: &Policy,
) -> Result<Vec<(Value, ListKind)>, Rejection> {
    let body = message::parse(bytes).map_err(|e| match e {
        BodyError::Json => Rejection::InvalidJson,
        BodyError::Invalid(why) => Rejection::Invalid(why),
    })?;
    let era_2026 = is_2026(headers);
    let method_header = headers.get(MCP_METHOD);
    let name_header = headers.get(MCP_NAME);
    let mut lists = Vec::new();
    match body {
        message::Body::Single(m) => {
            let id = m.id.clone().unwrap_or(Value::Null);
            let mismatch = |what| Rejection::HeaderMismatch(what, id.clone());
            match (method_header, m.method.as_deref()) {
                (None, _) if era_2026 => {
                    return Err(mismatch(
                        "missing Mcp-Method header (required on 2026-07-28 requests)",
                    ))
                }
                (None, _) => {}
                (Some(h), Some(method))
                    if decode_header(h.as_bytes()).as_deref() == Some(method) => {}
                (Some(_), _) => {
                    return Err(mismatch(
                        "Mcp-Method header does not match the body's method",
                    ))
                }
            }
            let Some(method) = m.method.as_deref() else {
                return Ok(lists); // a response from the client: nothing to decide
            };
            if let Some(name) = m.name.as_deref() {
                match name_header {
                    None if era_2026 && method != "resources/subscribe" && method != "resources/unsubscribe" => {
                        return Err(mismatch(
                            "missing Mcp-Name header (required on 2026-07-28 tools/call, resources/read, prompts/get)",
                        ))
                    }
                    None => {}
                    Some(h) if decode_header(h.as_bytes()).as_deref() == Some(name) => {}
                    Some(_) => {
                        return Err(mismatch("Mcp-Name header does not match the body's name"))
                    }
                }
            }
            if !policy.allows(method, m.name.as_deref(), roles) {
                crate::observe::policy_denied(method);
                let denial = policy.denial(method, m.name.as_deref(), roles);
                return Err(Rejection::Denied(id, denial.message().to_string()));
            }
            if let (Some(kind), Some(id)) = (ListKind::of(method), m.id) {
                lists.push((id, kind));
            }
        }
        message::Body::Batch(messages) => {
            if era_2026 {
                return Err(Rejection::Invalid(
                    "JSON-RPC batches are not part of MCP 2026-07-28".into(),
                ));
            }
            if method_header.is_some() || name_header.is_some() {
                return Err(Rejection::HeaderMismatch(
                    "Mcp-Method/Mcp-Name cannot describe a JSON-RPC batch",
                    Value::Null,
                ));
            }
            let denied = messages.iter().enumerate().find_map(|(i, m)| {
                let method = m.method.as_deref()?;
                (!policy.allows(method, m.name.as_deref(), roles)).then_some(i)
            });
            if let Some(at) = denied {
                crate::observe::policy_denied("batch");
                let answers = messages
                    .iter()
                    .filter_map(|m| {
                        let id = m.id.clone()?;
                        m.method.as_ref()?;
                        let message = match m.method.as_deref() {
                            Some(method) if !policy.allows(method, m.name.as_deref(), roles) => {
                                policy.denial(method, m.name.as_deref(), roles).message().to_string()
                            }
                            _ => format!(
                                "not run: element {} of this batch was denied, and a batch runs whole or not at all",
                                at + 1
                            ),
                        };
                        Some(error_object(id, codes::POLICY_DENIED, &message))
                    })
                    .collect();
                return Err(Rejection::DeniedBatch(answers));
            }
            for m in messages {
                if let (Some(kind), Some(id)) = (m.method.as_deref().and_then(ListKind::of), m.id) {
                    lists.push((id, kind));
                }
            }
        }
    }
    Ok(lists)
}

fn error_object(id: Value, code: i64, message: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    })
}

/// Why the policy layer answered a request itself.
#[derive(Debug)]
enum Rejection {
    Misplaced,
    RepeatedHeader(HeaderName),
    BodyTooLarge(usize),
    BodyTimeout,
    BodyUnreadable,
    InvalidJson,
    Invalid(String),
    HeaderMismatch(&'static str, Value),
    Denied(Value, String),
    DeniedBatch(Vec<Value>),
    Unfilterable(Value),
}

impl Rejection {
    fn into_response<B>(self, settings: &Settings) -> Response<PolicyBody<B>> {
        use crate::layer::codes::{INVALID_REQUEST, PARSE_ERROR};
        let (status, body) = match self {
            Rejection::DeniedBatch(answers) => (settings.denial_status, Value::Array(answers)),
            other => {
                let (status, id, code, message) = match other {
                    Rejection::Misplaced => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Value::Null,
                        codes::POLICY_MISPLACED,
                        "no roles on the request: the policy layer must run inside the SessionLayer; refused (fail closed)".to_string(),
                    ),
                    Rejection::RepeatedHeader(h) => (
                        StatusCode::BAD_REQUEST,
                        Value::Null,
                        codes::HEADER_MISMATCH,
                        format!("more than one {h} header"),
                    ),
                    Rejection::BodyTooLarge(limit) => (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Value::Null,
                        INVALID_REQUEST,
                        format!("request body exceeds {limit} bytes"),
                    ),
                    Rejection::BodyTimeout => (
                        StatusCode::REQUEST_TIMEOUT,
                        Value::Null,
                        INVALID_REQUEST,
                        "request body was not received in time".to_string(),
                    ),
                    Rejection::BodyUnreadable => (
                        StatusCode::BAD_REQUEST,
                        Value::Null,
                        INVALID_REQUEST,
                        "request body could not be read".to_string(),
                    ),
                    Rejection::InvalidJson => (
                        StatusCode::BAD_REQUEST,
                        Value::Null,
                        PARSE_ERROR,
                        "request body is not valid JSON".to_string(),
                    ),
                    Rejection::Invalid(why) => (
                        StatusCode::BAD_REQUEST,
                        Value::Null,
                        INVALID_REQUEST,
                        format!("request body is not a JSON-RPC request the policy can decide: {why}"),
                    ),
                    Rejection::HeaderMismatch(why, id) => {
                        (StatusCode::BAD_REQUEST, id, codes::HEADER_MISMATCH, why.to_string())
                    }
                    Rejection::Denied(id, message) => {
                        (settings.denial_status, id, codes::POLICY_DENIED, message)
                    }
                    Rejection::Unfilterable(id) => (
                        StatusCode::BAD_GATEWAY,
                        id,
                        codes::LIST_UNFILTERABLE,
                        "the server's list answer could not be filtered by the policy layer".to_string(),
                    ),
                    Rejection::DeniedBatch(_) => unreachable!("handled above"),
                };
                (status, error_object(id, code, &message))
            }
        };
        let mut response = Response::new(produced(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The response body of [`PolicyService`]: the server's (SSE list answers
/// filtered on the way), or bytes the layer produced (a filtered JSON list
/// answer, a JSON-RPC error), in the session layer's body type. No
/// `Default` bound on the inner body.
pub type PolicyBody<B> = ResponseBody<FilteredBody<B>>;

pin_project! {
    /// The server's body, passed through, or (an SSE answer holding a list
    /// answer) filtered event by event until the list went by.
    pub struct FilteredBody<B> {
        #[pin]
        body: B,
        filter: Option<Box<SseFilter>>,
        ended: bool,
    }
}

impl<B> FilteredBody<B> {
    fn new(body: B, filter: Option<SseFilter>) -> Self {
        FilteredBody {
            body,
            filter: filter.map(Box::new),
            ended: false,
        }
    }
}

fn passed<B>(body: B) -> PolicyBody<B> {
    ResponseBody::inner(FilteredBody::new(body, None))
}

fn produced<B>(bytes: Bytes) -> PolicyBody<B> {
    ResponseBody::held(bytes)
}

impl<B: Body<Data = Bytes>> Body for FilteredBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            if *this.ended {
                return Poll::Ready(None);
            }
            let Some(f) = this.filter.as_mut() else {
                return this.body.poll_frame(cx);
            };
            match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match f.push(&data) {
                        SseOutput::Send(out) => {
                            if f.done() {
                                *this.filter = None;
                            }
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                        SseOutput::Overflow(out) => {
                            *this.ended = true;
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    },
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    f.finish();
                    *this.ended = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.filter {
            None => self.body.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}
