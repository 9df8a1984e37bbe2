//! `BearerToken` as the layer's identity resolver, over real HTTP on
//! 127.0.0.1, tried as an attacker would: header variants, a second
//! `Authorization` header, a token in the query string, another user's
//! session; and the `401` it leads to (JSON-RPC body, challenge).

use axum::routing::any;
use axum::{Extension, Json, Router};
use mcp_session::{BearerToken, Identity, SessionLayer, SessionManager};
use reqwest::StatusCode;
use serde_json::{json, Value};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource";

/// alice and bob, each with a fixed token (a real server verifies a JWT).
fn validate(token: &str) -> Option<Identity> {
    match token {
        "alice-token" => Some(Identity::new::<&str>("alice", "Alice", [])),
        "bob-token" => Some(Identity::new::<&str>("bob", "Bob", [])),
        _ => None,
    }
}

async fn start() -> String {
    let layer = SessionLayer::new(SessionManager::default())
        .resolve_identity(BearerToken::new(validate))
        .resource_metadata(http::Uri::from_static(METADATA));
    let app = Router::new()
        .route(
            "/mcp",
            any(|Extension(caller): Extension<Identity>| async move {
                Json(json!({"jsonrpc": "2.0", "id": 1, "result": {"caller": caller.id()}}))
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

fn post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
}

async fn assert_unauthorized(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        response.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{METADATA}\"").as_str(),
        "{what}"
    );
    assert!(response.headers().get("mcp-session-id").is_none(), "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "{what}");
    assert_eq!(
        body["error"]["code"],
        mcp_session::layer::codes::UNAUTHENTICATED,
        "{what}"
    );
}

#[tokio::test]
async fn a_valid_bearer_token_is_the_caller() {
    let url = start().await;
    for header in [
        "Bearer alice-token",
        "bearer alice-token",
        "BEARER alice-token",
    ] {
        let response = post(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        assert!(response.headers().contains_key("mcp-session-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["caller"], "alice", "{header}");
    }
}

#[tokio::test]
async fn anything_but_one_well_formed_valid_bearer_header_is_a_401() {
    let url = start().await;
    assert_unauthorized(post(&url).send().await.unwrap(), "no header").await;
    for header in [
        "Bearer mallory-token",
        "Bearer  alice-token",
        "Bearer alice-token,bob-token",
        "Basic YWxpY2UtdG9rZW46",
        "alice-token",
        "Bearer",
    ] {
        let response = post(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_unauthorized(response, header).await;
    }
    // Two headers: which one an upstream proxy checked is ambiguous.
    let response = post(&url)
        .header("authorization", "Bearer mallory-token")
        .header("authorization", "Bearer alice-token")
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "two Authorization headers").await;
    // A token in the query string is never read (RFC 6750 allows it; MCP
    // authorization forbids it).
    let response = post(&format!("{url}?access_token=alice-token"))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "token in the query string").await;
}

#[tokio::test]
async fn another_callers_session_is_not_found_with_a_valid_token() {
    let url = start().await;
    let response = post(&url)
        .header("authorization", "Bearer alice-token")
        .send()
        .await
        .unwrap();
    let alice_session = response.headers()["mcp-session-id"].clone();
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Bearer bob-token")
        .header("mcp-session-id", alice_session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
