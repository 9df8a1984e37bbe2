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
    /// The roles to authorize a request with, as the
    /// [`SessionLayer`](crate::SessionLayer) found them for this very request:
    /// from the manager's [`RoleSource`](crate::roles::RoleSource), at most
    /// [`Config::roles_max_age`](crate::Config::roles_max_age) old, the same
    /// way with a session and without one. `None` if the request did not
    /// pass through the layer (an auth layer alone leaves only the
    /// [`Identity`], whose roles are not checked against any source).
    ///
    /// Only the layer can put these roles into a request: nothing upstream
    /// can forge them.
    ///
    /// ```
    /// use mcp_session::{Identity, Roles};
    ///
    /// let mut extensions = http::Extensions::new();
    /// extensions.insert(Identity::new("alice", "Alice", ["admin"]));
    /// assert!(Roles::of(&extensions).is_none()); // the layer never saw it
    /// ```
    pub fn of(extensions: &http::Extensions) -> Option<&Roles> {
        // On the session path the roles travel inside the `Session` (one
        // extension per request); elsewhere in their own.
        if let Some(granted) = extensions.get::<crate::Session>().and_then(|s| s.granted()) {
            return Some(granted);
        }
        extensions.get::<GrantedRoles>().map(|granted| &granted.0)
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

/// The roles the layer found for a request, in its extensions. Private, so
/// that only the layer inserts it ([`Roles::of`] reads it).
#[derive(Clone, Debug)]
pub(crate) struct GrantedRoles(pub(crate) Roles);

/// An authenticated caller: a stable subject id, a display name and roles.
///
/// Sessions are bound to [`Identity::id`]: bind it to a stable subject (the
/// token's `sub`, a user id), never to the raw token, so that a token refresh
/// keeps the session. The id must be unique across every issuer the auth
/// layer accepts: with several issuers, build it from both (for example
/// `format!("{iss}|{sub}")`), or two users of different issuers with the
/// same `sub` would share sessions, caps and roles. Cloning is a
/// reference-count increment.
///
/// The roles an `Identity` carries are what the auth layer claims (for
/// example a token's roles claim). The default
/// [`RoleSource`](crate::roles::RoleSource) authorizes with them; handlers
/// authorize with [`Roles::of`], which holds what the configured source
/// says.
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
            id: subject_id(id.as_ref()),
            name: name.as_ref().into(),
            roles,
        }))
    }

    /// An identity rebuilt from a stored [`Identity::id`] (for store
    /// implementations): the id is taken exactly as `id()` returned it, so
    /// [`Identity::anonymous`] and escaped ids round-trip unchanged.
    pub fn from_stored(id: impl AsRef<str>, name: impl AsRef<str>, roles: Roles) -> Self {
        Identity(Arc::new(IdentityInner {
            id: id.as_ref().into(),
            name: name.as_ref().into(),
            roles,
        }))
    }

    /// The identity every anonymous caller shares (only used when the layer is
    /// configured with [`crate::SessionLayer::allow_anonymous`]).
    ///
    /// Its id lives outside the namespace of real subjects: no id given to
    /// [`Identity::new`] equals it, so a real user whose subject is
    /// `"anonymous"` shares no session, cap or roles with anonymous callers.
    ///
    /// ```
    /// use mcp_session::Identity;
    /// let anonymous = Identity::anonymous();
    /// assert!(anonymous.is_anonymous());
    /// assert_ne!(anonymous, Identity::new::<&str>("anonymous", "Anonymous", []));
    /// assert_ne!(anonymous, Identity::new::<&str>(anonymous.id(), "Mallory", []));
    /// ```
    pub fn anonymous() -> Self {
        Identity(Arc::new(IdentityInner {
            id: ANONYMOUS_ID.into(),
            name: "Anonymous".into(),
            roles: Roles::default(),
        }))
    }

    /// Whether this is [`Identity::anonymous`].
    pub fn is_anonymous(&self) -> bool {
        &*self.0.id == ANONYMOUS_ID
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

/// The id of [`Identity::anonymous`]. It starts with NUL, and
/// [`subject_id`] maps every real id that starts with NUL to one that starts
/// with two, so no real id can equal it.
const ANONYMOUS_ID: &str = "\0anonymous";

/// A real subject's id as stored: unchanged unless it starts with NUL (no
/// sane subject does), which gets one more, keeping the mapping one-to-one
/// and out of the anonymous id's way.
fn subject_id(id: &str) -> Box<str> {
    if id.starts_with('\0') {
        format!("\0{id}").into()
    } else {
        id.into()
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

// ---------------------------------------------------------------------------
// serde: `Role` as a string, `Roles` as a list of strings, `Identity` as
// `{"id", "name", "roles"}` (plus `"anonymous": true` for the anonymous one).
// ---------------------------------------------------------------------------

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Role::new(name))
    }
}

