//! Where the caller's [`Identity`] comes from: the [`ResolveIdentity`]
//! extension point and its default, [`IdentityFromExtensions`].

use std::borrow::Cow;

use http::Request;

use crate::Identity;

/// Finds the authenticated caller of a request.
///
/// The session layer never authenticates: an auth layer placed *outside* it
/// (it runs first) validates the credentials; this trait only reads the
/// result. Return `None` for an unauthenticated request.
///
/// Return [`Cow::Borrowed`] for an identity that is already in the request's
/// extensions (the layer then leaves it there, untouched and uncloned), and
/// [`Cow::Owned`] for one found elsewhere (the layer inserts it, so handlers
/// read the caller as `Extension<Identity>` either way).
///
/// ```
/// use std::borrow::Cow;
/// use http::Request;
/// use mcp_session::{Identity, ResolveIdentity};
///
/// /// Identity from a header set by a trusted gateway (demo only).
/// #[derive(Clone)]
/// struct FromGatewayHeader;
///
/// impl ResolveIdentity for FromGatewayHeader {
///     fn resolve<'r, B>(&self, request: &'r Request<B>) -> Option<Cow<'r, Identity>> {
///         let user = request.headers().get("x-user")?.to_str().ok()?;
///         Some(Cow::Owned(Identity::new(user, user, ["reader"])))
///     }
/// }
///
/// let req = Request::builder().header("x-user", "carol").body(()).unwrap();
/// assert_eq!(FromGatewayHeader.resolve(&req).unwrap().id(), "carol");
/// ```
pub trait ResolveIdentity: Clone + Send + Sync + 'static {
    /// The caller of `request`, or `None` if it is not authenticated.
    fn resolve<'r, B>(&self, request: &'r Request<B>) -> Option<Cow<'r, Identity>>;
}

/// The default: the [`Identity`] that an upstream auth layer inserted into
/// the request extensions.
///
/// ```
/// use http::Request;
/// use mcp_session::{Identity, IdentityFromExtensions, ResolveIdentity};
///
/// let mut req = Request::new(());
/// assert!(IdentityFromExtensions.resolve(&req).is_none());
/// req.extensions_mut().insert(Identity::new("alice", "Alice", ["admin"]));
/// assert_eq!(IdentityFromExtensions.resolve(&req).unwrap().id(), "alice");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityFromExtensions;

impl ResolveIdentity for IdentityFromExtensions {
    fn resolve<'r, B>(&self, request: &'r Request<B>) -> Option<Cow<'r, Identity>> {
        request.extensions().get::<Identity>().map(Cow::Borrowed)
    }
}

