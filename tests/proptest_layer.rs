//! Property test of the whole layer: `SessionLayer` over a `tower::service_fn`
//! inner service, driven in-process with `ServiceExt::oneshot`, fed
//! arbitrary request sequences (methods, repeated/empty/long/non-ASCII/
//! control-byte `Mcp-Session-Id` and `MCP-Protocol-Version` headers,
//! arbitrary or JSON bodies, chunked, failing or stalling bodies, a store
//! that is down) in both id modes and both per-identity policies.
//!
//! Every answer is checked against an independent oracle of the behaviour
//! table (status, JSON-RPC code, what the inner service saw, which store
//! calls were made, the store's contents afterwards). On top of that:
//! nothing panics, every answer the layer produces itself has an allowed
//! status, `Content-Type: application/json` and a JSON-RPC error body, and a
//! malformed id never reaches the store.

mod hardening;
#[path = "support/layer_requests.rs"]
mod layer_requests;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hardening::{check_jsonrpc_error, CountingStore};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use layer_requests::{values, BodyEnd, ChunkedBody};
use mcp_session::layer::{codes, RequestBody};
use mcp_session::{
    Clock, Config, IdMode, Identity, IdentityLimitPolicy, ManualClock, MokaStore, Roles, Session,
    SessionId, SessionLayer, SessionManager, SessionStore,
};
use proptest::prelude::*;
use serde_json::json;
use tower::{Layer, ServiceExt};

const MAX_BODY: usize = 512;
/// The layer's cap on sessionless-era bodies in these tests.
const MAX_SESSIONLESS_BODY: usize = 2 * MAX_BODY;
const PER_IDENTITY: usize = 2;
const GLOBAL: usize = 5;
/// How long a stalled body is waited for (the layer's body timeout, and the
/// inner service's when it reads a streamed body).
const STALL: Duration = Duration::from_millis(15);

// ---------------------------------------------------------------------------
// What a case is made of.

#[derive(Debug, Clone)]
enum IdPick {
    /// A live session of the caller.
    Own,
    /// A live session of someone else.
    Foreign,
    /// A session that was deleted.
    Deleted,
    /// A well-formed id nobody holds.
    FreshValid,
    /// A UUID (valid only in adopt mode).
    Uuid,
    Bytes(Vec<u8>),
    /// A long run of hex digits.
    Huge(usize),
}

#[derive(Debug, Clone)]
enum HeaderPick {
    SessionId(IdPick),
    ProtocolVersion(Vec<u8>),
    Other(String, Vec<u8>),
}

#[derive(Debug, Clone)]
enum InnerMint {
    None,
    Fresh,
    Existing,
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
struct ReqSpec {
    method: Method,
    caller: Option<usize>,
    headers: Vec<HeaderPick>,
    body: Vec<u8>,
    chunk_sizes: Vec<usize>,
    end: BodyEnd,
    declare_len: bool,
    inner_status: u16,
    inner_mint: InnerMint,
    store_down: bool,
}

#[derive(Debug, Clone)]
struct Case {
    mode: IdMode,
    policy: IdentityLimitPolicy,
    requests: Vec<ReqSpec>,
}

fn identities() -> Vec<Identity> {
    vec![
        Identity::new("alice", "Alice", ["admin", "reader"]),
        Identity::new("bob", "Bob", ["reader"]),
        Identity::new("auth0|carol:\u{e9}", "Carol \"C\"\n", ["", "r\u{f6}le"]),
    ]
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        prop::collection::vec(0x21u8..=0x7e, 0..140),
        prop::collection::vec(
            prop::sample::select(b"0123456789abcdefABCDEF".to_vec()),
            62..=66
        ),
        Just(Vec::new()),
        Just(b" ".to_vec()),
        Just("caf\u{e9}".as_bytes().to_vec()),
        Just(b"\t\x01\x7f".to_vec()),
    ]
}

