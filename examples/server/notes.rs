//! Notes: stateful tools for sessionless (2026-07-28) and handshake-era
//! clients alike, on `mcp_session::handles`.
//!
//! - `notes_create {}` → `{"handle": "h_…"}`: a new, empty notes buffer,
//!   bound to the caller;
//! - `notes_append {"handle", "text"}` → `{"appended": n}` (lines now held);
//! - `notes_read {"handle"}` → `{"text": "…"}`: the appended texts in order,
//!   joined with a newline (`"one\ntwo"`);
//! - `notes_delete {"handle"}` → `{"deleted": true}`.
//!
//! The handle is an ordinary tool argument: no session is needed, and one
//! made in a handshake-era session works sessionless too (it is bound to
//! the caller, not to a session). Another caller's handle gets exactly the
//! error an unknown one gets. Notes live in the same store as the sessions
//! (in memory, or the Redis of `--redis-url`), in a namespace of their own,
//! and expire after `--timeout-secs` without use (24 h at most).

use std::time::Duration;

use mcp_session::handles::{HandleConfig, HandleError, Handles};
use mcp_session::rmcp::OwnHandles;
use mcp_session::AnyStore;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};

use super::tools::DemoServer;

/// The caller's notes, in a `#[tool]`.
pub type Notes = OwnHandles<Vec<String>, AnyStore>;

/// The notes of every caller, over the session store.
pub fn notes(sessions: &AnyStore, idle_timeout: Duration) -> Handles<Vec<String>, AnyStore> {
    let config = HandleConfig::default().idle_timeout(idle_timeout);
    Handles::new(sessions.clone(), "notes", config).create_tool("notes_create")
}

/// Arguments naming a notes buffer.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct HandleArgs {
    /// The handle `notes_create` returned.
    pub handle: String,
}

/// Arguments of `notes_append`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AppendArgs {
    /// The handle `notes_create` returned.
    pub handle: String,
    /// The text to append (one line of the buffer).
    pub text: String,
}

#[tool_router(router = notes_router, vis = "pub(crate)")]
impl DemoServer {
    #[tool(
        description = "Create an empty notes buffer, kept on the server for you only. Returns {\"handle\": \"h_...\"}: pass it to notes_append, notes_read and notes_delete. It expires after the server's idle timeout without use (24 hours at most)."
    )]
    async fn notes_create(&self, notes: Notes) -> Result<String, HandleError> {
        let handle = notes.create(&Vec::new()).await?;
        Ok(serde_json::json!({ "handle": handle.reveal() }).to_string())
    }

    #[tool(
        description = "Append a text to a notes buffer. Returns {\"appended\": number of texts now held}."
    )]
    async fn notes_append(
        &self,
        notes: Notes,
        Parameters(args): Parameters<AppendArgs>,
    ) -> Result<String, HandleError> {
        let held = notes
            .update(&args.handle, |lines| {
                lines.push(args.text.clone());
                lines.len()
            })
            .await?;
        Ok(serde_json::json!({ "appended": held }).to_string())
    }

    #[tool(
        description = "Read a notes buffer. Returns {\"text\": the appended texts in order, joined with a newline}."
    )]
    async fn notes_read(
        &self,
        notes: Notes,
        Parameters(args): Parameters<HandleArgs>,
    ) -> Result<String, HandleError> {
        let lines = notes.get(&args.handle).await?;
        Ok(serde_json::json!({ "text": lines.join("\n") }).to_string())
    }

    #[tool(description = "Delete a notes buffer. Returns {\"deleted\": true}.")]
    async fn notes_delete(
        &self,
        notes: Notes,
        Parameters(args): Parameters<HandleArgs>,
    ) -> Result<String, HandleError> {
        notes.delete(&args.handle).await?;
        Ok(serde_json::json!({ "deleted": true }).to_string())
    }
}
