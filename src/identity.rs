//! The authenticated caller: [`Identity`], [`Role`] and [`Roles`].

use std::fmt;
use std::sync::Arc;

/// A role name, used for RBAC checks. Cheap to clone (shared string).
///
/// ```
/// use mcp_session::Role;
/// let admin = Role::new("admin");
/// assert_eq!(admin.as_str(), "admin");
/// assert_eq!(admin, Role::from("admin"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(Arc<str>);

impl Role {
    /// A role with this name.
    pub fn new(name: impl AsRef<str>) -> Self {
        Role(Arc::from(name.as_ref()))
    }

    /// The role's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Role {
    fn from(name: &str) -> Self {
        Role::new(name)
    }
}

impl From<String> for Role {
    fn from(name: String) -> Self {
        Role(Arc::from(name))
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The roles of a caller, as cached in its session. Cloning shares the list.
///
/// RBAC code reads them from the request without touching a store:
/// [`Roles::of`] finds them in what the layer left in the extensions.
///
/// ```
/// use mcp_session::Roles;
/// let roles = Roles::new(["admin", "reader"]);
/// assert!(roles.contains("admin"));
/// assert!(!roles.contains("writer"));
/// assert_eq!(roles.iter().count(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Roles(Arc<[Role]>);

impl Roles {
    /// The roles to authorize a request with, from what the
    /// [`SessionLayer`](crate::SessionLayer) left in its extensions: those
    /// cached in its [`Session`](crate::Session), or on a request let
    /// through without one ([`Sessionless`](crate::layer::Sessionless)) the
    /// caller's own. `None` if the request did not pass through the layer
    /// (an auth layer alone leaves only the [`Identity`]).
    ///
    /// ```
    /// use mcp_session::layer::Sessionless;
    /// use mcp_session::{Identity, Roles};
    ///
    /// let mut extensions = http::Extensions::new();
    /// extensions.insert(Identity::new("alice", "Alice", ["admin"]));
    /// assert!(Roles::of(&extensions).is_none()); // the layer never saw it
    /// extensions.insert(Sessionless);
    /// assert!(Roles::of(&extensions).unwrap().contains("admin"));
    /// ```
    pub fn of(extensions: &http::Extensions) -> Option<&Roles> {
        if let Some(session) = extensions.get::<crate::Session>() {
            return Some(session.roles());
        }
        extensions.get::<crate::layer::Sessionless>()?;
        Some(extensions.get::<Identity>()?.roles())
    }

    /// Roles from any list of names or [`Role`]s.
    pub fn new<R: Into<Role>>(roles: impl IntoIterator<Item = R>) -> Self {
        Roles(roles.into_iter().map(Into::into).collect())
    }

    /// Whether the caller has the role with this name.
    pub fn contains(&self, role: &str) -> bool {
        self.0.iter().any(|r| r.as_str() == role)
    }

    /// The roles, in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.0.iter()
    }

    /// The roles as a slice.
    pub fn as_slice(&self) -> &[Role] {
        &self.0
    }

    /// Number of roles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no roles.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both values share one allocation (used to check interning).
    pub fn ptr_eq(&self, other: &Roles) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// An authenticated caller: a stable subject id, a display name and roles.
///
/// Sessions are bound to [`Identity::id`]: bind it to a stable subject (the
/// token's `sub`, a user id), never to the raw token, so that a token refresh
/// keeps the session. Cloning is a reference-count increment.
///
/// ```
/// use mcp_session::Identity;
/// let alice = Identity::new("alice", "Alice", ["admin", "reader"]);
/// assert_eq!(alice.id(), "alice");
/// assert_eq!(alice.name(), "Alice");
/// assert!(alice.roles().contains("admin"));
/// assert!(alice.has_role("reader"));
/// ```
#[derive(Clone)]
pub struct Identity(Arc<IdentityInner>);

#[derive(PartialEq, Eq)]
struct IdentityInner {
    id: Box<str>,
    name: Box<str>,
    roles: Roles,
}

impl Identity {
    /// An identity with this subject id, display name and roles.
    pub fn new<R: Into<Role>>(
        id: impl AsRef<str>,
        name: impl AsRef<str>,
        roles: impl IntoIterator<Item = R>,
    ) -> Self {
        Self::with_roles(id, name, Roles::new(roles))
    }

    /// An identity whose roles are an existing (shared) [`Roles`] list.
    pub fn with_roles(id: impl AsRef<str>, name: impl AsRef<str>, roles: Roles) -> Self {
        Identity(Arc::new(IdentityInner {
            id: id.as_ref().into(),
            name: name.as_ref().into(),
            roles,
        }))
    }

    /// The identity every anonymous caller shares (only used when the layer is
    /// configured with [`crate::SessionLayer::allow_anonymous`]).
    pub fn anonymous() -> Self {
        Identity::new::<Role>("anonymous", "Anonymous", [])
    }

    /// The stable subject id that sessions are bound to.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The roles.
    pub fn roles(&self) -> &Roles {
        &self.0.roles
    }

    /// Whether the identity has the role with this name.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.contains(role)
    }

    /// Whether both values share one allocation (used to check interning).
    pub fn ptr_eq(&self, other: &Identity) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Same id, name and roles.
    pub fn same_as(&self, other: &Identity) -> bool {
        self.ptr_eq(other) || self.0 == other.0
    }
}

/// Two identities are equal when their subject ids are equal (that is what a
/// session is bound to); use [`Identity::same_as`] to compare names and roles too.
impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Identity {}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("roles", self.roles())
            .finish()
    }
}
