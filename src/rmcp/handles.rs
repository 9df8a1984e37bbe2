//! [`OwnHandles`]: the caller and its handles in one `#[tool]` parameter
//! (features `rmcp` and `handles`).

use ::rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use ::rmcp::model::{ContentBlock, IntoContents};
use ::rmcp::ErrorData;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Caller;
use crate::handles::{Handle, HandleError, HandleInfo, HandleStore, Handles};

/// The caller's handles of one kind, for an rmcp `#[tool]`: the
/// [`Handles`] a [`HandlesLayer`](crate::handles::HandlesLayer) put in the
/// request, bound to the [`Caller`] the session layer checked. Every
/// operation is the caller's own: there is no way to pass another identity.
///
/// A [`HandleError`] returned from a tool (as the error of its `Result`)
/// becomes a tool error result (`isError: true`) whose text tells the model
/// what happened and what to do ("notes handle h_1a2b3c4d… has expired;
/// create a new one with notes_create").
///
/// ```
/// use mcp_session::handles::{HandleConfig, HandleError, Handles};
/// use mcp_session::rmcp::OwnHandles;
/// use mcp_session::MokaStore;
/// use rmcp::handler::server::{router::tool::ToolRouter, wrapper::{Json, Parameters}};
/// use rmcp::model::{ServerCapabilities, ServerConfig};
/// use rmcp::{tool, tool_handler, tool_router, ServerHandler};
///
/// type Notes = OwnHandles<Vec<String>>; // over a MokaStore; name the store otherwise
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Append { handle: String, text: String }
///
/// #[derive(Clone)]
/// struct Server { tool_router: ToolRouter<Self> }
///
/// #[tool_router]
/// impl Server {
///     #[tool(description = "A new, empty notes buffer. Expires after 30 idle minutes.")]
///     async fn notes_create(&self, notes: Notes) -> Result<String, HandleError> {
///         Ok(notes.create(&Vec::new()).await?.reveal())
///     }
///
///     #[tool(description = "Append a line to a notes buffer")]
///     async fn notes_append(&self, notes: Notes, Parameters(args): Parameters<Append>) -> Result<String, HandleError> {
///         notes.update(&args.handle, |lines| lines.push(args.text.clone())).await?;
///         Ok("appended".into())
///     }
/// }
///
/// #[tool_handler(router = self.tool_router)]
/// impl ServerHandler for Server {
///     fn get_info(&self) -> ServerConfig {
///         ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
///     }
/// }
///
/// // Serve it behind the layers (outermost last): auth, SessionLayer, then
/// let handles: Handles<Vec<String>> = Handles::new(MokaStore::default(), "notes", HandleConfig::default())
///     .create_tool("notes_create");
/// let layer = handles.layer(); // .layer(...) on the router or service stack
/// # let _ = (layer, Server { tool_router: Server::tool_router() });
/// ```
pub struct OwnHandles<T, S = crate::MokaStore> {
    caller: Caller,
    handles: Handles<T, S>,
}

impl<T, S> std::fmt::Debug for OwnHandles<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnHandles")
            .field("caller", &self.caller.identity().id())
            .field("handles", &self.handles)
            .finish()
    }
}

impl<T, S> OwnHandles<T, S>
where
    T: Serialize + DeserializeOwned,
    S: HandleStore,
{
    /// The caller (identity, roles, session if any).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The store of handles, not bound to the caller.
    pub fn handles(&self) -> &Handles<T, S> {
        &self.handles
    }

    /// [`Handles::create`] for the caller.
    pub async fn create(&self, value: &T) -> Result<Handle, HandleError> {
        self.handles.create(self.caller.identity(), value).await
    }

    /// [`Handles::get`] for the caller.
    pub async fn get(&self, handle: &str) -> Result<T, HandleError> {
        self.handles.get(self.caller.identity(), handle).await
    }

    /// [`Handles::update`] for the caller.
    pub async fn update<R>(
        &self,
        handle: &str,
        change: impl FnMut(&mut T) -> R,
    ) -> Result<R, HandleError> {
        self.handles
            .update(self.caller.identity(), handle, change)
            .await
    }

    /// [`Handles::delete`] for the caller.
    pub async fn delete(&self, handle: &str) -> Result<(), HandleError> {
        self.handles.delete(self.caller.identity(), handle).await
    }

    /// [`Handles::list`] for the caller.
    pub async fn list(&self) -> Result<Vec<HandleInfo>, HandleError> {
        self.handles.list(self.caller.identity()).await
    }
}

impl<C, T, S> FromContextPart<C> for OwnHandles<T, S>
where
    C: AsRequestContext,
    T: 'static,
    S: Send + Sync + 'static,
{
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let context = context.as_request_context();
        let caller = Caller::from_request_context(context)?;
        let handles = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Handles<T, S>>())
            .cloned()
            .ok_or_else(|| {
                ErrorData::internal_error(
                    format!(
                        "mcp-session: no {} in the request; add its handles.layer() in \
                         front of the rmcp StreamableHttpService",
                        std::any::type_name::<Handles<T, S>>()
                    ),
                    None,
                )
            })?;
        Ok(OwnHandles { caller, handles })
    }
}

/// A tool error result (`isError: true`) with the error's message.
impl IntoContents for HandleError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
