//! rmcp integration (feature `rmcp`): the [`Caller`] extractor for
//! `#[tool]` functions, [`MissingRole`] for RBAC refusals, and
//! [`SessionStateStore`], rmcp's session store over ours (stateful rmcp on
//! many replicas without sticky routing).
//!
//! rmcp's `StreamableHttpService` moves each HTTP request's
//! [`http::request::Parts`] (with its extensions) into the context of the
//! tool call it carries. [`SessionLayer`](crate::SessionLayer) put the
//! caller's [`Identity`], its current [`Roles`] and, in the handshake era,
//! the [`Session`] into those extensions; [`Caller`] hands them to the
//! tool.
//!
//! ```
//! use mcp_session::rmcp::{Caller, MissingRole};
//! use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
//! use rmcp::model::{ServerCapabilities, ServerConfig};
//! use rmcp::{tool, tool_handler, tool_router, ServerHandler};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct EchoArgs {
//!     text: String,
//! }
//!
//! #[derive(Clone)]
//! struct Server {
//!     tool_router: ToolRouter<Self>,
//! }
//!
//! #[tool_router]
//! impl Server {
//!     #[tool(description = "Who is calling, in which session")]
//!     fn whoami(&self, caller: Caller) -> String {
//!         let session = caller.session_id().map(|id| id.reveal());
//!         format!("{} ({:?}), session {session:?}", caller.identity().name(), caller.roles())
//!     }
//!
//!     #[tool(description = "Echo, for admins only")]
//!     fn admin_echo(
//!         &self,
//!         caller: Caller,
//!         Parameters(args): Parameters<EchoArgs>,
//!     ) -> Result<String, MissingRole> {
//!         caller.require_role("admin")?; // otherwise a tool error naming the role
//!         Ok(args.text)
//!     }
//! }
//!
//! #[tool_handler(router = self.tool_router)]
//! impl ServerHandler for Server {
//!     fn get_info(&self) -> ServerConfig {
//!         ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
//!     }
//! }
//! # let _ = Server { tool_router: Server::tool_router() };
//! ```
//!
//! If the request did not pass through a `SessionLayer` (or did not come
//! over rmcp's Streamable HTTP server transport), extracting a [`Caller`]
//! fails the call with a JSON-RPC internal error saying so: a tool never
//! runs believing in an identity nobody checked.

use std::fmt;

use ::rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use ::rmcp::model::{ContentBlock, IntoContents};
use ::rmcp::service::RequestContext;
use ::rmcp::{ErrorData, RoleServer};

use crate::{Identity, Role, Roles, Session, SessionId};

#[cfg(feature = "handles")]
mod handles;
#[cfg(feature = "handles")]
pub use handles::OwnHandles;
mod session_store;
pub use session_store::{SessionStateStore, DEFAULT_MEMORY_BYTES, MAX_STATE_BYTES};

/// The caller of a tool, as the session layer saw it: its [`Identity`], the
/// [`Roles`] to authorize with (from the manager's
/// [`RoleSource`](crate::roles::RoleSource), at most
/// [`Config::roles_max_age`](crate::Config::roles_max_age) old) and the
/// [`Session`] (`None` on sessionless, 2026-07-28, requests).
///
/// Take it as a parameter of an rmcp `#[tool]` (or `#[prompt]`) function;
/// see the [module docs](self). Cloning is cheap (reference counts).
#[derive(Clone, Debug)]
pub struct Caller {
    identity: Identity,
    roles: Roles,
    session: Option<Session>,
}

