//! What this process holds for live sessions, and how it lets go when one
//! ends: the inner server's own session (adopt mode) and the open streams
//! (both modes).
//!
//! Every layer keeps a registry of the sessions it serves here, keyed by
//! [`SessionId::digest`] and expiring with them (idle timeout, deadline).
//! It hears every end through a [`SessionManager::on_session_end`] hook —
//! local ends and, over a store with a notice channel, ends on other
//! replicas — and on an end, or when an entry expires here:
//!
//! - signals the session's open streams, which end their bodies;
//! - in adopt mode, sends `DELETE` with the session's id straight to the
//!   inner service (rmcp closes its session, its worker and its streams).
//!
//! [`SessionManager::on_session_end`]: crate::SessionManager::on_session_end

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use tokio::task::JoinHandle;
use tower_service::Service;

use super::body::RequestBody;
use super::classify::{MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::events::{EndReason, SessionEnded};
use crate::identity::GrantedRoles;
use crate::{
    Identity, Roles, Session, SessionError, SessionId, SessionManager, SessionStore, Timestamp,
};

/// How often an open stream refreshes its session, at most.
pub(crate) const STREAM_REFRESH_MAX: Duration = Duration::from_secs(60);
/// How often expired entries are swept, so that an expiry closes what it
/// must within about this long.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

type Closer = Box<dyn Fn(SessionId) + Send + Sync>;
type Refresh = Box<
    dyn Fn(
            SessionId,
            Identity,
        ) -> Pin<Box<dyn Future<Output = Result<Session, SessionError>> + Send>>
        + Send
        + Sync,
>;

/// The registry of one layer.
pub(crate) struct LocalSessions {
    held: Cache<u64, Arc<Held>>,
    closer: Arc<OnceLock<Closer>>,
    refresh: Refresh,
    now: Box<dyn Fn() -> Timestamp + Send + Sync>,
    idle: Duration,
    sweeper: OnceLock<()>,
    /// The manager's store name and metric handles, for the hot path's
    /// lookup timing (this registry is in every request's future anyway).
    store: &'static str,
    #[cfg(feature = "metrics")]
    metrics: Arc<crate::observe::metrics::Handles>,
}

/// One session held here.
pub(crate) struct Held {
    id: SessionId,
    /// When it expires at the latest (its deadline), on this host's clock.
    deadline: Instant,
    idle: Duration,
    streams: Mutex<Vec<Weak<EndSignal>>>,
}

impl Held {
    fn end_streams(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|p| p.into_inner()));
        for stream in streams.iter().filter_map(Weak::upgrade) {
            stream.end();
        }
    }
}

struct HeldExpiry;

impl Expiry<u64, Arc<Held>> for HeldExpiry {
    fn expire_after_create(&self, _: &u64, held: &Arc<Held>, now: Instant) -> Option<Duration> {
        Some(held.idle.min(held.deadline.saturating_duration_since(now)))
    }

    fn expire_after_read(
        &self,
        _: &u64,
        held: &Arc<Held>,
        now: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(held.idle.min(held.deadline.saturating_duration_since(now)))
    }
}

impl LocalSessions {
    /// The registry of a layer over `manager`, hooked to its ends.
    pub(crate) fn new<S: SessionStore>(manager: &SessionManager<S>) -> Arc<Self> {
        let closer: Arc<OnceLock<Closer>> = Arc::default();
        let on_expiry = closer.clone();
        let held = Cache::builder()
            .max_capacity(manager.config().limits.max_sessions)
            .expire_after(HeldExpiry)
            .eviction_listener(move |_, held: Arc<Held>, cause| {
                // Only an expiry ends the session here. Removed by `end`
                // (handled there), replaced, or dropped for room (the
                // session itself lives on): nothing to close.
                if cause == RemovalCause::Expired {
                    held.end_streams();
                    if let Some(close) = on_expiry.get() {
                        close(held.id.clone());
                    }
                }
            })
            .build();
        let refresher = manager.clone();
        let clock = manager.clone();
        let local = Arc::new(LocalSessions {
            held,
            closer,
            refresh: Box::new(move |id, caller| {
                let manager = refresher.clone();
                Box::pin(async move { manager.refresh(&id, &caller).await })
            }),
            now: Box::new(move || clock.now()),
            idle: manager.config().timeout,
            sweeper: OnceLock::new(),
            store: manager.store().name(),
            #[cfg(feature = "metrics")]
            metrics: manager.metric_handles(),
        });
        let hooked = Arc::downgrade(&local);
        manager.on_session_end(move |ended: &SessionEnded| {
            if let Some(local) = hooked.upgrade() {
                local.end(ended);
            }
        });
        local
    }

