//! Property: for random rule sets, callers and requests, what the policy
//! layer does (through a real `SessionLayer`, sessionless requests with
//! their mirrored headers) equals a small reference function written
//! independently of the implementation: whether the request reaches the
//! server, and for `tools/list` which tools come back.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use mcp_session::policy::{Policy, PolicyLayer, Rule};
use mcp_session::{Identity, Roles, SessionLayer, SessionManager};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};

const ROLES: [&str; 3] = ["a", "b", "c"];
const METHODS: [&str; 7] = [
    "tools/call",
    "resources/read",
    "prompts/get",
    "logging/setLevel",
    "completion/complete",
    "ping",
    "tools/list",
];
const NAMES: [&str; 5] = ["x", "xy", "y", "file:///p/x", "file:///q"];

#[derive(Clone, Debug)]
struct RefRule {
    deny: bool,
    roles: Option<Vec<&'static str>>, // None = "*"
    kind: usize,                      // 0 tools, 1 resources, 2 prompts, 3 methods
    patterns: Vec<String>,
}

/// A naive recursive glob: `*` matches any run of characters.
fn glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
        Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
    }
}

/// The reference decision, straight from the documented rules.
fn reference(
    default_allow: bool,
    rules: &[RefRule],
    method: &str,
    name: &str,
    roles: &[&str],
) -> bool {
    if method == "ping" || method == "initialize" || method == "server/discover" {
        return true;
    }
    let kind_of_method = match method {
        "tools/call" => Some(0),
        "resources/read" => Some(1),
        "prompts/get" => Some(2),
        _ => None,
    };
    let applies = |r: &RefRule| {
        let target = if r.kind == 3 {
            r.patterns
                .iter()
                .any(|p| glob(p.as_bytes(), method.as_bytes()))
        } else {
            kind_of_method == Some(r.kind)
                && r.patterns
                    .iter()
                    .any(|p| glob(p.as_bytes(), name.as_bytes()))
        };
        let who = r
            .roles
            .as_ref()
            .is_none_or(|want| want.iter().any(|w| roles.contains(w)));
        target && who
    };
    if rules.iter().any(|r| r.deny && applies(r)) {
        return false;
    }
    if rules.iter().any(|r| !r.deny && applies(r)) {
        return true;
    }
    method == "tools/list" || default_allow
}

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES.to_vec()).prop_map(String::from),
        prop::sample::select(METHODS.to_vec()).prop_map(String::from),
        Just("*".to_string()),
        Just("x*".to_string()),
        Just("file:///p/*".to_string()),
        Just("*/*".to_string()),
        Just("tools/*".to_string()),
    ]
}

fn rule() -> impl Strategy<Value = RefRule> {
    (
        any::<bool>(),
        prop::option::of(prop::sample::subsequence(ROLES.to_vec(), 1..=2)),
        0usize..4,
        prop::collection::vec(pattern(), 1..3),
    )
        .prop_map(|(deny, roles, kind, patterns)| RefRule {
            deny,
            roles,
            kind,
            patterns,
        })
}

fn build(default_allow: bool, rules: &[RefRule]) -> Policy {
    let mut builder = if default_allow {
        Policy::default_allow()
    } else {
        Policy::default_deny()
    };
    for r in rules {
        let roles: Vec<&str> = r.roles.clone().unwrap_or_else(|| vec!["*"]);
        let b = if r.deny {
            Rule::deny(roles)
        } else {
            Rule::allow(roles)
        };
        builder = builder.rule(match r.kind {
            0 => b.tools(&r.patterns),
            1 => b.resources(&r.patterns),
            2 => b.prompts(&r.patterns),
            _ => b.methods(&r.patterns),
        });
    }
    builder.build().unwrap()
}

async fn server<B: Body<Data = Bytes>>(
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(body) = request.into_body().collect().await else {
        panic!("body")
    };
    let m: Value = serde_json::from_slice(&body.to_bytes()).unwrap();
    let result = if m["method"] == "tools/list" {
        json!({"tools": NAMES.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
    } else {
        json!({})
    };
    let answer = json!({"jsonrpc": "2.0", "id": m["id"], "result": result}).to_string();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer)))
        .unwrap())
}

/// Through the layer: (reached the server, tool names in a tools/list answer).
async fn through_layer(
    policy: Policy,
    method: &str,
    name: &str,
    roles: &[&str],
) -> (bool, Vec<String>) {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let identity = Identity::new("u", "U", roles.iter().copied());
    let svc = ServiceBuilder::new()
        .map_request(move |mut r: Request<Full<Bytes>>| {
            r.extensions_mut().insert(identity.clone());
            r
        })
        .layer(SessionLayer::new(SessionManager::default()))
        .layer(PolicyLayer::new(policy))
        .service(tower::service_fn(move |r| {
            counter.fetch_add(1, Ordering::SeqCst);
            server(r)
        }));
    let key = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {key: name}});
    let mut request = Request::post("/mcp")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if matches!(method, "tools/call" | "resources/read" | "prompts/get") {
        request = request.header("mcp-name", name);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let tools = answer["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (reached.load(Ordering::SeqCst) == 1, tools)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn layer_decides_like_the_reference(
        default_allow in any::<bool>(),
        rules in prop::collection::vec(rule(), 0..6),
        method in prop::sample::select(METHODS.to_vec()),
        name in prop::sample::select(NAMES.to_vec()),
        roles in prop::sample::subsequence(ROLES.to_vec(), 0..=3),
    ) {
        let policy = build(default_allow, &rules);
        let expected = reference(default_allow, &rules, method, name, &roles);
        prop_assert_eq!(policy.allows(method, Some(name), &Roles::new(roles.iter().copied())), expected);

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (reached, tools) = runtime.block_on(through_layer(policy, method, name, &roles));
        prop_assert_eq!(reached, expected, "reached the server");
        if method == "tools/list" && expected {
            let visible: Vec<String> = NAMES
                .iter()
                .filter(|n| reference(default_allow, &rules, "tools/call", n, &roles))
                .map(|n| n.to_string())
                .collect();
            prop_assert_eq!(tools, visible);
        }
    }
}
