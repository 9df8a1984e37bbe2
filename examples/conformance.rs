//! The server that the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, see `.ci/conformance.sh`) tests:
//! an rmcp server with the tools, resources, prompts and completions the
//! suite's server scenarios expect, served **behind `SessionLayer`**, with a
//! fixed test identity inserted by a middleware outside the layer.
//!
//! ```text
//! cargo run --example conformance --all-features -- [--mode adopt|mint] [--addr 127.0.0.1:3001]
//!                                                    [--redis-url redis://127.0.0.1:6379]
//!                                                    [--no-event-store] [--without-layer]
//! ```
//!
//! - `--mode adopt` (default): rmcp keeps its legacy session mode (it mints
//!   the ids, keeps the server-to-client streams); the layer adopts each id,
//!   binds it to the caller and expires it.
//! - `--mode mint`: rmcp runs stateless; the layer mints the ids. Its
//!   streams are resumable through an in-memory event store
//!   ([`MemoryEventStore`]; `--no-event-store` leaves it out). A
//!   stateless rmcp cannot send requests (sampling, elicitation) to a
//!   handshake-era client, nor serve the standalone GET stream. The tools
//!   that ask the client still send their request, but the client's answer
//!   never reaches them: they wait until the client gives up. (The suite's
//!   checks look only at the request being sent; a tool that failed after
//!   a timeout would pass them, so these tools deliberately have none, and
//!   the suite's scenario timeout records the failure.)
//! - `--redis-url URL`: sessions in Redis instead of in memory; in adopt
//!   mode rmcp's session states too ([`SessionStateStore`]), so replicas
//!   over one Redis serve each other's sessions.
//! - `--without-layer`: rmcp alone, configured as for `--mode`, no
//!   `SessionLayer`: the baseline to compare the layer's scores with.
//!
//! Both protocol eras are served at once: `initialize` selects the handshake
//! era (2025-11-25 and before), everything else is sessionless 2026-07-28.
//!
//! This is a test fixture: every request is authenticated as the same
//! identity, whatever it sends. Never deploy it.

// Sampling, roots and logging are deprecated by SEP-2577 (2026-07-28), but
// the handshake-era scenarios test them, so this fixture serves them.
#![allow(deprecated)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use clap::Parser;
use mcp_session::rmcp::SessionStateStore;
use mcp_session::{
    Config, IdMode, Identity, MokaStore, RedisStore, SessionLayer, SessionManager, SessionStore,
};
use rmcp::model::*;
use rmcp::service::{RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::store::{
    EventStore, EventStoreError, EventStream,
};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

/// Idle timeout of a session; rmcp's keep-alive is set to the same in adopt mode.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The one caller of this fixture.
static TEST_IDENTITY: LazyLock<Identity> =
    LazyLock::new(|| Identity::new("conformance", "Conformance Suite", ["tester"]));

/// Key that seals MRTR `requestState` (integrity only). A fixed key is fine
/// for a test fixture; a real server loads a secret.
const REQUEST_STATE_KEY: &[u8] = b"mcp-session conformance fixture: requestState key";

/// `ttlMs` on cacheable results (SEP-2549).
const CACHE_TTL_MS: u64 = 30_000;

/// A 1x1 PNG, base64.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
/// A WAV header with no samples, base64.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

// ---------------------------------------------------------------------------
// Command line and wiring
// ---------------------------------------------------------------------------

/// The MCP conformance suite's server (TEST FIXTURE: every request is the
/// same identity).
#[derive(Debug, Parser)]
#[command(name = "conformance")]
struct Options {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,

    /// `adopt`: rmcp mints session ids, the layer adopts them; `mint`: the
    /// layer mints session ids, rmcp runs stateless.
    #[arg(long, default_value = "adopt", value_parser = id_mode)]
    mode: IdMode,

    /// Keep sessions in Redis, e.g. redis://127.0.0.1:6379 (default: in
    /// memory).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,

    /// Serve rmcp alone (configured as for --mode), for comparison.
    #[arg(long)]
    without_layer: bool,

    /// Mint mode: no event store, so rmcp's streams are not resumable.
    #[arg(long)]
    no_event_store: bool,
}

fn id_mode(value: &str) -> Result<IdMode, String> {
    match value {
        "adopt" => Ok(IdMode::Adopt),
        "mint" => Ok(IdMode::Mint),
        _ => Err(format!("{value:?}: expected adopt or mint")),
    }
}

fn main() -> ExitCode {
    // Bad arguments: clap's message on stderr, exit code 2.
    let options = Options::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.addr).await?;
    match &options.redis_url {
        Some(url) => {
            let store = RedisStore::connect(url).await.map_err(|error| {
                std::io::Error::other(format!("cannot use Redis at {url}: {error}"))
            })?;
            let fanout = ListFanout::connect(url).await.map_err(|error| {
                std::io::Error::other(format!("cannot subscribe at {url}: {error}"))
            })?;
            let name = format!("Redis at {url}");
            serve(listener, &options, store, &name, Some(fanout)).await
        }
        None => {
            serve(
                listener,
                &options,
                MokaStore::new(100_000),
                "in memory",
                None,
            )
            .await
        }
    }
}