    /// Adopt mode: how to close a session of the inner service (set once,
    /// on the first request, when the service's request type is known). The
    /// `DELETE` goes to the first request's URI and `Host`: an inner server
    /// that checks them (rmcp's allowed hosts) accepts it like a client's.
    pub(crate) fn close_with<T, ReqB, ResB, B>(&self, inner: &T, first: &Request<B>)
    where
        T: Service<Request<RequestBody<ReqB>>, Response = http::Response<ResB>>
            + Clone
            + Send
            + 'static,
        T::Future: Send + 'static,
        ReqB: Send + 'static,
    {
        if self.closer.get().is_some() {
            return;
        }
        // A `Mutex` makes any service shareable (it is only cloned, rarely).
        let inner = Mutex::new(inner.clone());
        let uri = first.uri().clone();
        let host = first.headers().get(http::header::HOST).cloned();
        let _ = self.closer.set(Box::new(move |id: SessionId| {
            let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut request = Request::new(RequestBody::<ReqB>::held(Bytes::new()));
            *request.method_mut() = http::Method::DELETE;
            *request.uri_mut() = uri.clone();
            // The layer's own request: layers between it and the inner
            // server (a policy layer) see it as checked, with no roles.
            request
                .extensions_mut()
                .insert(GrantedRoles(Roles::default()));
            request.extensions_mut().insert(super::Sessionless);
            let headers = request.headers_mut();
            if let Some(host) = &host {
                headers.insert(http::header::HOST, host.clone());
            }
            headers.insert(MCP_SESSION_ID, id.to_header_value());
            headers.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-11-25"));
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .is_ok()
                    {
                        let _ = inner.call(request).await;
                    }
                });
            }
        }));
    }

    /// Closes the inner server's session now (adopt mode; nothing otherwise).
    pub(crate) fn close_inner(&self, id: &SessionId) {
        if let Some(close) = self.closer.get() {
            close(id.clone());
        }
    }

    /// Records that this process serves `session` (refreshing its entry).
    pub(crate) fn hold(self: &Arc<Self>, session: &Session) -> Arc<Held> {
        self.start_sweeper();
        let now = (self.now)();
        let remaining = session.deadline().saturating_since(now);
        self.held.get_with(session.id().digest(), || {
            Arc::new(Held {
                id: session.id().clone(),
                deadline: Instant::now() + remaining,
                idle: self.idle,
                streams: Mutex::default(),
            })
        })
    }

    /// A session ended (here or on another replica).
    fn end(&self, ended: &SessionEnded) {
        if let Some(held) = self.held.remove(&ended.digest()) {
            held.end_streams();
            self.close_inner(&held.id);
        } else if let (Some(id), EndReason::Refused | EndReason::Failed | EndReason::Abandoned) =
            (ended.id(), ended.reason())
        {
            // Never served (refused right after the inner server created
            // it): the inner server holds it all the same.
            self.close_inner(id);
        }
    }

    /// Forgets a session without closing anything: the caller tells the
    /// inner server itself (the layer's own `DELETE`, passed on).
    pub(crate) fn release(&self, id: &SessionId) {
        if let Some(held) = self.held.remove(&id.digest()) {
            held.end_streams();
        }
    }

    /// A session lookup of the hot path finished.
    #[inline]
    pub(crate) fn touched(&self, started: crate::observe::Started) {
        crate::observe::touch_done(
            #[cfg(feature = "metrics")]
            &self.metrics,
            self.store,
            started,
        );
    }

    /// Whether the inner server keeps sessions of its own (adopt mode).
    pub(crate) fn closes_inner(&self) -> bool {
        self.closer.get().is_some()
    }

    /// Governs a stream of `session`: it keeps the session alive while open
    /// and ends when the session does. `None` outside a tokio runtime.
    pub(crate) fn stream(self: &Arc<Self>, session: &Session) -> Option<StreamGuard> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let caller = session.identity().clone();
        let held = self.hold(session);
        let signal = Arc::new(EndSignal::default());
        held.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&signal));
        let every = (self.idle / 3).clamp(Duration::from_millis(100), STREAM_REFRESH_MAX);
        let refresher = Arc::downgrade(self);
        let deadline = tokio::time::Instant::from_std(held.deadline);
        let (id, ending) = (session.id().clone(), signal.clone());
        let task = runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = tick.tick() => {
                        let Some(local) = refresher.upgrade() else { break };
                        match (local.refresh)(id.clone(), caller.clone()).await {
                            Ok(session) => { local.hold(&session); }
                            Err(SessionError::NotFound) => break,
                            // The store is down: keep the stream; the next
                            // tick tries again (the deadline still holds).
                            Err(SessionError::Store(_)) => {}
                        }
                    }
                }
            }
            ending.end();
        });
        Some(StreamGuard { signal, task })
    }

    /// Expired entries are only noticed when the cache does maintenance:
    /// a task does it regularly, so an expiry closes what it must promptly.
    fn start_sweeper(self: &Arc<Self>) {
        self.sweeper.get_or_init(|| {
            let local = Arc::downgrade(self);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut tick = tokio::time::interval(SWEEP_EVERY);
                    loop {
                        tick.tick().await;
                        let Some(local) = local.upgrade() else { break };
                        local.held.run_pending_tasks();
                    }
                });
            }
        });
    }
}

/// Set when a stream's session ends; wakes the stream's body.
#[derive(Default)]
pub(crate) struct EndSignal {
    ended: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl EndSignal {
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }
}

/// Held by a governed response body: whether its session ended, and the
/// task refreshing the session (aborted when the body is dropped).
pub(crate) struct StreamGuard {
    signal: Arc<EndSignal>,
    task: JoinHandle<()>,
}

impl StreamGuard {
    /// Whether the session ended; if not, `cx` is woken when it does.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.ended.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.signal.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Ended between the check and the registration?
        if self.signal.ended.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("ended", &self.signal.ended.load(Ordering::Relaxed))
            .finish()
    }
}
