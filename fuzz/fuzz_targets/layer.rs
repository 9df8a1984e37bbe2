//! The whole layer fed arbitrary request sequences: methods, arbitrary
//! header names and values (repeated, empty, long, non-ASCII, control
//! bytes), arbitrary chunked bodies that may fail or stall, an inner server
//! that answers any status and (in adopt mode) mints any id, and a store that
//! may be down.
//!
//! Invariants (a violation is a crash): no panic; every answer the layer
//! produces itself has an allowed status and, unless 2xx, `Content-Type:
//! application/json` with a JSON-RPC error body (503s with `Retry-After`);
//! a request with a malformed or repeated `Mcp-Session-Id`, or without an
//! identity, makes no store call; the store never holds more sessions than
//! its caps; a mint-mode session id handed out is 64 lowercase hex
//! characters.

#![no_main]

// The test suite's helpers, so that the fuzz target and the tests drive the
// layer and watch the store alike: the requests (also built by
// tests/proptest_layer.rs) and the counting store with its check of the
// layer's error answers.
#[path = "../../tests/hardening/mod.rs"]
mod hardening;
#[path = "../../tests/support/layer_requests.rs"]
mod layer_requests;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use hardening::{check_jsonrpc_error, CountingStore};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use layer_requests::{values, BodyEnd, ChunkedBody};
use libfuzzer_sys::fuzz_target;
use mcp_session::layer::RequestBody;
use mcp_session::{
    Config, IdMode, Identity, IdentityLimitPolicy, ManualClock, MokaStore, Session, SessionId,
    SessionLayer, SessionManager, SessionStore, Timestamp,
};
use tower::{Layer, ServiceExt};

const PER_IDENTITY: u32 = 2;
const GLOBAL: u64 = 4;

#[derive(Arbitrary, Debug)]
struct Input {
    adopt: bool,
    reject: bool,
    requests: Vec<Req>,
}

#[derive(Arbitrary, Debug)]
struct Req {
    method: u8,
    custom_method: Vec<u8>,
    caller: u8,
    headers: Vec<(u8, Vec<u8>)>,
    /// Send the id of a live session (index into the sessions handed out).
    live_id: Option<u8>,
    chunks: Vec<Vec<u8>>,
    /// Prepend a well-formed initialize / discover request to the body.
    body_prefix: u8,
    end: u8,
    declare_len: bool,
    inner_status: u16,
    inner_mint: Option<Vec<u8>>,
    store_down: bool,
}

const HEADER_NAMES: &[&str] = &[
    "mcp-session-id",
    "Mcp-Session-Id",
    "MCP-SESSION-ID",
    "mcp-protocol-version",
    "content-type",
    "accept",
    "mcp-method",
    "content-length",
];

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
}

fuzz_target!(|input: Input| {
    RUNTIME.with(|rt| rt.block_on(run(input)));
});