/// Redis channel on which `test_trigger_*_change` announce a list change
/// to every replica over the same Redis, so that a `subscriptions/listen`
/// stream open on one replica hears of a change made through another (a
/// real server with replicas needs the same fan-out for its own changes).
const LIST_CHANGED_CHANNEL: &str = "mcp-session-conformance:list-changed";

#[derive(Clone, Copy)]
enum ListChange {
    Tools,
    Prompts,
}

impl ListChange {
    fn as_str(self) -> &'static str {
        match self {
            ListChange::Tools => "tools",
            ListChange::Prompts => "prompts",
        }
    }

    fn parse(raw: &[u8]) -> Option<Self> {
        match raw {
            b"tools" => Some(ListChange::Tools),
            b"prompts" => Some(ListChange::Prompts),
            _ => None,
        }
    }
}

/// Over Redis: a connection to publish list changes on, and the
/// subscription that hears every replica's (this one's included).
struct ListFanout {
    publisher: redis::aio::MultiplexedConnection,
    messages: redis::aio::PubSubStream,
}

impl ListFanout {
    /// Subscribed before the server listens: no change is missed.
    async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(LIST_CHANGED_CHANNEL).await?;
        Ok(ListFanout {
            publisher: client.get_multiplexed_async_connection().await?,
            messages: pubsub.into_on_message(),
        })
    }

    /// Relays every announced change to this process's listen streams.
    async fn relay(mut messages: redis::aio::PubSubStream, server: ConformanceServer) {
        use futures::StreamExt;
        while let Some(message) = messages.next().await {
            if let Some(change) = ListChange::parse(message.get_payload_bytes()) {
                server.notify_listeners(change).await;
            }
        }
        eprintln!("conformance server: the list-change subscription ended");
    }
}

async fn serve<S: SessionStore>(
    listener: TcpListener,
    options: &Options,
    store: S,
    store_name: &str,
    fanout: Option<ListFanout>,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let layer = SessionLayer::new(SessionManager::new(
        store,
        Config::default().timeout(SESSION_TIMEOUT),
    ))
    .id_mode(options.mode);

    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.clone());
    let mut sessions = LocalSessionManager::default();
    let config = match options.mode {
        IdMode::Adopt => {
            sessions.session_config.keep_alive = Some(SESSION_TIMEOUT);
            let mut config = config.with_legacy_session_mode(true);
            // Over Redis, rmcp's session states (the `initialize`
            // parameters) go to the same Redis, so a replica restores the
            // sessions another one created (the replicas run of
            // .ci/conformance.sh).
            let manager = layer.manager();
            config.session_store = (manager.store() as &dyn std::any::Any)
                .downcast_ref::<RedisStore>()
                .map(|redis| SessionStateStore::redis(manager, redis) as _);
            config
        }
        // Mint mode (and any mode to come): rmcp stateless.
        _ => {
            if !options.no_event_store {
                sessions = sessions.with_event_store(Arc::new(MemoryEventStore::default()));
            }
            config.with_legacy_session_mode(false)
        }
    };
    // One handler state for the whole process: subscriptions and listen
    // streams are per process; over Redis, list changes reach every
    // replica's streams through `ListFanout`.
    let (publisher, messages) = fanout.map(|f| (f.publisher, f.messages)).unzip();
    let server = ConformanceServer::new(publisher);
    if let Some(messages) = messages {
        tokio::spawn(ListFanout::relay(messages, server.clone()));
    }
    let rmcp = StreamableHttpService::new(move || Ok(server.clone()), Arc::new(sessions), config);
    let app = if options.without_layer {
        Router::new().nest_service("/mcp", rmcp)
    } else {
        // Every layer of this crate, in its order: the policy layer allows
        // all here (the suite's identity may do anything), so what is
        // checked is that it passes every scenario's traffic through intact.
        let allow_all = mcp_session::policy::Policy::default_allow()
            .build()
            .expect("an empty allow-all policy is valid");
        let mcp = ServiceBuilder::new()
            .layer(middleware::from_fn(fixed_identity)) // outermost: runs first
            .layer(layer)
            .layer(mcp_session::policy::PolicyLayer::new(allow_all))
            .service(rmcp);
        Router::new().nest_service("/mcp", mcp)
    };

    let mode = match options.mode {
        IdMode::Mint => "mint",
        _ => "adopt",
    };
    let sessions = if options.without_layer {
        "WITHOUT the layer (rmcp alone)".to_string()
    } else {
        format!("sessions {store_name}")
    };
    println!(
        "conformance server: mode {mode}, {sessions}, listening on http://{}/mcp",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        })
        .await
}

