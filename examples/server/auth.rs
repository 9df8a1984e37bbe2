//! DEMO-ONLY authentication: two fixed bearer tokens, read by the session
//! layer itself through [`BearerToken`](mcp_session::BearerToken) (no auth
//! middleware needed). A real server verifies a token (a JWT's signature,
//! issuer, audience and expiry; or introspection) and builds the `Identity`
//! from its stable subject, never from the token itself: see the JWT example
//! on `BearerToken`.

use std::sync::LazyLock;

use mcp_session::Identity;

// Who the caller is, not what it may do: roles come from the directory.
static ALICE: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("alice", "Alice", []));
static BOB: LazyLock<Identity> = LazyLock::new(|| Identity::new::<&str>("bob", "Bob", []));

/// DEMO ONLY: the caller a bearer token stands for; `None` is a `401` (the
/// layer's JSON-RPC error, `WWW-Authenticate: Bearer`).
pub fn demo_identity(token: &str) -> Option<Identity> {
    match token {
        "alice-token" => Some(ALICE.clone()),
        "bob-token" => Some(BOB.clone()),
        _ => None,
    }
}