/// The caller from an `Authorization: Bearer <token>` header, through a
/// function that validates the token and returns its [`Identity`] (or
/// `None`: the layer then answers `401` with its JSON-RPC error body and
/// `WWW-Authenticate` challenge, see
/// [`SessionLayer::resource_metadata`](crate::SessionLayer::resource_metadata)).
///
/// With it, no auth middleware is needed in front of the layer. The
/// function runs on every request the layer handles: keep it fast (verify a
/// JWT's signature with keys already fetched; cache what a slow
/// introspection endpoint says). It is never called without a well-formed
/// header: exactly one `Authorization` header, scheme `Bearer` (any case),
/// one space, a non-empty token of RFC 6750 characters. A token anywhere
/// else (a query string, a cookie) is never read.
///
/// ```
/// use http::Request;
/// use mcp_session::{BearerToken, Identity, ResolveIdentity};
///
/// let resolve = BearerToken::new(|token: &str| match token {
///     "alice-token" => Some(Identity::new::<&str>("alice", "Alice", [])),
///     _ => None,
/// });
/// let req = Request::builder().header("authorization", "Bearer alice-token").body(()).unwrap();
/// assert_eq!(resolve.resolve(&req).unwrap().id(), "alice");
/// let req = Request::builder().header("authorization", "Bearer other").body(()).unwrap();
/// assert!(resolve.resolve(&req).is_none());
/// ```
///
/// With a JWT library (here `jsonwebtoken`; the crate depends on none), the
/// identity is the token's verified subject, never the token itself:
///
/// ```
/// use jsonwebtoken::{decode, DecodingKey, Validation};
/// use mcp_session::{BearerToken, Identity, SessionLayer, SessionManager};
///
/// #[derive(serde::Deserialize)]
/// struct Claims {
///     iss: String,
///     sub: String,
///     #[serde(default)]
///     name: String,
/// }
///
/// let key = DecodingKey::from_secret(b"the shared HS256 secret");
/// let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
/// validation.set_issuer(&["https://auth.example.com"]);
/// validation.set_audience(&["https://mcp.example.com"]);
///
/// let resolve = BearerToken::new(move |token: &str| {
///     // Signature, expiry, issuer and audience checked; any failure is a 401.
///     let claims = decode::<Claims>(token, &key, &validation).ok()?.claims;
///     // Unique across issuers (see `Identity`); roles come from a RoleSource.
///     let id = format!("{}|{}", claims.iss, claims.sub);
///     Some(Identity::new::<&str>(id, claims.name, []))
/// });
/// let layer = SessionLayer::new(SessionManager::default()).resolve_identity(resolve.clone());
/// # let _ = layer;
/// # use mcp_session::ResolveIdentity;
/// # let token = |aud: &str, secret: &[u8]| {
/// #     let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
/// #     let claims = serde_json::json!({"iss": "https://auth.example.com", "sub": "alice",
/// #         "name": "Alice", "aud": aud, "exp": exp});
/// #     let key = jsonwebtoken::EncodingKey::from_secret(secret);
/// #     jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
/// # };
/// # let request = |token: String| {
/// #     http::Request::builder().header("authorization", format!("Bearer {token}")).body(()).unwrap()
/// # };
/// # let good = request(token("https://mcp.example.com", b"the shared HS256 secret"));
/// # assert_eq!(resolve.resolve(&good).unwrap().id(), "https://auth.example.com|alice");
/// # let forged = request(token("https://mcp.example.com", b"another secret"));
/// # assert!(resolve.resolve(&forged).is_none());
/// # let other_audience = request(token("https://other.example.com", b"the shared HS256 secret"));
/// # assert!(resolve.resolve(&other_audience).is_none());
/// ```
#[derive(Clone)]
pub struct BearerToken<F> {
    validate: F,
}

impl<F> BearerToken<F>
where
    F: Fn(&str) -> Option<Identity> + Clone + Send + Sync + 'static,
{
    /// Resolves callers with `validate`, given the token of a well-formed
    /// `Authorization: Bearer` header.
    pub fn new(validate: F) -> Self {
        BearerToken { validate }
    }
}

impl<F> std::fmt::Debug for BearerToken<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl<F> ResolveIdentity for BearerToken<F>
where
    F: Fn(&str) -> Option<Identity> + Clone + Send + Sync + 'static,
{
    fn resolve<'r, B>(&self, request: &'r Request<B>) -> Option<Cow<'r, Identity>> {
        let token = bearer_token(request.headers())?;
        (self.validate)(token).map(Cow::Owned)
    }
}

/// The token of the one `Authorization: Bearer <token>` header, if that is
/// what the request carries (RFC 6750 section 2.1: the scheme in any case,
/// one space, `b64token` characters only). Two `Authorization` headers are
/// refused: which one a proxy or the auth function saw would be ambiguous.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") || token.is_empty() {
        return None;
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let (body, _) = token.split_at(token.len() - padding);
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(b);
    if body.is_empty() || !body.iter().all(b64) {
        return None;
    }
    // All ASCII, checked above.
    std::str::from_utf8(token).ok()
}

#[cfg(test)]
mod tests {
    use super::bearer_token;
    use http::HeaderMap;

    fn token_of(values: &[&[u8]]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn only_a_well_formed_bearer_header_yields_a_token() {
        assert_eq!(
            token_of(&[b"Bearer abc.DEF-_~+/=="]).as_deref(),
            Some("abc.DEF-_~+/==")
        );
        assert_eq!(token_of(&[b"bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token_of(&[b"BEARER abc"]).as_deref(), Some("abc"));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer  abc",
            b"Bearer abc ",
            b"Bearer abc def",
            b"Bearer ===",
            b"Bearer a=b",
            b"Bearer\tabc",
            b"Basic YWxpY2U6cHc=",
            b"Bearerabc",
            b"Bearer ab\"c",
            b"Bearer \xc3\xa9t\xc3\xa9",
        ] {
            assert_eq!(token_of(&[bad]), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(token_of(&[]), None);
        assert_eq!(
            token_of(&[b"Bearer abc", b"Bearer abc"]),
            None,
            "two headers"
        );
        assert_eq!(token_of(&[b"Bearer abc", b"Basic x"]), None, "two headers");
    }
}