/// A bounded in-memory [`EventStore`]: what makes a stateless rmcp's SSE
/// streams resumable (priming event, event ids, `GET` with
/// `Last-Event-ID`). rmcp 3.11 defines the trait and ships no implementation.
///
/// Fixture only: one process, and the events are not bound to the session
/// or the caller, because rmcp's replay call carries neither (anyone who
/// holds an event id can replay the rest of its stream; the ids embed
/// rmcp's random stream id). Replicas need a shared store.
#[derive(Default)]
struct MemoryEventStore {
    events: Mutex<VecDeque<(String, u64, ServerSseMessage)>>,
    next: AtomicU64,
}

impl MemoryEventStore {
    /// Events kept, over all streams; the oldest go first.
    const CAPACITY: usize = 10_000;
}

#[async_trait::async_trait]
impl EventStore for MemoryEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<String, EventStoreError> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{stream_id}.{seq}");
        let mut event = event.clone();
        event.event_id = Some(id.clone());
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == Self::CAPACITY {
            events.pop_front();
        }
        events.push_back((stream_id.to_string(), seq, event));
        Ok(id)
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let (stream_id, seq) = last_event_id
            .rsplit_once('.')
            .and_then(|(stream, seq)| Some((stream, seq.parse::<u64>().ok()?)))
            .ok_or("malformed Last-Event-ID")?;
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let later: Vec<ServerSseMessage> = events
            .iter()
            .filter(|(stream, n, _)| stream == stream_id && *n > seq)
            .map(|(_, _, event)| event.clone())
            .collect();
        Ok(Box::pin(futures::stream::iter(later)))
    }
}

/// TEST FIXTURE ONLY: every request is the same authenticated caller.
async fn fixed_identity(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(TEST_IDENTITY.clone());
    next.run(request).await
}

// ---------------------------------------------------------------------------
// The catalogue: what the suite's scenarios call, by name
// ---------------------------------------------------------------------------

fn object(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are written as JSON objects"),
    }
}

fn no_arguments() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// `(name, description, input schema)` of every tool.
fn tool_table() -> Vec<(&'static str, &'static str, Value)> {
    let mut tools = vec![
        (
            "test_simple_text",
            "Answers with one text block",
            no_arguments(),
        ),
        (
            "test_image_content",
            "Answers with a PNG image block",
            no_arguments(),
        ),
        (
            "test_audio_content",
            "Answers with a WAV audio block",
            no_arguments(),
        ),
        (
            "test_embedded_resource",
            "Answers with an embedded text resource",
            no_arguments(),
        ),
        (
            "test_multiple_content_types",
            "Answers with text, an image and an embedded resource",
            no_arguments(),
        ),
        (
            "test_tool_with_logging",
            "Sends three log notifications while it runs",
            no_arguments(),
        ),
        (
            "test_error_handling",
            "Fails with a tool error (isError: true)",
            no_arguments(),
        ),
        (
            "test_tool_with_progress",
            "Reports progress 0, 50, 100 of 100 to the request's progress token",
            no_arguments(),
        ),
        (
            "test_sampling",
            "Asks the client to sample an LLM reply to `prompt`",
            json!({
                "type": "object",
                "properties": { "prompt": { "type": "string", "description": "What to ask the model" } },
                "required": ["prompt"]
            }),
        ),
        (
            "test_elicitation",
            "Asks the client for a username and an email",
            json!({
                "type": "object",
                "properties": { "message": { "type": "string", "description": "What to tell the user" } },
                "required": ["message"]
            }),
        ),
        (
            "test_elicitation_sep1034_defaults",
            "Elicits fields that all carry defaults (SEP-1034)",
            no_arguments(),
        ),
        (
            "test_elicitation_sep1330_enums",
            "Elicits the five enum shapes of SEP-1330",
            no_arguments(),
        ),
        (
            "json_schema_2020_12_tool",
            "Takes arguments described with JSON Schema 2020-12 keywords",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "address",
                        "type": "object",
                        "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
                    }
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" }
                },
                // A name or an address, or both.
                "allOf": [{ "anyOf": [{ "required": ["name"] }, { "required": ["address"] }] }],
                // With an address, its street is required.
                "if": { "required": ["address"] },
                "then": { "properties": { "address": { "required": ["street"] } } },
                "else": { "required": ["name"] },
                "additionalProperties": false
            }),
        ),
        (
            "test_reconnection",
            "Answers after a short pause (SSE polling)",
            no_arguments(),
        ),
        (
            "test_custom_header",
            "Echoes `value`, mirrored in the Mcp-Param-Value header (SEP-2243)",
            json!({
                "type": "object",
                "properties": { "value": { "type": "string", "x-mcp-header": "Value" } },
                "required": ["value"]
            }),
        ),
        (
            "test_trigger_tool_change",
            "Sends notifications/tools/list_changed to every listener",
            no_arguments(),
        ),
        (
            "test_trigger_prompt_change",
            "Sends notifications/prompts/list_changed to every listener",
            no_arguments(),
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability",
            no_arguments(),
        ),
        (
            "test_streaming_elicitation",
            "Answers with an input-required result holding one elicitation",
            no_arguments(),
        ),
        (
            "test_logging_tool",
            "Logs one message, only when the request's _meta asks for a log level",
            no_arguments(),
        ),
    ];
    for (name, description) in MRTR_TOOLS {
        tools.push((name, description, no_arguments()));
    }
    tools
}