async fn run(input: Input) {
    let people = [
        Identity::new("alice", "Alice", ["admin", "reader"]),
        Identity::new("bob", "Bob", ["reader"]),
    ];
    let store = CountingStore::new(MokaStore::new(100));
    let policy = if input.reject {
        IdentityLimitPolicy::Reject
    } else {
        IdentityLimitPolicy::EvictOldest
    };
    let config = Config::default()
        .max_sessions(GLOBAL)
        .max_sessions_per_identity(PER_IDENTITY)
        .identity_limit(policy);
    let manager = SessionManager::with_clock(store.clone(), config, ManualClock::starting_now());
    let mode = if input.adopt {
        IdMode::Adopt
    } else {
        IdMode::Mint
    };
    let layer = SessionLayer::new(manager)
        .id_mode(mode)
        .max_initialize_body(1024)
        .initialize_body_timeout(Duration::from_millis(1));
    let plan: Arc<std::sync::Mutex<(u16, Option<Vec<u8>>)>> = Arc::default();
    let inner = {
        let plan = plan.clone();
        tower::service_fn(move |request: Request<RequestBody<ChunkedBody>>| {
            let (status, mint) = plan.lock().unwrap().clone();
            async move {
                if let Some(session) = request.extensions().get::<Session>() {
                    let caller = request.extensions().get::<Identity>().expect("caller");
                    assert_eq!(
                        session.identity_id(),
                        caller.id(),
                        "foreign session handed on"
                    );
                }
                let has_id = request.headers().contains_key("mcp-session-id");
                let _ =
                    tokio::time::timeout(Duration::from_millis(1), request.into_body().collect())
                        .await;
                let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                response
                    .headers_mut()
                    .insert("x-inner", HeaderValue::from_static("1"));
                if let (false, Some(mint)) = (has_id, mint) {
                    if let Ok(v) = HeaderValue::from_bytes(&mint) {
                        response.headers_mut().insert("mcp-session-id", v);
                    }
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let service = layer.layer(inner);
    let mut handed_out: Vec<HeaderValue> = Vec::new();

    for req in input.requests.into_iter().take(8) {
        let method = match req.method % 8 {
            0..=2 => Method::POST,
            3 => Method::GET,
            4 => Method::DELETE,
            5 => Method::PUT,
            6 => Method::HEAD,
            _ => Method::from_bytes(&req.custom_method).unwrap_or(Method::PATCH),
        };
        let mut headers: Vec<(HeaderName, Vec<u8>)> = req
            .headers
            .into_iter()
            .take(6)
            .map(|(name, value)| {
                let name = HEADER_NAMES
                    .get(name as usize)
                    .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
                    .unwrap_or_else(|| HeaderName::from_static("x-other"));
                (name, value)
            })
            .collect();
        if let Some(i) = req.live_id {
            if let Some(v) = handed_out.get(i as usize % handed_out.len().max(1)) {
                headers.push((
                    HeaderName::from_static("mcp-session-id"),
                    v.as_bytes().to_vec(),
                ));
            }
        }
        let mut chunks: Vec<Bytes> = req.chunks.into_iter().take(8).map(Bytes::from).collect();
        match req.body_prefix % 4 {
            0 => chunks.insert(
                0,
                Bytes::from_static(
                    br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
                ),
            ),
            1 => chunks.insert(
                0,
                Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#),
            ),
            _ => {}
        }
        let end = match req.end % 8 {
            0 => BodyEnd::Error,
            1 => BodyEnd::Stall,
            _ => BodyEnd::Complete,
        };
        let body = ChunkedBody::new(chunks, end, req.declare_len);
        let caller = match req.caller % 4 {
            0 => None,
            n => Some(people[(n as usize) % 2].clone()),
        };
        let request = layer_requests::request(method, headers, body, caller.as_ref());
        let id_values = values(&request, "mcp-session-id");
        *plan.lock().unwrap() = (
            req.inner_status,
            if input.adopt { req.inner_mint } else { None },
        );
        store.set_down(req.store_down);
        let calls_before = store.calls();

        let response = service.clone().oneshot(request).await.unwrap();
        tokio::task::yield_now().await;
        store.set_down(false);
        let calls_after = store.calls();

        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let from_inner = parts.headers.contains_key("x-inner");
        let malformed = id_values.len() > 1
            || id_values.first().is_some_and(|v| match mode {
                IdMode::Mint => SessionId::parse_bytes(v).is_err(),
                IdMode::Adopt => SessionId::parse_adopted_bytes(v).is_err(),
                other => unreachable!("no model for {other:?}"),
            });
        if malformed || caller.is_none() {
            assert_eq!(
                calls_before, calls_after,
                "store called for a refused request"
            );
            assert!(!from_inner);
            assert!(
                parts.status == StatusCode::BAD_REQUEST || parts.status == StatusCode::UNAUTHORIZED,
                "{}",
                parts.status
            );
        }
        if !from_inner {
            let status = parts.status.as_u16();
            assert!(
                [204, 400, 401, 404, 408, 413, 429, 502, 503].contains(&status),
                "status {status}"
            );
            if !parts.status.is_success() {
                // JSON, a JSON-RPC error with a code and a message; 503s
                // with `Retry-After`.
                if let Err(e) = check_jsonrpc_error(parts.status, &parts.headers, &body) {
                    panic!("{e}");
                }
            }
        }
        if let Some(id) = parts.headers.get("mcp-session-id") {
            if mode == IdMode::Mint {
                assert!(from_inner && parts.status.is_success());
                assert!(SessionId::parse_bytes(id.as_bytes()).is_ok());
            }
            if parts.status.is_success() {
                handed_out.push(id.clone());
            }
        }
        assert!(store.inner().len() <= GLOBAL, "global cap exceeded");
        // The same id can be handed out more than once (an adopt-mode inner
        // server puts its id on other answers too): count each once.
        let mut distinct = handed_out.clone();
        distinct.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        distinct.dedup();
        for person in &people {
            let mut held = 0;
            for v in &distinct {
                if let Ok(id) = SessionId::parse_adopted_bytes(v.as_bytes()) {
                    if let Ok(Some(s)) = store.inner().get(&id, Timestamp::from_millis(0)).await {
                        held += usize::from(s.identity_id() == person.id());
                    }
                }
            }
            assert!(held <= PER_IDENTITY as usize, "identity cap exceeded");
        }
    }
}
