//! The policy rule parser and the policy layer's decision, fed arbitrary
//! rule documents (TOML and JSON), request bodies, mirrored headers and
//! server answers (JSON and SSE, in arbitrary chunks).
//!
//! Invariants (a violation is a crash): no panic; a rule document either
//! loads or gives an error naming the document or a rule; the layer's own
//! answers are JSON-RPC errors with `Content-Type: application/json`; a
//! request the policy refuses never reaches the server; a denied
//! `tools/call` gets a message naming the tool.

#![no_main]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use mcp_session::layer::RequestBody;
use mcp_session::policy::{message, Policy, PolicyError, PolicyLayer, Rule};
use mcp_session::{Identity, Roles, SessionLayer, SessionManager};
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Input {
    rules_text: String,
    rules_json: bool,
    body: Vec<u8>,
    modern: bool,
    mcp_method: Option<Vec<u8>>,
    mcp_name: Option<Vec<u8>>,
    roles: Vec<String>,
    answer: Vec<Vec<u8>>,
    sse: bool,
}

fn fixed_policy() -> Policy {
    Policy::default_deny()
        .rule(Rule::allow(["*"]).tools(["whoami"]))
        .rule(Rule::allow(["admin"]).tools(["admin_*"]))
        .rule(Rule::deny(["intern"]).methods(["*"]))
        .rule(Rule::allow(["reader"]).resources(["file:///p/*"]))
        .build()
        .expect("a valid policy")
}

fuzz_target!(|input: Input| {
    // The parser.
    let loaded = if input.rules_json {
        Policy::from_json(&input.rules_text)
    } else {
        Policy::from_toml(&input.rules_text)
    };
    if let Err(error) = &loaded {
        let text = error.to_string();
        assert!(text.starts_with("policy"), "{text}");
        if let PolicyError::Rule { position, .. } = error {
            assert!(*position >= 1);
        }
    }
    let policy = loaded.unwrap_or_else(|_| fixed_policy());

    // The decision, straight.
    let roles = Roles::new(input.roles.iter().map(String::as_str));
    if let Ok(body) = message::parse(&input.body) {
        let messages = match body {
            message::Body::Single(m) => vec![m],
            message::Body::Batch(ms) => ms,
        };
        for m in messages {
            if let Some(method) = m.method.as_deref() {
                let decision = policy.decide(method, m.name.as_deref(), &roles);
                assert_eq!(decision.is_allowed(), policy.allows(method, m.name.as_deref(), &roles));
            }
        }
    }

    // Through the layers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let answer = input.answer.clone();
    let sse = input.sse;
    let identity = Identity::new("u", "U", input.roles.iter().map(String::as_str));
    let svc = tower::ServiceBuilder::new()
        .map_request(move |mut r: Request<Full<Bytes>>| {
            r.extensions_mut().insert(identity.clone());
            r
        })
        .layer(SessionLayer::new(SessionManager::default()))
        .layer(PolicyLayer::new(policy.clone()).max_list_answer(4096))
        .service(tower::service_fn(move |r: Request<RequestBody<RequestBody<Full<Bytes>>>>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            async move {
                let _ = r.into_body().collect().await;
                let chunks = answer.into_iter().map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c))));
                let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
                let content_type = if sse { "text/event-stream" } else { "application/json" };
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", content_type)
                        .body(body)
                        .expect("a response"),
                )
            }
        }));
    let mut request = Request::post("/mcp");
    if input.modern {
        request = request.header("mcp-protocol-version", "2026-07-28");
    }
    for (name, value) in [("mcp-method", &input.mcp_method), ("mcp-name", &input.mcp_name)] {
        if let Some(value) = value.as_ref().and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Full::new(Bytes::from(input.body.clone())))
        .expect("a request");
    runtime.block_on(async {
        let response = svc.oneshot(request).await.expect("infallible");
        let status = response.status();
        let layer_answer = reached.load(Ordering::SeqCst) == 0;
        let json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        if layer_answer && status != StatusCode::ACCEPTED {
            assert!(json, "{status}");
            let body = body.expect("the layer's own body");
            let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert!(value.is_array() || value.get("error").is_some(), "{value}");
        }
    });

    // A refused tools/call names its tool.
    if let Ok(message::Body::Single(m)) = message::parse(&input.body) {
        if let (Some("tools/call"), Some(name)) = (m.method.as_deref(), m.name.as_deref()) {
            if let mcp_session::policy::Decision::Deny(denial) = policy.decide("tools/call", Some(name), &roles) {
                assert!(denial.message().contains(&format!("tool `{name}`")), "{denial}");
            }
        }
    }
});