fn id_pick() -> impl Strategy<Value = IdPick> {
    prop_oneof![
        4 => Just(IdPick::Own),
        2 => Just(IdPick::Foreign),
        1 => Just(IdPick::Deleted),
        1 => Just(IdPick::FreshValid),
        1 => Just(IdPick::Uuid),
        2 => bytes_strategy().prop_map(IdPick::Bytes),
        1 => (65usize..12_000).prop_map(IdPick::Huge),
    ]
}

fn header_pick() -> impl Strategy<Value = HeaderPick> {
    let version = prop_oneof![
        Just(b"2025-06-18".to_vec()),
        Just(b"2025-03-26".to_vec()),
        Just(b"2026-07-28".to_vec()),
        Just(b"2027-01-01".to_vec()),
        Just(b"2026-07-27".to_vec()),
        Just(b"9999-99-99".to_vec()),
        Just(b"2026-07-28 ".to_vec()),
        bytes_strategy(),
    ];
    let other_name = prop::sample::select(vec![
        "content-type",
        "accept",
        "mcp-method",
        "mcp-name",
        "x-anything",
        "last-event-id",
    ]);
    prop_oneof![
        5 => id_pick().prop_map(HeaderPick::SessionId),
        2 => version.prop_map(HeaderPick::ProtocolVersion),
        1 => (other_name, bytes_strategy()).prop_map(|(n, v)| HeaderPick::Other(n.into(), v)),
    ]
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let init = (0usize..640).prop_map(|pad| {
        json!({"jsonrpc":"2.0","id":1,"method":"initialize",
               "params":{"protocolVersion":"2025-06-18","pad":"x".repeat(pad)}})
        .to_string()
        .into_bytes()
    });
    prop_oneof![
        12 => init,
        2 => Just(br#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#.to_vec()),
        2 => Just(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_vec()),
        1 => Just(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()),
        1 => Just(br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#.to_vec()),
        1 => Just(br#"{"method":5}"#.to_vec()),
        1 => Just(br#"{"method":"initi\u0061lize"}"#.to_vec()),
        1 => Just(b"null".to_vec()),
        1 => Just(b"\"initialize\"".to_vec()),
        1 => Just(b"{\"method\":\"initialize\xff\"}".to_vec()),
        1 => Just(b"{\"method\":\"initialize\"".to_vec()),
    ]
}

fn req_spec() -> impl Strategy<Value = ReqSpec> {
    let method = prop_oneof![
        6 => Just(Method::POST),
        2 => Just(Method::GET),
        2 => Just(Method::DELETE),
        1 => Just(Method::PUT),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::from_bytes(b"FOO").unwrap()),
    ];
    let caller = prop_oneof![1 => Just(None), 8 => (0usize..3).prop_map(Some)];
    let body = prop_oneof![
        3 => json_body(),
        1 => prop::collection::vec(any::<u8>(), 0..700),
    ];
    let end = prop_oneof![
        8 => Just(BodyEnd::Complete),
        1 => Just(BodyEnd::Error),
        1 => Just(BodyEnd::Stall),
    ];
    let inner_mint = prop_oneof![
        4 => Just(InnerMint::Fresh),
        1 => Just(InnerMint::None),
        1 => Just(InnerMint::Existing),
        1 => bytes_strategy().prop_map(InnerMint::Bytes),
    ];
    (
        method,
        caller,
        prop_oneof![
            2 => Just(Vec::new()),
            3 => prop::collection::vec(header_pick(), 1..4),
        ],
        body,
        prop::collection::vec(1usize..300, 0..4),
        end,
        any::<bool>(),
        prop::sample::select(vec![200u16, 200, 200, 202, 400, 500]),
        inner_mint,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                method,
                caller,
                headers,
                body,
                chunk_sizes,
                end,
                declare_len,
                inner_status,
                inner_mint,
                store_down,
            )| ReqSpec {
                method,
                caller,
                headers,
                body,
                chunk_sizes,
                end,
                declare_len,
                inner_status,
                inner_mint,
                store_down,
            },
        )
}

/// A well-formed `initialize` from an authenticated caller (so that caps,
/// evictions and adoption are reached often).
fn clean_initialize() -> impl Strategy<Value = ReqSpec> {
    (req_spec(), 0usize..3, json_body()).prop_map(|(mut spec, caller, body)| {
        spec.method = Method::POST;
        spec.caller = Some(caller);
        spec.headers
            .retain(|h| !matches!(h, HeaderPick::SessionId(_)));
        spec.body = body;
        spec.end = BodyEnd::Complete;
        spec
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(IdMode::Mint), Just(IdMode::Adopt)],
        prop_oneof![
            Just(IdentityLimitPolicy::EvictOldest),
            Just(IdentityLimitPolicy::Reject)
        ],
        prop::collection::vec(prop_oneof![3 => req_spec(), 2 => clean_initialize()], 1..8),
    )
        .prop_map(|(mode, policy, requests)| Case {
            mode,
            policy,
            requests,
        })
}

// ---------------------------------------------------------------------------
// The inner service: records what it saw, answers with the case's status.

#[derive(Debug, Default, Clone)]
struct Seen {
    session: Option<Session>,
    identity: Option<Identity>,
    roles: Option<Roles>,
    body: Option<Vec<u8>>,
    minted: Option<Vec<u8>>,
}

#[derive(Clone)]
struct InnerPlan {
    status: u16,
    mint: Option<Vec<u8>>,
}

type Slot<T> = Arc<Mutex<Option<T>>>;

/// What the inner service does with a request: record what it saw, read the
/// body (a stalled one for at most `STALL`), answer with the planned status
/// and, in adopt mode, a session id of its own.
async fn inner_handler(
    seen: Slot<Seen>,
    plan: Slot<InnerPlan>,
    request: Request<RequestBody<ChunkedBody>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let plan = plan.lock().unwrap().clone().expect("plan set");
    if request.method() == Method::DELETE && request.extensions().get::<Identity>().is_none() {
        // The layer closing a session it ended (eviction, refusal, …), not
        // a client's request: not what the table is about.
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::ACCEPTED;
        return Ok(response);
    }
    let mut saw = Seen {
        session: request.extensions().get::<Session>().cloned(),
        identity: request.extensions().get::<Identity>().cloned(),
        roles: Roles::of(request.extensions()).cloned(),
        ..Seen::default()
    };
    let has_id_header = request.headers().contains_key("mcp-session-id");
    saw.body = tokio::time::timeout(STALL, request.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes().to_vec());
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"inner\":true}")));
    *response.status_mut() = StatusCode::from_u16(plan.status).unwrap();
    response
        .headers_mut()
        .insert("x-inner", HeaderValue::from_static("1"));
    if !has_id_header {
        if let Some(mint) = &plan.mint {
            if let Ok(v) = HeaderValue::from_bytes(mint) {
                response.headers_mut().insert("mcp-session-id", v);
                saw.minted = Some(mint.clone());
            }
        }
    }
    *seen.lock().unwrap() = Some(saw);
    Ok(response)
}