/// Multi-round-trip (SEP-2322) tools, all without arguments.
const MRTR_TOOLS: [(&str, &str); 8] = [
    (
        "test_input_required_result_elicitation",
        "Needs one elicited input (user_name)",
    ),
    (
        "test_input_required_result_sampling",
        "Needs one sampled input (capital_question)",
    ),
    (
        "test_input_required_result_list_roots",
        "Needs the client's roots (client_roots)",
    ),
    (
        "test_input_required_result_request_state",
        "Round-trips a sealed requestState",
    ),
    (
        "test_input_required_result_multiple_inputs",
        "Needs an elicitation, a sampling and the roots in one round",
    ),
    (
        "test_input_required_result_multi_round",
        "Needs two rounds of input, state carried in requestState",
    ),
    (
        "test_input_required_result_tampered_state",
        "Rejects a requestState that fails verification",
    ),
    (
        "test_input_required_result_capabilities",
        "Asks only for inputs the client declared it can give",
    ),
];

fn tools() -> Vec<Tool> {
    tool_table()
        .into_iter()
        .map(|(name, description, schema)| Tool::new(name, description, object(schema)))
        .collect()
}

fn text(text: impl Into<String>) -> ContentBlock {
    ContentBlock::text(text)
}

fn text_resource(uri: &str, mime: &str, body: &str) -> ResourceContents {
    ResourceContents::TextResourceContents {
        uri: uri.into(),
        mime_type: Some(mime.into()),
        text: body.into(),
        meta: None,
    }
}

/// An elicitation (form mode) asking for the given object properties.
fn elicitation(message: &str, properties: Value, required: &[&str]) -> ElicitRequestParams {
    let schema = json!({ "type": "object", "properties": properties, "required": required });
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.into(),
        requested_schema: serde_json::from_value(schema).expect("a valid elicitation schema"),
    }
}

fn sampling(prompt: &str) -> CreateMessageRequestParams {
    CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100)
}

fn ask_elicitation(message: &str, field: &str) -> InputRequest {
    InputRequest::Elicitation(ElicitRequest::new(elicitation(
        message,
        json!({ field: { "type": "string" } }),
        &[field],
    )))
}

fn ask_sampling(prompt: &str) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(sampling(prompt)))
}

fn ask_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest::default())
}

/// The client's answer to the input request `key`, if it is a JSON object
/// (anything else counts as missing, and the input is asked for again).
fn answer<'a>(responses: Option<&'a InputResponses>, key: &str) -> Option<&'a Map<String, Value>> {
    responses?.get(key)?.as_object()
}

fn answer_text<'a>(answer: &'a Map<String, Value>, pointer: &str) -> Option<&'a str> {
    answer
        .get("content")
        .and_then(|content| content.pointer(pointer))
        .and_then(Value::as_str)
}

fn needs(inputs: impl IntoIterator<Item = (&'static str, InputRequest)>) -> InputRequests {
    inputs
        .into_iter()
        .map(|(key, request)| (key.to_string(), request))
        .collect()
}

// ---------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct ConformanceServer {
    state: Arc<Shared>,
}

struct Shared {
    /// `resources/subscribe` (handshake era) URIs.
    subscribed: Mutex<BTreeSet<String>>,
    /// `subscriptions/listen` (2026-07-28) sinks.
    listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    next_listener: AtomicU64,
    sealer: RequestStateCodec,
    /// Over Redis: where list changes are announced to every replica.
    list_changes: Option<redis::aio::MultiplexedConnection>,
}

