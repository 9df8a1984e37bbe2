//! What the policy layer costs, in-process (no network), in one run:
//!
//! - `policy/tools_call/{session,session+policy}/{small,1KiB}`: one
//!   `tools/call` on an existing session (handshake era: the session layer
//!   streams the body untouched, so the policy layer reads and parses it
//!   itself), with and without `PolicyLayer` (a five-rule, default-deny
//!   policy that allows the call). The inner service reads the body, as a
//!   real server does. Added cost = `session+policy - session` (target:
//!   at most 2 µs for bodies up to 1 KiB).
//! - `policy/tools_list_100/{session,session+policy}/{json,sse}`: a
//!   `tools/list` whose answer holds 100 tools (~25 KB), half of which the
//!   caller may not use; the body is read to its end. Added cost = what
//!   filtering a 100-tool list costs (parse, decide each tool, serialize).
//!
//! `CARGO_BUILD_JOBS=1 cargo bench --features policy --bench policy`. Quick by design (short
//! warm-up and measurement); BENCHMARKS.md has the numbers.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use mcp_session::policy::{Policy, PolicyLayer, Rule};
use mcp_session::{Identity, SessionLayer, SessionManager};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

fn policy() -> Policy {
    Policy::default_deny()
        .rule(
            Rule::allow(["*"])
                .named("open")
                .tools(["whoami", "tool_0*"]),
        )
        .rule(
            Rule::allow(["admin"])
                .named("admin")
                .tools(["admin_*", "tool_*"]),
        )
        .rule(Rule::allow(["reader"]).tools(["tool_1*", "tool_2*", "tool_3*", "tool_4*", "echo"]))
        .rule(Rule::deny(["intern"]).tools(["*"]))
        .rule(Rule::allow(["reader"]).resources(["file:///public/*"]))
        .build()
        .unwrap()
}

fn tools_list_answer(id: u64, sse: bool) -> Bytes {
    let tools: Vec<_> = (0..100)
        .map(|i| {
            json!({
                "name": format!("tool_{i}"),
                "description": format!("Tool number {i}: does something useful with its arguments"),
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string", "description": "the text"}}, "required": ["text"]},
            })
        })
        .collect();
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}}).to_string();
    if sse {
        Bytes::from(format!(
            "id: 0\nretry: 3000\ndata:\n\nid: 1\ndata: {answer}\n\n"
        ))
    } else {
        Bytes::from(answer)
    }
}

/// The inner server: reads the body, answers a canned list or a small result.
async fn server<B: Body<Data = Bytes>>(
    request: Request<B>,
    list: Option<(Bytes, bool)>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = request.into_body().collect().await;
    let (bytes, content_type) = match list {
        Some((bytes, true)) => (bytes, "text/event-stream"),
        Some((bytes, false)) => (bytes, "application/json"),
        None => (
            Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
            ),
            "application/json",
        ),
    };
    Ok(Response::builder()
        .header("content-type", content_type)
        .body(Full::new(bytes))
        .unwrap())
}

/// Times one request through `svc`, its answer read to the end.
fn measure<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    runtime: &Runtime,
    svc: S,
    request: &dyn Fn() -> Request<Full<Bytes>>,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    B: Body<Data = Bytes>,
{
    group.bench_function(id, |b| {
        b.to_async(runtime).iter(|| {
            let (svc, request) = (svc.clone(), request());
            async move {
                let response = svc.oneshot(request).await.ok().unwrap();
                response
                    .into_body()
                    .collect()
                    .await
                    .ok()
                    .unwrap()
                    .to_bytes()
            }
        })
    });
}

fn call_body(size: usize) -> Bytes {
    let head = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_17","arguments":{"text":""#;
    let tail = r#""}}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    Bytes::from(format!("{head}{}{tail}", "x".repeat(pad)))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let identity = Identity::new("bob", "Bob", ["reader"]);
    let manager = SessionManager::default();
    // One session, created through the layer.
    let session_id = runtime.block_on(async {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}"#;
        let mut request = Request::post("/mcp").body(Full::new(Bytes::from_static(init.as_bytes()))).unwrap();
        request.extensions_mut().insert(identity.clone());
        let svc = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .service(service_fn(|r| server(r, None)));
        let response = svc.oneshot(request).await.unwrap();
        response.headers()["mcp-session-id"].clone()
    });
    let request = |body: Bytes| {
        let mut request = Request::post("/mcp")
            .header("mcp-session-id", session_id.clone())
            .header("mcp-protocol-version", "2025-06-18")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        request.extensions_mut().insert(identity.clone());
        request
    };

    let mut group = c.benchmark_group("policy/tools_call");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (label, size) in [("small", 0), ("1KiB", 1024)] {
        let body = call_body(size);
        let plain = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .service(service_fn(|r| server(r, None)));
        let with_policy = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .layer(PolicyLayer::new(policy()))
            .service(service_fn(|r| server(r, None)));
        let make = || request(body.clone());
        measure(
            &mut group,
            BenchmarkId::new("session", label),
            &runtime,
            plain,
            &make,
        );
        let id = BenchmarkId::new("session+policy", label);
        measure(&mut group, id, &runtime, with_policy, &make);
    }
    group.finish();

    let mut group = c.benchmark_group("policy/tools_list_100");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let list_request =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
    for (label, sse) in [("json", false), ("sse", true)] {
        let answer = tools_list_answer(1, sse);
        let a = answer.clone();
        let plain = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .service(service_fn(move |r| server(r, Some((a.clone(), sse)))));
        let a = answer.clone();
        let with_policy = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .layer(PolicyLayer::new(policy()))
            .service(service_fn(move |r| server(r, Some((a.clone(), sse)))));
        let make = || request(list_request.clone());
        measure(
            &mut group,
            BenchmarkId::new("session", label),
            &runtime,
            plain,
            &make,
        );
        let id = BenchmarkId::new("session+policy", label);
        measure(&mut group, id, &runtime, with_policy, &make);
    }
    group.finish();

    // Sanity: bob sees tool_0 and tool_1*..tool_4* (45 of 100).
    runtime.block_on(async {
        let answer = tools_list_answer(1, false);
        let svc = ServiceBuilder::new()
            .layer(SessionLayer::new(manager.clone()))
            .layer(PolicyLayer::new(policy()))
            .service(service_fn(move |r| {
                server(r, Some((answer.clone(), false)))
            }));
        let response = svc.oneshot(request(list_request.clone())).await.unwrap();
        let bytes = response
            .into_body()
            .collect()
            .await
            .ok()
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let n = v["result"]["tools"].as_array().unwrap().len();
        eprintln!("tools/list: bob sees {n} of 100 tools");
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