impl serde::Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let roles: Vec<Role> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Roles(roles.into()))
    }
}

/// How an [`Identity`] looks serialized. `id` is the subject as given to
/// [`Identity::new`] (not the escaped form sessions are bound to), so that
/// deserializing goes through `Identity::new` again and no serialized id can
/// become [`Identity::anonymous`]'s; that one says `"anonymous": true`.
#[derive(serde::Serialize, serde::Deserialize)]
struct IdentityRepr<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default)]
    roles: Roles,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    anonymous: bool,
}

/// ```
/// use mcp_session::Identity;
///
/// let alice = Identity::new("alice", "Alice", ["admin"]);
/// let json = serde_json::to_string(&alice).unwrap();
/// assert_eq!(json, r#"{"id":"alice","name":"Alice","roles":["admin"]}"#);
/// let back: Identity = serde_json::from_str(&json).unwrap();
/// assert!(back.same_as(&alice));
/// ```
///
/// A deserialized identity is as trustworthy as the bytes it came from:
/// build identities from what the auth layer verified, not from request
/// bodies.
impl serde::Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let anonymous = self.is_anonymous();
        let id = match self.id() {
            _ if anonymous => "",
            // Undo `subject_id`'s escape: one NUL less.
            escaped if escaped.starts_with('\0') => &escaped[1..],
            id => id,
        };
        IdentityRepr {
            id: id.into(),
            name: self.name().into(),
            roles: self.roles().clone(),
            anonymous,
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Identity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = IdentityRepr::deserialize(deserializer)?;
        if repr.anonymous {
            return Ok(Identity::anonymous());
        }
        Ok(Identity::with_roles(repr.id, repr.name, repr.roles))
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(identity: &Identity) -> Identity {
        serde_json::from_str(&serde_json::to_string(identity).unwrap()).unwrap()
    }

    proptest! {
        /// Every identity comes back the same: the same id (so the same
        /// sessions, caps and cached roles), name and roles.
        #[test]
        fn identities_round_trip(id in "\\PC{0,12}", nul in 0usize..3, name in "\\PC{0,8}",
                                 roles in proptest::collection::vec("[a-z]{1,6}", 0..4)) {
            let id = format!("{}{id}", "\0".repeat(nul));
            let identity = Identity::new(&id, &name, roles.iter().map(String::as_str));
            let back = round_trip(&identity);
            prop_assert!(back.same_as(&identity), "{identity:?} came back as {back:?}");
            prop_assert!(!back.is_anonymous());
        }
    }

    #[test]
    fn anonymous_round_trips_and_no_id_becomes_it() {
        assert!(round_trip(&Identity::anonymous()).is_anonymous());
        // The anonymous id written as a plain id is a real subject's.
        for id in [ANONYMOUS_ID, "anonymous", "\0\0anonymous"] {
            let json = serde_json::json!({"id": id, "name": "Mallory", "roles": []});
            let identity: Identity = serde_json::from_value(json).unwrap();
            assert!(!identity.is_anonymous(), "{id:?}");
            assert_ne!(identity, Identity::anonymous());
        }
    }

    #[test]
    fn roles_are_lists_of_names() {
        let roles = Roles::new(["admin", "reader"]);
        assert_eq!(
            serde_json::to_string(&roles).unwrap(),
            r#"["admin","reader"]"#
        );
        let back: Roles = serde_json::from_str(r#"["admin","reader"]"#).unwrap();
        assert_eq!(back, roles);
        assert!(serde_json::from_str::<Roles>(r#"[1]"#).is_err());
        assert!(
            serde_json::from_str::<Identity>(r#"{"name":"x"}"#).is_err(),
            "id required"
        );
    }
}