impl ConformanceServer {
    fn new(list_changes: Option<redis::aio::MultiplexedConnection>) -> Self {
        ConformanceServer {
            state: Arc::new(Shared {
                subscribed: Mutex::new(BTreeSet::new()),
                listeners: Mutex::new(HashMap::new()),
                next_listener: AtomicU64::new(0),
                sealer: RequestStateCodec::try_new(REQUEST_STATE_KEY)
                    .expect("the fixed key is long enough"),
                list_changes,
            }),
        }
    }

    fn seal(&self, state: Value) -> Result<String, ErrorData> {
        self.state
            .sealer
            .seal_json(&state)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    /// Opens a `requestState` the client echoed: untrusted input, verified
    /// before anything is read from it.
    fn open(&self, sealed: &str) -> Result<Value, ErrorData> {
        self.state
            .sealer
            .open_json(sealed)
            .map_err(|_| ErrorData::invalid_params("requestState failed verification", None))
    }

    /// Announces a list change: straight to this process's listen streams,
    /// or over Redis to every replica's.
    async fn list_changed(&self, change: ListChange) -> Result<(), ErrorData> {
        let Some(publisher) = &self.state.list_changes else {
            self.notify_listeners(change).await;
            return Ok(());
        };
        redis::cmd("PUBLISH")
            .arg(LIST_CHANGED_CHANNEL)
            .arg(change.as_str())
            .query_async::<i64>(&mut publisher.clone())
            .await
            .map(drop)
            .map_err(|e| {
                ErrorData::internal_error(format!("cannot announce the change: {e}"), None)
            })
    }

    async fn notify_listeners(&self, change: ListChange) {
        for sink in self.listeners() {
            let _ = match change {
                ListChange::Tools => sink.notify_tool_list_changed().await,
                ListChange::Prompts => sink.notify_prompt_list_changed().await,
            };
        }
    }

    fn listeners(&self) -> Vec<SubscriptionSink> {
        let listeners = self
            .state
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        listeners.values().cloned().collect()
    }

    /// The SEP-2322 tools: an input-required result until the client retries
    /// with the inputs asked for.
    fn call_mrtr(
        &self,
        request: &CallToolRequestParams,
        meta: &RequestMetaObject,
    ) -> Result<CallToolResponse, ErrorData> {
        let responses = request.input_responses.as_ref();
        let state = request.request_state.as_deref();
        let done = |message: String| Ok(CallToolResult::success(vec![text(message)]).into());
        let more = |inputs: InputRequests, state: Option<String>| {
            Ok(InputRequiredResult::new(Some(inputs), state).into())
        };
        match request.name.as_ref() {
            "test_input_required_result_elicitation" => match answer(responses, "user_name") {
                Some(a) => done(format!(
                    "Hello, {}!",
                    answer_text(a, "/name").unwrap_or("stranger")
                )),
                None => more(
                    needs([("user_name", ask_elicitation("What is your name?", "name"))]),
                    None,
                ),
            },
            "test_input_required_result_sampling" => match answer(responses, "capital_question") {
                Some(a) => done(format!(
                    "Sampling response: {}",
                    answer_text(a, "/text").unwrap_or("(no text)")
                )),
                None => more(
                    needs([(
                        "capital_question",
                        ask_sampling("What is the capital of France?"),
                    )]),
                    None,
                ),
            },
            "test_input_required_result_list_roots" => match answer(responses, "client_roots") {
                Some(a) => {
                    let uris: Vec<&str> = a
                        .get("roots")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|root| root.get("uri").and_then(Value::as_str))
                        .collect();
                    done(format!("Client roots: [{}]", uris.join(", ")))
                }
                None => more(needs([("client_roots", ask_roots())]), None),
            },
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => match state {
                Some(sealed) => {
                    self.open(sealed)?;
                    done("Confirmed: state-ok".into())
                }
                None => more(
                    needs([(
                        "confirm",
                        InputRequest::Elicitation(ElicitRequest::new(elicitation(
                            "Please confirm",
                            json!({ "ok": { "type": "boolean" } }),
                            &["ok"],
                        ))),
                    )]),
                    Some(self.seal(json!({ "step": "confirm" }))?),
                ),
            },
            "test_input_required_result_multiple_inputs" => {
                if let Some(sealed) = state {
                    self.open(sealed)?;
                }
                let all = ["user_name", "greeting", "client_roots"]
                    .iter()
                    .all(|key| answer(responses, key).is_some());
                if all && state.is_some() {
                    done("All inputs received".into())
                } else {
                    more(
                        needs([
                            ("user_name", ask_elicitation("What is your name?", "name")),
                            ("greeting", ask_sampling("Generate a greeting")),
                            ("client_roots", ask_roots()),
                        ]),
                        Some(self.seal(json!({ "step": "gather" }))?),
                    )
                }
            }
            "test_input_required_result_multi_round" => {
                let round = match state {
                    Some(sealed) => self.open(sealed)?["round"].as_u64().unwrap_or(0),
                    None => 0,
                };
                match round {
                    0 => more(
                        needs([(
                            "step1",
                            ask_elicitation("Step 1: what is your name?", "name"),
                        )]),
                        Some(self.seal(json!({ "round": 1 }))?),
                    ),
                    1 => more(
                        needs([(
                            "step2",
                            ask_elicitation("Step 2: what is your favourite colour?", "color"),
                        )]),
                        Some(self.seal(json!({ "round": 2 }))?),
                    ),
                    _ => done("Multi-round flow complete".into()),
                }
            }
            "test_input_required_result_capabilities" => {
                if responses.is_some() {
                    return done("Capability-aware flow complete".into());
                }
                let declared = meta.client_capabilities().unwrap_or_default();
                let mut inputs = InputRequests::new();
                if declared.elicitation.is_some() {
                    inputs.insert(
                        "user_name".into(),
                        ask_elicitation("What is your name?", "name"),
                    );
                }
                if declared.sampling.is_some() {
                    inputs.insert("greeting".into(), ask_sampling("Generate a greeting"));
                }
                if declared.roots.is_some() {
                    inputs.insert("client_roots".into(), ask_roots());
                }
                if inputs.is_empty() {
                    done("The client declared none of elicitation, sampling, roots".into())
                } else {
                    more(inputs, None)
                }
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}

fn action(result: &ElicitResult) -> &'static str {
    match result.action {
        ElicitationAction::Accept => "accept",
        ElicitationAction::Decline => "decline",
        ElicitationAction::Cancel => "cancel",
        #[allow(unreachable_patterns)]
        _ => "unknown",
    }
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-session-conformance",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Conformance fixture of mcp-session: rmcp behind SessionLayer.")
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // rmcp checks Mcp-Param-* headers against the tool's schema.
        tools().into_iter().find(|tool| tool.name == name)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: tools(),
            ..Default::default()
        }
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(CacheScope::Public))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name.starts_with("test_input_required_result_") {
            return self.call_mrtr(&request, &cx.meta);
        }
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |name: &str| args.get(name).and_then(Value::as_str);
        let result = match request.name.as_ref() {
            "test_simple_text" => {
                CallToolResult::success(vec![text("This is a simple text response for testing.")])
            }
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")])
            }
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::Audio(
                AudioContent::new(WAV_EMPTY, "audio/wav"),
            )]),
            "test_embedded_resource" => {
                CallToolResult::success(vec![ContentBlock::resource(text_resource(
                    "test://embedded-resource",
                    "text/plain",
                    "This is an embedded resource content.",
                ))])
            }
            "test_multiple_content_types" => CallToolResult::success(vec![
                text("Multiple content types test:"),
                ContentBlock::image(PNG_1X1, "image/png"),
                ContentBlock::resource(text_resource(
                    "test://mixed-content-resource",
                    "application/json",
                    r#"{"test":"data","value":123}"#,
                )),
            ]),
            "test_tool_with_logging" => {
                for message in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    let _ = cx
                        .peer
                        .notify_logging_message(
                            LoggingMessageNotificationParam::new(
                                LoggingLevel::Info,
                                json!(message),
                            )
                            .with_logger("conformance"),
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                CallToolResult::success(vec![text("Logging test completed")])
            }
            "test_error_handling" => CallToolResult::error(vec![text(
                "This tool intentionally returns an error for testing",
            )]),
            "test_tool_with_progress" => {
                let token = cx.meta.get_progress_token();
                for (progress, message) in [(0.0, "Starting"), (50.0, "Halfway"), (100.0, "Done")] {
                    if let Some(token) = &token {
                        let _ = cx
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), progress)
                                    .with_total(100.0)
                                    .with_message(message),
                            )
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                CallToolResult::success(vec![text("Progress test completed")])
            }
            "test_sampling" => {
                let prompt = arg("prompt").unwrap_or("Hello");
                match cx.peer.create_message(sampling(prompt)).await {
                    Ok(reply) => {
                        let answer = reply
                            .message
                            .content
                            .first()
                            .and_then(|c| c.as_text())
                            .map(|t| t.text.clone())
                            .unwrap_or_else(|| "(no text)".into());
                        CallToolResult::success(vec![text(format!("LLM response: {answer}"))])
                    }
                    Err(e) => CallToolResult::error(vec![text(format!("sampling failed: {e}"))]),
                }
            }
            "test_elicitation" => {
                let message = arg("message").unwrap_or("Please provide your information");
                let params = elicitation(
                    message,
                    json!({
                        "username": { "type": "string", "description": "User's response" },
                        "email": { "type": "string", "description": "User's email address" }
                    }),
                    &["username", "email"],
                );
                match cx.peer.create_elicitation(params).await {
                    Ok(reply) => CallToolResult::success(vec![text(format!(
                        "User response: action={}, content={}",
                        action(&reply),
                        reply.content.map(|c| c.to_string()).unwrap_or_default()
                    ))]),
                    Err(e) => CallToolResult::error(vec![text(format!("elicitation failed: {e}"))]),
                }
            }
            "test_elicitation_sep1034_defaults" => {
                let params = elicitation(
                    "Every field has a default",
                    json!({
                        "name": { "type": "string", "description": "User's name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User's age", "default": 30 },
                        "score": { "type": "number", "description": "User's score", "default": 95.5 },
                        "status": {
                            "type": "string", "description": "User's status",
                            "enum": ["active", "inactive", "pending"], "default": "active"
                        },
                        "verified": { "type": "boolean", "description": "Verified?", "default": true }
                    }),
                    &[],
                );
                match cx.peer.create_elicitation(params).await {
                    Ok(reply) => CallToolResult::success(vec![text(format!(
                        "Elicitation completed: action={}",
                        action(&reply)
                    ))]),
                    Err(e) => CallToolResult::error(vec![text(format!("elicitation failed: {e}"))]),
                }
            }
            "test_elicitation_sep1330_enums" => {
                let titled = |prefix: &str, word: &str| {
                    json!([
                        { "const": format!("{prefix}1"), "title": format!("First {word}") },
                        { "const": format!("{prefix}2"), "title": format!("Second {word}") },
                        { "const": format!("{prefix}3"), "title": format!("Third {word}") }
                    ])
                };
                let params = elicitation(
                    "Pick from enums",
                    json!({
                        "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                        "titledSingle": { "type": "string", "oneOf": titled("value", "Option") },
                        "legacyEnum": {
                            "type": "string", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]
                        },
                        "untitledMulti": {
                            "type": "array",
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                        },
                        "titledMulti": { "type": "array", "items": { "anyOf": titled("value", "Choice") } }
                    }),
                    &[],
                );
                match cx.peer.create_elicitation(params).await {
                    Ok(reply) => CallToolResult::success(vec![text(format!(
                        "Enum elicitation completed: action={}",
                        action(&reply)
                    ))]),
                    Err(e) => CallToolResult::error(vec![text(format!("elicitation failed: {e}"))]),
                }
            }
            "json_schema_2020_12_tool" => CallToolResult::success(vec![text(format!(
                "Hello, {}!",
                arg("name").unwrap_or("world")
            ))]),
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                CallToolResult::success(vec![text("Reconnection test completed")])
            }
            "test_custom_header" => match arg("value") {
                Some(value) => CallToolResult::success(vec![text(value)]),
                None => return Err(ErrorData::invalid_params("`value` must be a string", None)),
            },
            "test_trigger_tool_change" => {
                self.list_changed(ListChange::Tools).await?;
                CallToolResult::success(vec![text("tools/list_changed sent")])
            }
            "test_trigger_prompt_change" => {
                self.list_changed(ListChange::Prompts).await?;
                CallToolResult::success(vec![text("prompts/list_changed sent")])
            }
            "test_missing_capability" => {
                let declared = cx.meta.client_capabilities().unwrap_or_default();
                if declared.sampling.is_none() {
                    return Err(ErrorData::missing_required_client_capability(
                        ClientCapabilities::builder().enable_sampling().build(),
                    ));
                }
                CallToolResult::success(vec![text("the sampling capability is declared")])
            }
            "test_streaming_elicitation" => {
                return Ok(InputRequiredResult::from_input_requests(needs([(
                    "streaming_elicitation",
                    ask_elicitation("Provide a value", "value"),
                )]))
                .into());
            }
            "test_logging_tool" => {
                if let Some(level) = cx.meta.log_level() {
                    let _ = cx
                        .peer
                        .notify_logging_message(
                            LoggingMessageNotificationParam::new(
                                level,
                                json!("the request asked for a log level"),
                            )
                            .with_logger("conformance"),
                        )
                        .await;
                }
                CallToolResult::success(vec![text("Logging tool completed")])
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}"),
                    None,
                ))
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult {
            resources: vec![
                Resource::new("test://static-text", "Static Text Resource")
                    .with_description("A text resource that never changes")
                    .with_mime_type("text/plain"),
                Resource::new("test://static-binary", "Static Binary Resource")
                    .with_description("A PNG image")
                    .with_mime_type("image/png"),
                Resource::new("test://watched-resource", "Watched Resource")
                    .with_description("A resource to subscribe to")
                    .with_mime_type("text/plain"),
            ],
            ..Default::default()
        }
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(CacheScope::Public))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult {
            resource_templates: vec![ResourceTemplate::new(
                "test://template/{id}/data",
                "Template Resource",
            )
            .with_description("Data for any id")
            .with_mime_type("application/json")],
            ..Default::default()
        }
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(CacheScope::Public))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let templated = uri
            .strip_prefix("test://template/")
            .and_then(|rest| rest.strip_suffix("/data"));
        let contents = match (uri, templated) {
            ("test://static-text", _) => text_resource(
                uri,
                "text/plain",
                "This is the content of the static text resource.",
            ),
            ("test://watched-resource", _) => {
                text_resource(uri, "text/plain", "The watched resource.")
            }
            ("test://static-binary", _) => ResourceContents::BlobResourceContents {
                uri: uri.into(),
                mime_type: Some("image/png".into()),
                blob: PNG_1X1.into(),
                meta: None,
            },
            (_, Some(id)) => text_resource(
                uri,
                "application/json",
                &json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                    .to_string(),
            ),
            _ => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {uri}"),
                    Some(json!({ "uri": uri })),
                ))
            }
        };
        Ok(ReadResourceResult::new(vec![contents])
            .with_ttl_ms(CACHE_TTL_MS)
            .with_cache_scope(CacheScope::Public)
            .into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let mut subscribed = self
            .state
            .subscribed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subscribed.insert(request.uri.to_string());
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let mut subscribed = self
            .state
            .subscribed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subscribed.remove(request.uri.as_str());
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let key = self.state.next_listener.fetch_add(1, Ordering::Relaxed);
        self.state
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, context.sink().clone());
        context.cancelled().await;
        self.state
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let plain = |name: &str, description: &str| Prompt::new(name, Some(description), None);
        Ok(ListPromptsResult {
            prompts: vec![
                plain("test_simple_prompt", "A prompt without arguments"),
                Prompt::new(
                    "test_prompt_with_arguments",
                    Some("A prompt with two arguments"),
                    Some(vec![
                        PromptArgument::new("arg1")
                            .with_description("First argument")
                            .with_required(true),
                        PromptArgument::new("arg2")
                            .with_description("Second argument")
                            .with_required(true),
                    ]),
                ),
                plain(
                    "test_prompt_with_embedded_resource",
                    "A prompt with an embedded resource",
                ),
                plain("test_prompt_with_image", "A prompt with an image"),
                plain(
                    "test_input_required_result_prompt",
                    "A prompt that needs an elicited input first (SEP-2322)",
                ),
            ],
            ..Default::default()
        }
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(CacheScope::Public))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let user = |body: String| PromptMessage::new_text(Role::User, body);
        let result = match request.name.as_str() {
            "test_simple_prompt" => {
                GetPromptResult::new(vec![user("This is a simple test prompt.".into())])
            }
            "test_prompt_with_arguments" => {
                let args = request.arguments.clone().unwrap_or_default();
                let get = |name: &str| {
                    args.get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                GetPromptResult::new(vec![user(format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    get("arg1"),
                    get("arg2")
                ))])
            }
            "test_prompt_with_embedded_resource" => GetPromptResult::new(vec![
                PromptMessage::new_resource(
                    Role::User,
                    "test://example-resource".into(),
                    Some("text/plain".into()),
                    Some("Embedded resource content for testing.".into()),
                    None,
                    None,
                    None,
                ),
                user("Please process the embedded resource above.".into()),
            ]),
            "test_prompt_with_image" => GetPromptResult::new(vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_1X1, "image/png")),
                user("Please analyze the image above.".into()),
            ]),
            "test_input_required_result_prompt" => {
                return Ok(
                    match answer(request.input_responses.as_ref(), "user_context") {
                        Some(a) => GetPromptResult::new(vec![user(format!(
                            "Prompt with elicited context: {}",
                            answer_text(a, "/context").unwrap_or("(none)")
                        ))])
                        .into(),
                        None => InputRequiredResult::from_input_requests(needs([(
                            "user_context",
                            ask_elicitation("What context should the prompt use?", "context"),
                        )]))
                        .into(),
                    },
                );
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt {other:?}"),
                    None,
                ))
            }
        };
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let candidates: &[&str] = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Resource(_), "id") => &["1", "2", "3"],
            (Reference::Prompt(_), "arg1" | "arg2") => &["paris", "park", "party"],
            _ => &[],
        };
        let typed = request.argument.value.as_str();
        let values = candidates
            .iter()
            .filter(|c| c.starts_with(typed))
            .map(|c| c.to_string())
            .collect();
        Ok(CompleteResult::new(
            CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?,
        ))
    }

    /// Accepted and not kept: `test_tool_with_logging` logs at `info`
    /// whatever the level, `test_logging_tool` at the level its request's
    /// `_meta` asks for.
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}
