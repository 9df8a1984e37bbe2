//! DEMO-ONLY authentication: two fixed bearer tokens. A real server validates
//! a token (JWT signature, introspection, …) and builds the `Identity` from
//! its stable subject, never from the token itself.

use std::sync::LazyLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use mcp_session::layer::codes;
use mcp_session::Identity;

// Who the caller is, not what it may do: roles come from the directory.
static ALICE: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("alice", "Alice", []));
static BOB: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("bob", "Bob", []));

/// DEMO ONLY: two fixed bearer tokens. A real server validates a token (JWT
/// signature, introspection, …) and builds the `Identity` from its stable
/// subject, never from the token itself.
fn demo_identity(authorization: Option<&[u8]>) -> Option<Identity> {
    match authorization? {
        b"Bearer alice-token" => Some(ALICE.clone()),
        b"Bearer bob-token" => Some(BOB.clone()),
        _ => None,
    }
}

/// DEMO ONLY auth middleware: puts the caller's `Identity` into the request
/// extensions, where the session layer reads it; anything else is `401`.
pub async fn demo_bearer_auth(mut request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match demo_identity(authorization) {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => unauthorized(),
    }
}

fn unauthorized() -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": codes::UNAUTHENTICATED,
            "message": "authentication required: send `Authorization: Bearer alice-token` or \
                        `Authorization: Bearer bob-token` (demo tokens)",
        },
    });
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}
