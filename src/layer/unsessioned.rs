//! The paths that read a body or take several awaits (so boxed): POSTs
//! without a session id in either era (`initialize`, `server/discover`,
//! sessionless requests), and `DELETE`.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::classify::{classify_body, BodyVerdict, Era, MCP_SESSION_ID};
use super::local::LocalSessions;
use super::rejection::Rejection;
use super::{insert_caller, IdMode, Settings};
use crate::events::EndReason;
use crate::log::{log_error, log_warn};
use crate::observe::RequestSpan;
use crate::{Identity, SessionError, SessionId, SessionManager, SessionStore, StoreError};

type Answer<ResB, E> = Result<Response<ResponseBody<ResB>>, E>;

/// A POST without a session id: read its body (capped, time-limited) to see
/// what it is. An `initialize` is a handshake in either era, whatever the
/// version headers say: an inner server (rmcp) creates a session for it, so
/// it must be bound, counted and capped like any other.
#[allow(clippy::too_many_arguments)] // the layer's parts, handed over once per rare request
pub(crate) async fn inspect_body<T, S, ReqB, ResB>(
    inner: T,
    manager: SessionManager<S>,
    local: Arc<LocalSessions>,
    settings: Settings,
    era: Era,
    identity: Identity,
    request: Request<ReqB>,
) -> Answer<ResB, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Send + 'static,
    S: SessionStore,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ResB: Send + 'static,
{
    let retry_after = settings.retry_after;
    let reject = |r: Rejection| Ok(r.into_response(retry_after));
    let max = match era {
        Era::Handshake => settings.max_initialize_body,
        Era::Sessionless => settings.max_sessionless_body,
    };
    let (parts, body) = request.into_parts();
    let bytes = match read_capped(body, max, settings.initialize_body_timeout).await {
        Ok(bytes) => bytes,
        Err(rejection) => return reject(rejection),
    };
    let verdict = match classify_body(&bytes) {
        Ok(verdict) => verdict,
        Err(rejection) => return reject(rejection),
    };
    // The inner service gets the very bytes the layer read.
    let mut request = Request::from_parts(parts, RequestBody::held(bytes));
    if verdict == BodyVerdict::Initialize {
        RequestSpan::current().method("initialize");
    }
    match (verdict, era) {
        (BodyVerdict::NeedsSession | BodyVerdict::BatchWithInitialize, Era::Handshake) => {
            reject(Rejection::MissingSessionId)
        }
        (BodyVerdict::BatchWithInitialize, Era::Sessionless) => {
            reject(Rejection::InitializeInBatch)
        }
        (BodyVerdict::NeedsSession, _) => {
            insert_caller(&mut request, identity);
            call(inner, request).await
        }
        (BodyVerdict::Discover, _) => {
            RequestSpan::current().method("server/discover");
            insert_caller(&mut request, identity);
            call(inner, request).await
        }
        (BodyVerdict::Initialize, _) => match settings.id_mode {
            IdMode::Mint => initialize_minting(inner, manager, settings, identity, request).await,
            IdMode::Adopt => {
                initialize_adopting(inner, manager, local, settings, identity, request).await
            }
        },
    }
}

/// Mint mode: create the session first (caps are checked before the inner
/// server does any work), hand it to the inner service, and put its id on a
/// 2xx answer. Anything else deletes it again: no orphan session.
async fn initialize_minting<T, S, ReqB, ResB>(
    mut inner: T,
    manager: SessionManager<S>,
    settings: Settings,
    identity: Identity,
    mut request: Request<RequestBody<ReqB>>,
) -> Answer<ResB, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    let session = match manager.create(&identity).await {
        Ok(session) => session,
        Err(error) => {
            log_warn!(error; "could not create a session for {}", identity.id());
            return Ok(Rejection::from_session_error(&error).into_response(settings.retry_after));
        }
    };
    let mut guard = OrphanGuard::new(manager, session.id().clone());
    let header = session.id().to_header_value();
    let extensions = request.extensions_mut();
    extensions.insert(identity);
    extensions.insert(session);

    let mut response = inner.call(request).await?;
    if !response.status().is_success() {
        guard.reason = EndReason::Refused;
        return Ok(response.map(ResponseBody::inner)); // guard ends the session
    }
    if response.headers().contains_key(MCP_SESSION_ID) {
        // The client would get the layer's id, which the inner server does
        // not know: every request after this one would fail. Fail now, loudly.
        log_error!(
            "the inner MCP server minted its own session id in mint mode; \
             use IdMode::Adopt or make it stateless"
        );
        guard.reason = EndReason::Failed;
        return Ok(Rejection::UpstreamMintsSessions.into_response(settings.retry_after));
    }
    guard.disarm();
    response.headers_mut().insert(MCP_SESSION_ID, header);
    Ok(response.map(ResponseBody::inner))
}