impl Caller {
    /// The caller recorded in HTTP request extensions by the session layer,
    /// or `None` if the layer did not let this request through (neither a
    /// [`Session`] nor the [`Sessionless`](crate::layer::Sessionless) mark
    /// in them, or no [`Identity`]).
    ///
    /// For handlers that are not rmcp tools (an axum handler, a hyper
    /// service) this reads the same data the extractor reads.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        // An auth layer alone inserts only the `Identity`: the session or
        // the mark says the session layer checked the request.
        let roles = Roles::of(extensions)?.clone();
        let session = extensions.get::<Session>().cloned();
        let identity = match extensions.get::<Identity>() {
            Some(identity) => identity.clone(),
            None => session.as_ref()?.identity().clone(),
        };
        Some(Caller {
            identity,
            roles,
            session,
        })
    }

    /// The caller of the request an rmcp handler is serving, from the
    /// [`http::request::Parts`] rmcp's Streamable HTTP server put in its
    /// context. Fails with an internal error if the data is absent.
    pub fn from_request_context(context: &RequestContext<RoleServer>) -> Result<Self, ErrorData> {
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| {
                ErrorData::internal_error(
                    "mcp-session: no HTTP request in the rmcp request context; the Caller \
                     extractor needs rmcp's Streamable HTTP server transport behind a SessionLayer",
                    None,
                )
            })?;
        Self::from_extensions(&parts.extensions).ok_or_else(|| {
            ErrorData::internal_error(
                "mcp-session: no session-layer data on the HTTP request; put \
                 mcp_session::SessionLayer in front of the rmcp StreamableHttpService",
                None,
            )
        })
    }

    /// The authenticated caller of this request.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The roles to authorize with, as [`Roles::of`] gives them: the same in
    /// both protocol eras, never older than the configured bound.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Whether the caller has the role with this name.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// `Ok` if the caller has the role; otherwise a [`MissingRole`], which
    /// an rmcp tool returning `Result<_, MissingRole>` turns into a tool
    /// error result (`isError: true`) naming the role.
    pub fn require_role(&self, role: &str) -> Result<(), MissingRole> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(MissingRole {
                role: Role::new(role),
            })
        }
    }

    /// The session, or `None` on a sessionless (2026-07-28) request.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The session's id, or `None` on a sessionless request.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref().map(Session::id)
    }

    /// The parts: identity, roles, session.
    pub fn into_parts(self) -> (Identity, Roles, Option<Session>) {
        (self.identity, self.roles, self.session)
    }
}

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Caller::from_request_context(context.as_request_context())
    }
}

/// The caller lacks a role a tool requires. As the error of a tool's
/// `Result`, rmcp turns it into a tool error result whose text names the
/// role (the call itself succeeds at the protocol level, so the model sees
/// why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingRole {
    role: Role,
}

impl MissingRole {
    /// A refusal for lack of `role`.
    pub fn new(role: impl Into<Role>) -> Self {
        MissingRole { role: role.into() }
    }

    /// The role the caller lacks.
    pub fn role(&self) -> &Role {
        &self.role
    }
}

impl fmt::Display for MissingRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "permission denied: this tool requires the role `{}`",
            self.role
        )
    }
}

impl std::error::Error for MissingRole {}

impl IntoContents for MissingRole {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::GrantedRoles;
    use crate::Timestamp;
    use std::time::Duration;

    fn alice() -> Identity {
        Identity::new("alice", "Alice", ["admin", "reader"])
    }

    #[test]
    fn needs_the_roles_the_layer_granted() {
        let mut ext = http::Extensions::new();
        assert!(Caller::from_extensions(&ext).is_none());
        ext.insert(alice()); // what an auth layer alone leaves
        ext.insert(crate::layer::Sessionless); // a forged mark is not enough
        assert!(Caller::from_extensions(&ext).is_none());
        ext.insert(GrantedRoles(Roles::new(["reader"])));
        let caller = Caller::from_extensions(&ext).unwrap();
        assert_eq!(caller.identity().id(), "alice");
        assert!(caller.has_role("reader"));
        assert!(caller.session().is_none());
        assert!(caller.session_id().is_none());
    }

    #[test]
    fn authorizes_with_the_granted_roles_not_those_stored_with_the_session() {
        // Created while alice was admin; the role source now says reader.
        let session = Session::new(
            SessionId::generate(),
            Identity::new("alice", "Alice", ["reader", "admin"]),
            Timestamp::from_millis(0),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        let mut ext = http::Extensions::new();
        ext.insert(Identity::new("alice", "Alice", ["reader", "admin"]));
        ext.insert(session.clone());
        ext.insert(GrantedRoles(Roles::new(["reader"])));
        let caller = Caller::from_extensions(&ext).unwrap();
        assert_eq!(caller.session_id(), Some(session.id()));
        assert_eq!(caller.identity().id(), "alice");
        assert!(!caller.has_role("admin"));
        let denied = caller.require_role("admin").unwrap_err();
        assert_eq!(denied.role().as_str(), "admin");
        assert!(denied.to_string().contains("`admin`"));
    }
}
