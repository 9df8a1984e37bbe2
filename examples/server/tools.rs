//! The demo MCP server and its tools.

use std::sync::Arc;

use mcp_session::rmcp::Caller;
use mcp_session::{Role, Roles, SessionId};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};

use super::directory::Admin;

/// Arguments of `admin_echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to echo back.
    pub text: String,
}

/// Arguments of `set_roles`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SetRolesArgs {
    /// Whose roles to replace.
    pub identity_id: String,
    /// The new roles.
    pub roles: Vec<String>,
}

/// Arguments of `revoke_sessions`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct RevokeArgs {
    /// Whose sessions to end.
    pub identity_id: String,
}

/// The demo MCP server: tools that show who calls, enforce a role, and
/// administer roles and sessions.
#[derive(Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
    admin: Arc<dyn Admin>,
}

impl DemoServer {
    pub fn new(admin: Arc<dyn Admin>) -> Self {
        DemoServer {
            tool_router: Self::tool_router() + Self::notes_router(),
            admin,
        }
    }
}

#[tool_router]
impl DemoServer {
    /// The caller's identity, roles and session id (null when sessionless).
    #[tool(
        description = "Who is calling: identity id and name, current roles, and the session id (null on sessionless requests)"
    )]
    fn whoami(&self, caller: Caller) -> String {
        let roles: Vec<&str> = caller.roles().iter().map(Role::as_str).collect();
        serde_json::json!({
            "identity_id": caller.identity().id(),
            "identity_name": caller.identity().name(),
            "roles": roles,
            "session_id": caller.session_id().map(SessionId::reveal),
        })
        .to_string()
    }

    /// Echoes the text. Who may call it is the policy's business
    /// (examples/policy.toml: role `admin`), not the tool's.
    #[tool(description = "Echo the text back; requires the role `admin`")]
    fn admin_echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Replaces an identity's roles everywhere (admin only).
    #[tool(
        description = "Replace the roles of an identity in the directory; every replica uses them from the next request on. Requires the role `admin`. Returns {\"identity_id\", \"roles\"}."
    )]
    async fn set_roles(
        &self,
        caller: Caller,
        Parameters(args): Parameters<SetRolesArgs>,
    ) -> Result<String, String> {
        // Defense in depth: the policy already admits only `admin`; this
        // destructive tool stays safe if wired without the policy layer.
        caller.require_role("admin").map_err(|e| e.to_string())?;
        let roles = Roles::new(args.roles.iter().map(String::as_str));
        self.admin.set_roles(&args.identity_id, roles).await?;
        Ok(serde_json::json!({"identity_id": args.identity_id, "roles": args.roles}).to_string())
    }

    /// Ends every session of an identity everywhere (admin only).
    #[tool(
        description = "End every session of an identity on every replica. Requires the role `admin`. Returns {\"terminated\": count}."
    )]
    async fn revoke_sessions(
        &self,
        caller: Caller,
        Parameters(args): Parameters<RevokeArgs>,
    ) -> Result<String, String> {
        // Defense in depth, as in `set_roles`.
        caller.require_role("admin").map_err(|e| e.to_string())?;
        let terminated = self.admin.revoke_sessions(&args.identity_id).await?;
        Ok(serde_json::json!({"terminated": terminated}).to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-session-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Demo of identity-bound MCP sessions: `whoami` shows the caller, \
                 `admin_echo` needs the admin role, `set_roles` and `revoke_sessions` \
                 administer roles and sessions (admin only).",
            )
    }
}