// ---------------------------------------------------------------------------
// The oracle's view of the store: live sessions in creation order.

#[derive(Debug, Default)]
struct Model {
    live: Vec<(SessionId, String)>,
    gone: Vec<SessionId>,
}

impl Model {
    fn owner(&self, id: &SessionId) -> Option<&str> {
        self.live
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, o)| o.as_str())
    }
    fn count(&self, owner: &str) -> usize {
        self.live.iter().filter(|(_, o)| o == owner).count()
    }
    fn remove(&mut self, id: &SessionId) {
        if let Some(i) = self.live.iter().position(|(s, _)| s == id) {
            let (id, _) = self.live.remove(i);
            self.gone.push(id);
        }
    }
    /// A create for `owner` under the caps. `Err(status, code)` on refusal;
    /// evictions happen before the global check, as in the store.
    fn create(
        &mut self,
        id: SessionId,
        owner: &str,
        policy: IdentityLimitPolicy,
    ) -> Result<(), (u16, i64)> {
        if self.owner(&id).is_some() {
            return Err((502, codes::UPSTREAM_ERROR));
        }
        if self.count(owner) >= PER_IDENTITY {
            match policy {
                IdentityLimitPolicy::Reject => return Err((429, codes::TOO_MANY_SESSIONS)),
                IdentityLimitPolicy::EvictOldest => {
                    let excess = self.count(owner) + 1 - PER_IDENTITY;
                    let victims: Vec<_> = self
                        .live
                        .iter()
                        .filter(|(_, o)| o == owner)
                        .take(excess)
                        .map(|(s, _)| s.clone())
                        .collect();
                    for v in victims {
                        self.remove(&v);
                    }
                }
                other => unreachable!("no model for {other:?}"),
            }
        }
        if self.live.len() >= GLOBAL {
            return Err((503, codes::TOO_MANY_SESSIONS));
        }
        self.live.push((id, owner.to_string()));
        Ok(())
    }
}