/// Adopt mode: the inner server mints the id; bind it to the caller.
///
/// The inner call and the adoption run on a task of their own, so that they
/// finish even if the client leaves meanwhile: the inner server's session
/// is then closed again (`Abandoned`), not left to its keep-alive.
async fn initialize_adopting<T, S, ReqB, ResB>(
    inner: T,
    manager: SessionManager<S>,
    local: Arc<LocalSessions>,
    settings: Settings,
    identity: Identity,
    mut request: Request<RequestBody<ReqB>>,
) -> Answer<ResB, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Send + 'static,
    S: SessionStore,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    insert_caller(&mut request, identity.clone());
    let retry_after = settings.retry_after;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to run it on (not under a server): inline.
        return adopt(inner, &manager, &local, retry_after, &identity, request)
            .await
            .0;
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    runtime.spawn(RequestSpan::current().instrument(async move {
        let (result, adopted) =
            adopt(inner, &manager, &local, retry_after, &identity, request).await;
        if answer.send(result).is_err() {
            if let Some(id) = adopted {
                if let Err(SessionError::Store(error)) =
                    manager.end(&id, EndReason::Abandoned).await
                {
                    log_warn!(error; "could not end abandoned session {}; it will expire", id);
                }
            }
        }
    }));
    match answered.await {
        Ok(result) => result,
        // The task panicked (in the inner service): no answer to pass on.
        Err(_) => Ok(Rejection::UpstreamFailed.into_response(retry_after)),
    }
}

/// Calls the inner service with an `initialize` and binds the session it
/// creates to `identity`; returns the answer and the id it adopted.
async fn adopt<T, S, ReqB, ResB>(
    inner: T,
    manager: &SessionManager<S>,
    local: &Arc<LocalSessions>,
    retry_after: std::time::Duration,
    identity: &Identity,
    request: Request<RequestBody<ReqB>>,
) -> (Answer<ResB, T::Error>, Option<SessionId>)
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    let response = match call_raw(inner, request).await {
        Ok(response) => response,
        Err(error) => return (Err(error), None),
    };
    if !response.status().is_success() {
        return (Ok(response.map(ResponseBody::inner)), None);
    }
    let Some(value) = response.headers().get(MCP_SESSION_ID) else {
        // The client would hold no session, and the layer nothing to bind:
        // a stateless inner server belongs behind mint mode.
        log_error!(
            "the inner MCP server answered initialize without a session id in adopt mode; \
             use IdMode::Mint or let it mint sessions"
        );
        return (
            Ok(Rejection::UpstreamIsStateless.into_response(retry_after)),
            None,
        );
    };
    let id = match SessionId::parse_adopted_bytes(value.as_bytes()) {
        Ok(id) => id,
        Err(error) => {
            log_warn!(error; "inner server minted a session id that cannot be adopted");
            let answer = Rejection::UnusableUpstreamSessionId.into_response(retry_after);
            return (Ok(answer), None);
        }
    };
    match manager.create_with_id(id.clone(), identity).await {
        Ok((session, _)) => {
            local.hold(&session);
            (Ok(response.map(ResponseBody::inner)), Some(id))
        }
        Err(error) => {
            log_warn!(error; "could not adopt a session for {}", identity.id());
            // The inner server made a session the layer will not serve:
            // close it (an id it reused belongs to a live session: keep that).
            let reason = match &error {
                SessionError::Store(StoreError::AlreadyExists) => None,
                SessionError::Store(StoreError::AtCapacity(_)) => Some(EndReason::Refused),
                _ => Some(EndReason::Failed),
            };
            if let Some(reason) = reason {
                manager.report_end(&id, reason);
            }
            let answer = Rejection::from_session_error(&error).into_response(retry_after);
            (Ok(answer), None)
        }
    }
}

