//! The tests' callers: `Authorization: Bearer <token>` stands for the
//! `Identity` that one of the functions below returns for that token.
//!
//! - [`bearer`]: the layer reads the header itself (`BearerToken`, a server
//!   without an auth middleware); a request without a caller gets the
//!   layer's own `401`.
//! - [`insert_caller`]: a middleware in front of the layer inserts the
//!   caller, as an auth layer would; the layer finds it in the extensions
//!   (its default resolver), or a handler does when there is no layer.
//!
//! Include it with `#[path = "support/test_auth.rs"] mod test_auth;`.

#![allow(dead_code)]

use mcp_session::{BearerToken, Identity};
use tower::util::MapRequestLayer;

/// Who a token stands for (`None`: nobody).
pub type Callers = fn(&str) -> Option<Identity>;

/// Any token is the user of that name, role `reader`.
pub fn readers(token: &str) -> Option<Identity> {
    Some(Identity::new(token, token, ["reader"]))
}

/// Any token is the user of that name, with no roles (they come from a
/// `RoleSource`).
pub fn without_roles(token: &str) -> Option<Identity> {
    Some(Identity::new::<&str>(token, token, []))
}

/// The example server's two demo tokens: `alice-token` is alice (`admin`,
/// `reader`), `bob-token` is bob (`reader`); any other token is nobody.
pub fn demo_tokens(token: &str) -> Option<Identity> {
    match token {
        "alice-token" => Some(Identity::new("alice", "Alice", ["admin", "reader"])),
        "bob-token" => Some(Identity::new("bob", "Bob", ["reader"])),
        _ => None,
    }
}

/// The layer's resolver: `callers` of the request's bearer token.
pub fn bearer(callers: Callers) -> BearerToken<Callers> {
    BearerToken::new(callers)
}

/// A middleware that inserts the caller of the request's bearer token into
/// its extensions, and leaves a request without one as it is.
pub fn insert_caller<B>(
    callers: Callers,
) -> MapRequestLayer<impl Fn(http::Request<B>) -> http::Request<B> + Clone + Send + Sync + 'static>
{
    MapRequestLayer::new(move |mut request: http::Request<B>| {
        let caller = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(callers);
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        request
    })
}
