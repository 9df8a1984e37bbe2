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

use std::any::Any;
use std::time::Duration;

use mcp_session::handles::{
    HandleConfig, HandleError, HandleInfo, HandleKey, HandleLimits, HandleStore, Handles, Lookup,
    NewHandle, Replaced,
};
use mcp_session::rmcp::OwnHandles;
use mcp_session::{MokaStore, RedisStore, SessionStore, StoreError, Timestamp};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};

use super::tools::DemoServer;

/// The caller's notes, in a `#[tool]`.
pub type Notes = OwnHandles<Vec<String>, NotesStore>;

/// The notes of every caller, over the session store.
pub fn notes<S: SessionStore>(
    sessions: &S,
    idle_timeout: Duration,
) -> Handles<Vec<String>, NotesStore> {
    let config = HandleConfig::default().idle_timeout(idle_timeout);
    Handles::new(NotesStore::of(sessions), "notes", config).create_tool("notes_create")
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

/// The session store the server runs on, as a handle store: the example
/// serves either, so its tools name one type for both.
#[derive(Clone)]
pub enum NotesStore {
    Memory(MokaStore),
    Redis(RedisStore),
}

impl NotesStore {
    fn of<S: SessionStore>(store: &S) -> Self {
        let store = store as &dyn Any;
        if let Some(moka) = store.downcast_ref::<MokaStore>() {
            return NotesStore::Memory(moka.clone());
        }
        match store.downcast_ref::<RedisStore>() {
            Some(redis) => NotesStore::Redis(redis.clone()),
            None => panic!("the example keeps notes in its MokaStore or RedisStore"),
        }
    }
}

impl HandleStore for NotesStore {
    async fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> Result<(), StoreError> {
        match self {
            NotesStore::Memory(store) => store.create_handle(new, limits).await,
            NotesStore::Redis(store) => store.create_handle(new, limits).await,
        }
    }

    async fn open_handle(&self, key: &HandleKey<'_>, now: Timestamp) -> Result<Lookup, StoreError> {
        match self {
            NotesStore::Memory(store) => store.open_handle(key, now).await,
            NotesStore::Redis(store) => store.open_handle(key, now).await,
        }
    }

    async fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<Replaced, StoreError> {
        match self {
            NotesStore::Memory(store) => store.replace_handle(key, version, payload, now).await,
            NotesStore::Redis(store) => store.replace_handle(key, version, payload, now).await,
        }
    }

    async fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        match self {
            NotesStore::Memory(store) => store.delete_handle(key, now).await,
            NotesStore::Redis(store) => store.delete_handle(key, now).await,
        }
    }

    async fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> Result<Vec<HandleInfo>, StoreError> {
        match self {
            NotesStore::Memory(store) => store.list_handles(owner, kind, now).await,
            NotesStore::Redis(store) => store.list_handles(owner, kind, now).await,
        }
    }

    async fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match self {
            NotesStore::Memory(store) => store.claim_once(nonce, until, now).await,
            NotesStore::Redis(store) => store.claim_once(nonce, until, now).await,
        }
    }
}