/// `DELETE` with a session id: terminate it if it is the caller's, and answer
/// `204`. In adopt mode the inner server is told too (so it frees its side);
/// its error answers are passed on, but its success is reported as `204`,
/// because clients such as the Python SDK accept only 200 or 204 while rmcp
/// answers 202.
pub(crate) async fn terminate<T, S, ReqB, ResB>(
    inner: T,
    manager: SessionManager<S>,
    local: Arc<LocalSessions>,
    settings: Settings,
    id: SessionId,
    identity: Identity,
    mut request: Request<ReqB>,
) -> Answer<ResB, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    let deleted = async {
        let session = manager.get(&id, &identity).await?;
        // The caller's own: this DELETE goes on to the inner server below,
        // so the end hook has nothing left to close here.
        local.release(&id);
        match manager
            .end_timed(&id, EndReason::Deleted, Some(session.created_at()))
            .await?
        {
            true => Ok(()),
            false => Err(SessionError::NotFound),
        }
    };
    match deleted.await {
        Ok(()) => {
            if settings.id_mode == IdMode::Adopt {
                insert_caller(&mut request, identity);
                let response = call_raw(inner, request.map(RequestBody::inner)).await?;
                if !response.status().is_success() {
                    return Ok(response.map(ResponseBody::inner));
                }
            }
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        Err(SessionError::NotFound) => {
            Ok(Rejection::SessionNotFound.into_response(settings.retry_after))
        }
        Err(error) => {
            log_warn!(error; "session store failed deleting {}", id);
            Ok(Rejection::from_session_error(&error).into_response(settings.retry_after))
        }
    }
}

async fn call<T, ReqB, ResB>(
    inner: T,
    request: Request<RequestBody<ReqB>>,
) -> Answer<ResB, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
{
    Ok(call_raw(inner, request).await?.map(ResponseBody::inner))
}

async fn call_raw<T, ReqB>(
    mut inner: T,
    request: Request<RequestBody<ReqB>>,
) -> Result<T::Response, T::Error>
where
    T: Service<Request<RequestBody<ReqB>>>,
{
    inner.call(request).await
}

/// Reads at most `max` bytes of body within `timeout`. A body that comes
/// in one frame (the usual case for small bodies) is kept as it is, without
/// a copy; a body in several frames is gathered into one buffer that grows
/// with what has arrived (not sized from the declared length: a client
/// could declare the cap, send two bytes and stall, holding the whole cap
/// for the timeout at no cost to itself).
async fn read_capped<B: Body<Data = Bytes>>(
    body: B,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, Rejection> {
    if body.size_hint().lower() > max as u64 {
        return Err(Rejection::BodyTooLarge(max));
    }
    let collect = async {
        let mut body = pin!(body);
        let mut first = Bytes::new();
        let mut gathered: Option<BytesMut> = None;
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Rejection::BodyUnreadable)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            len += data.len();
            if len > max {
                return Err(Rejection::BodyTooLarge(max));
            }
            match &mut gathered {
                Some(buf) => buf.extend_from_slice(&data),
                None if first.is_empty() => first = data,
                None => {
                    let mut buf = BytesMut::with_capacity(len);
                    buf.extend_from_slice(&first);
                    buf.extend_from_slice(&data);
                    gathered = Some(buf);
                }
            }
        }
        Ok(gathered.map_or(first, BytesMut::freeze))
    };
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| Rejection::BodyTimeout)?
}

/// Ends a just-created session unless disarmed: covers an inner error, a
/// non-2xx answer (`Refused`), and the request future being dropped mid-way
/// (client gone: `Abandoned`), so no orphan session is left behind.
struct OrphanGuard<S: SessionStore> {
    manager: SessionManager<S>,
    id: Option<SessionId>,
    reason: EndReason,
}

impl<S: SessionStore> OrphanGuard<S> {
    fn new(manager: SessionManager<S>, id: SessionId) -> Self {
        OrphanGuard {
            manager,
            id: Some(id),
            reason: EndReason::Abandoned,
        }
    }

    fn disarm(&mut self) {
        self.id = None;
    }
}

impl<S: SessionStore> Drop for OrphanGuard<S> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let (manager, reason) = (self.manager.clone(), self.reason);
        let delete = async move {
            if let Err(SessionError::Store(error)) = manager.end(&id, reason).await {
                log_warn!(error; "could not delete unused session {}; it will expire", id);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(delete);
            }
            // No runtime (should not happen under a server): it expires.
            Err(_) => drop(delete),
        }
    }
}
