//! [`ResponseFuture`]: the layer's response future, a small state machine
//! (no boxing on the path of a request with a session id).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::local::LocalSessions;
use super::rejection::Rejection;
use crate::log::log_warn;
use crate::observe::{RequestSpan, TimedTouch};
use crate::{Roles, Session, SessionStore, StoreError};

pub(crate) type BoxedResponse<ResB, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<ResB>>, E>> + Send>>;

pin_project! {
    /// Response future of [`SessionMiddleware`](super::SessionMiddleware).
    pub struct ResponseFuture<T, S, ReqB, ResB>
    where
        T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S: SessionStore,
    {
        #[pin]
        state: State<T, S, ReqB, ResB>,
        // Zero-sized without the `tracing` feature.
        span: RequestSpan,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<T, S, ReqB, ResB>
    where
        T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S: SessionStore,
    {
        // Waiting for a store that did not answer at once.
        Touching {
            touch: TimedTouch<S::TouchFuture>,
            pending: Option<(T, Request<ReqB>, Roles, Arc<LocalSessions>)>,
            retry_after: Duration,
        },
        // The inner service is answering; a session's event stream will
        // be governed by `local`.
        Calling { #[pin] call: T::Future, govern: Option<Govern> },
        // Rare paths (initialize, DELETE): several awaits, boxed.
        Boxed { fut: BoxedResponse<ResB, T::Error> },
        // Answered by the layer itself.
        Ready { response: Option<Response<ResponseBody<ResB>>> },
    }
}

impl<T, S, ReqB, ResB> ResponseFuture<T, S, ReqB, ResB>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    pub(crate) fn rejected(response: Response<ResponseBody<ResB>>) -> Self {
        Self::from_state(State::Ready {
            response: Some(response),
        })
    }

    /// The hot path: the session lookup, then the inner call.
    #[inline]
    pub(crate) fn touching(
        mut touch: TimedTouch<S::TouchFuture>,
        inner: T,
        request: Request<ReqB>,
        roles: Roles,
        local: &Arc<LocalSessions>,
        retry_after: Duration,
    ) -> Self {
        // An in-memory store has answered already: call the inner service
        // now rather than park the request in this future and move it out
        // again on the first poll. A store that has not answered keeps the
        // no-op waker only until that first poll, which registers the real
        // one (every future must wake the waker of its latest poll).
        let mut cx = Context::from_waker(Waker::noop());
        let state = match Pin::new(&mut touch).poll(&mut cx) {
            Poll::Ready(result) => {
                local.touched(touch.started());
                after_touch(result, inner, request, roles, local.clone(), retry_after)
            }
            Poll::Pending => State::Touching {
                touch,
                pending: Some((inner, request, roles, local.clone())),
                retry_after,
            },
        };
        Self::from_state(state)
    }

    pub(crate) fn calling(mut inner: T, request: Request<ReqB>) -> Self {
        let call = inner.call(request.map(RequestBody::inner));
        Self::from_state(State::Calling { call, govern: None })
    }

    pub(crate) fn boxed(
        fut: impl Future<Output = Result<Response<ResponseBody<ResB>>, T::Error>> + Send + 'static,
    ) -> Self {
        Self::from_state(State::Boxed { fut: Box::pin(fut) })
    }

    #[inline]
    fn from_state(state: State<T, S, ReqB, ResB>) -> Self {
        ResponseFuture {
            state,
            span: RequestSpan::default(),
        }
    }

    /// Polls inside `span`, which gets the answer's status.
    #[inline]
    pub(crate) fn in_span(mut self, span: RequestSpan) -> Self {
        self.span = span;
        self
    }
}

impl<T, S, ReqB, ResB> Future for ResponseFuture<T, S, ReqB, ResB>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    type Output = Result<Response<ResponseBody<ResB>>, T::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let span = this.span;
        let poll = span.in_scope(|| poll_state(this.state, cx));
        if let Poll::Ready(Ok(response)) = &poll {
            span.status(response.status());
        }
        poll
    }
}

#[inline]
#[allow(clippy::type_complexity)]
fn poll_state<T, S, ReqB, ResB>(
    mut state: Pin<&mut State<T, S, ReqB, ResB>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ResponseBody<ResB>>, T::Error>>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    loop {
        match state.as_mut().project() {
            StateProj::Touching {
                touch,
                pending,
                retry_after,
            } => {
                let result = ready!(Pin::new(&mut *touch).poll(cx));
                let (inner, request, roles, local) = pending
                    .take()
                    .expect("ResponseFuture polled after completion");
                local.touched(touch.started());
                let next = after_touch(result, inner, request, roles, local, *retry_after);
                state.set(next);
            }
            StateProj::Calling { call, govern } => {
                let response = ready!(call.poll(cx))?;
                let guard = match govern.take() {
                    Some(govern) if is_event_stream(&response) => {
                        govern.local.stream(&govern.session)
                    }
                    _ => None,
                };
                return Poll::Ready(Ok(match guard {
                    Some(guard) => response.map(|body| ResponseBody::guarded(body, guard)),
                    None => response.map(ResponseBody::inner),
                }));
            }
            StateProj::Boxed { fut } => return fut.as_mut().poll(cx),
            StateProj::Ready { response } => {
                return Poll::Ready(Ok(response
                    .take()
                    .expect("ResponseFuture polled after completion")))
            }
        }
    }
}

/// What a session's response needs if it turns out to be an event stream.
pub(crate) struct Govern {
    local: Arc<LocalSessions>,
    session: Session,
}

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// What follows the session lookup: the inner call with the session in the
/// request, or the layer's own answer.
#[inline]
fn after_touch<T, S, ReqB, ResB>(
    result: Result<Option<Session>, StoreError>,
    mut inner: T,
    mut request: Request<ReqB>,
    roles: Roles,
    local: Arc<LocalSessions>,
    retry_after: Duration,
) -> State<T, S, ReqB, ResB>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    match result {
        Ok(Some(session)) => {
            if local.closes_inner() {
                // Adopt mode: this process holds the inner server's session.
                local.hold(&session);
            }
            let govern = Some(Govern {
                local,
                session: session.clone(),
            });
            // One extension: the session carries the granted roles.
            request.extensions_mut().insert(session.with_granted(roles));
            State::Calling {
                call: inner.call(request.map(RequestBody::inner)),
                govern,
            }
        }
        Ok(None) => State::Ready {
            response: Some(Rejection::SessionNotFound.into_response(retry_after)),
        },
        Err(error) => {
            log_warn!(error; "session store failed on lookup; answering 503");
            State::Ready {
                response: Some(Rejection::from_store_error(&error).into_response(retry_after)),
            }
        }
    }
}
