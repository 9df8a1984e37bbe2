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