fn is_minted_form(b: &[u8]) -> bool {
    b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_adoptable(b: &[u8]) -> bool {
    (1..=128).contains(&b.len()) && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

fn is_sessionless(v: &[u8]) -> bool {
    let shape = v.len() == 10
        && v.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    // A real calendar date (2026-99-99 is none).
    shape
        && {
            let text = std::str::from_utf8(v).unwrap();
            let (y, m, d): (u32, u32, u32) = (
                text[..4].parse().unwrap(),
                text[5..7].parse().unwrap(),
                text[8..].parse().unwrap(),
            );
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            (1..=12).contains(&m) && (1..=days[m as usize - 1]).contains(&d)
        }
        && v >= &b"2026-07-28"[..]
}

/// An `initialize` object, or a batch holding one at any depth.
fn holds_initialize(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Array(items) => items.iter().any(holds_initialize),
        serde_json::Value::Object(o) => {
            o.get("method").and_then(|m| m.as_str()) == Some("initialize")
        }
        _ => false,
    }
}

#[derive(Debug)]
enum Expect {
    /// The layer answers itself with this status and JSON-RPC code.
    Layer(u16, i64),
    /// The layer answers `204` (DELETE in mint mode).
    NoContent,
    /// The inner service answers.
    Inner,
}

fn uuid_like() -> String {
    let h = SessionId::generate().reveal();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------
// Running a case.

fn run_case(case: Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(run_case_async(case))
}

async fn run_case_async(case: Case) -> Result<(), TestCaseError> {
    let people = identities();
    let clock = ManualClock::starting_now();
    let store = CountingStore::new(MokaStore::new(1_000));
    let config = Config::default()
        .timeout(Duration::from_secs(60))
        .max_sessions(GLOBAL as u64)
        .max_sessions_per_identity(PER_IDENTITY as u32)
        .identity_limit(case.policy);
    let manager = SessionManager::with_clock(store.clone(), config, clock.clone());
    let layer = SessionLayer::new(manager.clone())
        .id_mode(case.mode)
        .max_initialize_body(MAX_BODY)
        .max_sessionless_body(MAX_SESSIONLESS_BODY)
        .initialize_body_timeout(STALL);
    let seen: Slot<Seen> = Arc::default();
    let plan: Slot<InnerPlan> = Arc::default();
    let inner = {
        let (seen, plan) = (seen.clone(), plan.clone());
        tower::service_fn(move |request| inner_handler(seen.clone(), plan.clone(), request))
    };
    let service = layer.layer(inner);

    // One live session per person, one deleted session.
    let mut model = Model::default();
    for person in &people {
        let s = manager.create(person).await.unwrap();
        model.live.push((s.id().clone(), person.id().to_string()));
    }
    let doomed = manager.create(&people[0]).await.unwrap();
    manager.delete_any_owner(doomed.id()).await.unwrap();
    model.gone.push(doomed.id().clone());

    for spec in case.requests {
        let caller = spec.caller.map(|i| people[i].clone());
        let caller_id = caller.as_ref().map(|c| c.id().to_string());

        // Build the request.
        let headers: Vec<(HeaderName, Vec<u8>)> = spec
            .headers
            .iter()
            .map(|header| match header {
                HeaderPick::SessionId(pick) => {
                    let pick_owned = |mine: bool| {
                        model
                            .live
                            .iter()
                            .find(|(_, o)| (Some(o) == caller_id.as_ref()) == mine)
                            .map(|(s, _)| s.reveal().into_bytes())
                            .unwrap_or_else(|| SessionId::generate().reveal().into_bytes())
                    };
                    let v = match pick {
                        IdPick::Own => pick_owned(true),
                        IdPick::Foreign => pick_owned(false),
                        IdPick::Deleted => model.gone[0].reveal().into_bytes(),
                        IdPick::FreshValid => SessionId::generate().reveal().into_bytes(),
                        IdPick::Uuid => uuid_like().into_bytes(),
                        IdPick::Bytes(b) => b.clone(),
                        IdPick::Huge(n) => "a".repeat(*n).into_bytes(),
                    };
                    (HeaderName::from_static("mcp-session-id"), v)
                }
                HeaderPick::ProtocolVersion(v) => {
                    (HeaderName::from_static("mcp-protocol-version"), v.clone())
                }
                HeaderPick::Other(n, v) => {
                    (HeaderName::from_bytes(n.as_bytes()).unwrap(), v.clone())
                }
            })
            .collect();
        let body = ChunkedBody::split(&spec.body, &spec.chunk_sizes, spec.end, spec.declare_len);
        // Only what `http` (and so any server) accepts as a header value is sent.
        let request = layer_requests::request(spec.method.clone(), headers, body, caller.as_ref());
        let session_values = values(&request, "mcp-session-id");
        let version_values = values(&request, "mcp-protocol-version");

        // The inner's plan.
        let mint = match &spec.inner_mint {
            InnerMint::None => None,
            InnerMint::Fresh => Some(uuid_like().into_bytes()),
            InnerMint::Existing => Some(
                model
                    .live
                    .first()
                    .map_or_else(|| model.gone[0].reveal(), |(s, _)| s.reveal())
                    .into_bytes(),
            ),
            InnerMint::Bytes(b) => Some(b.clone()),
        };
        // What the inner server's answer carries (a value that is no valid
        // header cannot be set: no id at all).
        let mint = mint.filter(|m| HeaderValue::from_bytes(m).is_ok());
        // In mint mode the inner server mints only when it accepts an
        // `initialize` (the misconfiguration the layer refuses); what it
        // does on other requests is not the layer's business.
        let initialize = spec.method == Method::POST
            && session_values.is_empty()
            && serde_json::from_slice::<serde_json::Value>(&spec.body).is_ok_and(|v| {
                v.is_object() && v.get("method").and_then(|m| m.as_str()) == Some("initialize")
            });
        let accepted = (200..300).contains(&spec.inner_status);
        let mint = mint.filter(|_| case.mode == IdMode::Adopt || (initialize && accepted));
        *plan.lock().unwrap() = Some(InnerPlan {
            status: spec.inner_status,
            mint: mint.clone(),
        });
        *seen.lock().unwrap() = None;
        store.set_down(spec.store_down);
        let calls_before = store.calls();
        let ids_before = store.ids_seen().len();

        // The oracle.
        let mut expected_session_in_inner: Option<Option<SessionId>> = None;
        let mut new_session_expected = false;
        let mut orphan_check = false;
        let mut expect_inner_called = false;
        let expect = 'oracle: {
            let Some(caller_id) = caller_id.as_deref() else {
                break 'oracle Expect::Layer(401, codes::UNAUTHENTICATED);
            };
            if session_values.len() > 1 {
                break 'oracle Expect::Layer(400, codes::INVALID_REQUEST);
            }
            if let Some(v) = session_values.first() {
                let ok = match case.mode {
                    IdMode::Mint => is_minted_form(v),
                    IdMode::Adopt => is_adoptable(v),
                    other => unreachable!("no model for {other:?}"),
                };
                if !ok {
                    break 'oracle Expect::Layer(400, codes::INVALID_REQUEST);
                }
                if spec.store_down {
                    break 'oracle Expect::Layer(503, codes::STORE_UNAVAILABLE);
                }
                let id = SessionId::parse_adopted_bytes(v).unwrap();
                if model.owner(&id) != Some(caller_id) {
                    break 'oracle Expect::Layer(404, codes::SESSION_NOT_FOUND);
                }
                if spec.method == Method::DELETE {
                    model.remove(&id);
                    // Adopt mode tells the inner server too; its success
                    // is reported as 204, its failure passed on.
                    if case.mode == IdMode::Adopt {
                        expect_inner_called = true;
                        if !(200..300).contains(&spec.inner_status) {
                            expected_session_in_inner = Some(None);
                            break 'oracle Expect::Inner;
                        }
                    }
                    break 'oracle Expect::NoContent;
                }
                expected_session_in_inner = Some(Some(id));
                break 'oracle Expect::Inner;
            }
            let sessionless = version_values.first().is_some_and(|v| is_sessionless(v));
            if spec.method != Method::POST {
                if sessionless {
                    expected_session_in_inner = Some(None);
                    break 'oracle Expect::Inner;
                }
                break 'oracle Expect::Layer(400, codes::INVALID_REQUEST);
            }
            // The body, in either era: capped, time-limited.
            let max_body = if sessionless {
                MAX_SESSIONLESS_BODY
            } else {
                MAX_BODY
            };
            if spec.declare_len && spec.body.len() > max_body {
                break 'oracle Expect::Layer(413, codes::INVALID_REQUEST);
            }
            if spec.body.len() > max_body {
                break 'oracle Expect::Layer(413, codes::INVALID_REQUEST);
            }
            match spec.end {
                BodyEnd::Error => break 'oracle Expect::Layer(400, codes::INVALID_REQUEST),
                BodyEnd::Stall => break 'oracle Expect::Layer(408, codes::INVALID_REQUEST),
                BodyEnd::Complete => {}
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&spec.body) else {
                break 'oracle Expect::Layer(400, codes::PARSE_ERROR);
            };
            match value.get("method").and_then(|m| m.as_str()) {
                Some("server/discover") if value.is_object() => {
                    expected_session_in_inner = Some(None);
                    Expect::Inner
                }
                Some("initialize") if value.is_object() => match case.mode {
                    IdMode::Mint => {
                        if spec.store_down {
                            break 'oracle Expect::Layer(503, codes::STORE_UNAVAILABLE);
                        }
                        // The id is not known yet: use a placeholder and fix it up below.
                        let placeholder = SessionId::generate();
                        if let Err((status, code)) =
                            model.create(placeholder.clone(), caller_id, case.policy)
                        {
                            break 'oracle Expect::Layer(status, code);
                        }
                        model.live.retain(|(s, _)| *s != placeholder);
                        if !(200..300).contains(&spec.inner_status) {
                            orphan_check = true;
                            break 'oracle Expect::Inner;
                        }
                        if mint.is_some() {
                            // The inner server mints its own ids: misconfigured,
                            // refused, and the minted session ended again.
                            orphan_check = true;
                            break 'oracle Expect::Layer(502, codes::UPSTREAM_ERROR);
                        }
                        new_session_expected = true;
                        Expect::Inner
                    }
                    IdMode::Adopt => {
                        expected_session_in_inner = Some(None);
                        if !(200..300).contains(&spec.inner_status) {
                            break 'oracle Expect::Inner;
                        }
                        let Some(minted) = &mint else {
                            // A stateless inner server behind adopt mode.
                            break 'oracle Expect::Layer(502, codes::UPSTREAM_ERROR);
                        };
                        if !is_adoptable(minted) {
                            break 'oracle Expect::Layer(502, codes::UPSTREAM_ERROR);
                        }
                        if spec.store_down {
                            break 'oracle Expect::Layer(503, codes::STORE_UNAVAILABLE);
                        }
                        let id = SessionId::parse_adopted_bytes(minted).unwrap();
                        match model.create(id, caller_id, case.policy) {
                            Ok(()) => Expect::Inner,
                            Err((status, code)) => Expect::Layer(status, code),
                        }
                    }
                    other => unreachable!("no model for {other:?}"),
                },
                // A batch holding an initialize is refused in the sessionless era.
                _ if sessionless && value.is_array() && holds_initialize(&value) => {
                    Expect::Layer(400, codes::INVALID_REQUEST)
                }
                _ if sessionless => {
                    expected_session_in_inner = Some(None);
                    Expect::Inner
                }
                _ => Expect::Layer(400, codes::INVALID_REQUEST),
            }
        };

        // Send it.
        let response = service.clone().oneshot(request).await.unwrap();
        for _ in 0..4 {
            tokio::task::yield_now().await; // let an orphan guard's delete run
        }
        store.set_down(false);
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let status = parts.status;
        let from_inner = parts.headers.contains_key("x-inner");
        let saw = seen.lock().unwrap().clone();
        let calls = store.calls();
        let ctx = format!("{spec:?} in {:?} → {status} {body:?}", case.mode);

        // Universal properties of the layer's own answers.
        if !from_inner {
            prop_assert!(
                [204, 400, 401, 404, 408, 413, 429, 502, 503].contains(&status.as_u16()),
                "status not allowed: {}",
                ctx
            );
            if !status.is_success() {
                let code = check_jsonrpc_error(status, &parts.headers, &body)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {ctx}")))?;
                if let Expect::Layer(_, want) = expect {
                    prop_assert_eq!(code, want, "{}", ctx);
                }
            }
        }
        // A malformed or repeated id never reaches the store.
        let malformed = session_values.len() > 1
            || session_values.first().is_some_and(|v| match case.mode {
                IdMode::Mint => !is_minted_form(v),
                IdMode::Adopt => !is_adoptable(v),
                other => unreachable!("no model for {other:?}"),
            });
        if malformed || caller.is_none() {
            prop_assert_eq!(calls, calls_before, "store was called: {}", ctx);
        }
        // Every id the store was asked about is well formed.
        for id in &store.ids_seen()[ids_before..] {
            let text = id.reveal();
            prop_assert!(is_adoptable(text.as_bytes()), "{}", ctx);
            if case.mode == IdMode::Mint {
                prop_assert!(id.is_minted(), "{}", ctx);
            }
        }

        // The oracle's verdict.
        match expect {
            Expect::Layer(want, _) => {
                prop_assert!(!from_inner, "inner answered, expected {}: {}", want, ctx);
                prop_assert_eq!(status.as_u16(), want, "{}", ctx);
                if orphan_check {
                    // A refused mint-mode initialize: the session the inner
                    // server was given is gone again.
                    let saw = saw.clone().expect("inner ran");
                    let session = saw.session.expect("initialize had a session");
                    model.gone.push(session.id().clone());
                }
            }
            Expect::NoContent => {
                prop_assert!(!from_inner, "{}", ctx);
                prop_assert_eq!(status, StatusCode::NO_CONTENT, "{}", ctx);
                prop_assert!(body.is_empty(), "{}", ctx);
                prop_assert_eq!(saw.is_some(), expect_inner_called, "{}", ctx);
                if let Some(saw) = &saw {
                    prop_assert!(saw.session.is_none(), "{}", ctx);
                    prop_assert!(
                        saw.identity
                            .as_ref()
                            .is_some_and(|i| Some(i.id()) == caller_id.as_deref()),
                        "{}",
                        ctx
                    );
                }
            }
            Expect::Inner => {
                prop_assert!(from_inner, "layer answered, expected the inner: {}", ctx);
                prop_assert_eq!(status.as_u16(), spec.inner_status, "{}", ctx);
                let saw = saw.clone().expect("inner ran");
                let caller = caller.as_ref().unwrap();
                // The caller is always in the extensions, with roles.
                prop_assert!(
                    saw.identity.as_ref().is_some_and(|i| i.same_as(caller)),
                    "{}",
                    ctx
                );
                prop_assert_eq!(saw.roles.as_ref(), Some(caller.roles()), "{}", ctx);
                if let Some(session) = &saw.session {
                    prop_assert_eq!(session.identity_id(), caller.id(), "{}", ctx);
                }
                match &expected_session_in_inner {
                    Some(Some(id)) => {
                        prop_assert_eq!(saw.session.as_ref().map(Session::id), Some(id), "{}", ctx);
                        prop_assert_eq!(calls.touch, calls_before.touch + 1, "{}", ctx);
                        prop_assert_eq!(calls.by_id(), calls_before.by_id() + 1, "{}", ctx);
                    }
                    Some(None) => prop_assert!(saw.session.is_none(), "{}", ctx),
                    None => {}
                }
                // A body the layer read is replayed byte for byte.
                if spec.method == Method::POST && session_values.is_empty() {
                    prop_assert_eq!(saw.body.as_deref(), Some(&spec.body[..]), "{}", ctx);
                }
                if new_session_expected {
                    let session = saw.session.clone().expect("initialize had a session");
                    let header = parts
                        .headers
                        .get("mcp-session-id")
                        .expect("id on the answer");
                    prop_assert_eq!(
                        header.as_bytes().to_vec(),
                        session.id().reveal().into_bytes()
                    );
                    prop_assert!(session.id().is_minted());
                    let owner = caller.id().to_string();
                    if let Err(e) = model.create(session.id().clone(), &owner, case.policy) {
                        prop_assert!(false, "model refused {:?}: {}", e, ctx);
                    }
                }
                if orphan_check {
                    let session = saw.session.clone().expect("initialize had a session");
                    prop_assert!(parts.headers.get("mcp-session-id").is_none(), "{}", ctx);
                    model.gone.push(session.id().clone());
                }
                if case.mode == IdMode::Mint && !new_session_expected {
                    prop_assert!(parts.headers.get("mcp-session-id").is_none(), "{}", ctx);
                }
            }
        }
        if !from_inner {
            prop_assert!(
                status != StatusCode::CREATED && parts.headers.get("mcp-session-id").is_none(),
                "{}",
                ctx
            );
        }

        // The store holds exactly what the model says.
        let direct: &MokaStore = store.inner();
        for (id, owner) in &model.live {
            let got = direct.get(id, clock.now()).await.unwrap();
            prop_assert_eq!(
                got.as_ref().map(|s| s.identity_id()),
                Some(owner.as_str()),
                "live {:?} missing: {}",
                id,
                ctx
            );
        }
        for id in &model.gone {
            prop_assert!(
                direct.get(id, clock.now()).await.unwrap().is_none(),
                "resurrected {:?}: {}",
                id,
                ctx
            );
        }
        prop_assert_eq!(direct.len() as usize, model.live.len(), "{}", ctx);
        prop_assert!(direct.len() as usize <= GLOBAL);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn the_layer_answers_every_request_as_the_behaviour_table_says(case in case()) {
        run_case(case)?;
    }
}
