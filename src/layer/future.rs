//! [`ResponseFuture`]: the layer's response future, a small state machine
//! (no boxing on the path of a request with a session id).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::rejection::Rejection;
use crate::log::log_warn;
use crate::SessionStore;

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
    }
}

pin_project! {
    #[project = StateProj]
    enum State<T, S, ReqB, ResB>
    where
        T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S: SessionStore,
    {
        // Looking up and sliding the session (the hot path).
        Touching {
            #[pin]
            touch: S::TouchFuture,
            pending: Option<(T, Request<ReqB>)>,
            retry_after: Duration,
        },
        // The inner service is answering.
        Calling { #[pin] call: T::Future },
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

    pub(crate) fn touching(
        touch: S::TouchFuture,
        inner: T,
        request: Request<ReqB>,
        retry_after: Duration,
    ) -> Self {
        Self::from_state(State::Touching {
            touch,
            pending: Some((inner, request)),
            retry_after,
        })
    }

    pub(crate) fn calling(mut inner: T, request: Request<ReqB>) -> Self {
        let call = inner.call(request.map(RequestBody::streaming));
        Self::from_state(State::Calling { call })
    }

    pub(crate) fn boxed(
        fut: impl Future<Output = Result<Response<ResponseBody<ResB>>, T::Error>> + Send + 'static,
    ) -> Self {
        Self::from_state(State::Boxed { fut: Box::pin(fut) })
    }

    fn from_state(state: State<T, S, ReqB, ResB>) -> Self {
        ResponseFuture { state }
    }
}

impl<T, S, ReqB, ResB> Future for ResponseFuture<T, S, ReqB, ResB>
where
    T: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S: SessionStore,
{
    type Output = Result<Response<ResponseBody<ResB>>, T::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProj::Touching {
                    touch,
                    pending,
                    retry_after,
                } => {
                    let result = ready!(touch.poll(cx));
                    let retry_after = *retry_after;
                    let (mut inner, mut request) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = match result {
                        Ok(Some(session)) => {
                            let extensions = request.extensions_mut();
                            extensions.insert(session.roles().clone());
                            extensions.insert(session);
                            State::Calling {
                                call: inner.call(request.map(RequestBody::streaming)),
                            }
                        }
                        Ok(None) => State::Ready {
                            response: Some(Rejection::SessionNotFound.into_response(retry_after)),
                        },
                        Err(error) => {
                            log_warn!(error; "session store failed on lookup; answering 503");
                            State::Ready {
                                response: Some(
                                    Rejection::from_store_error(&error).into_response(retry_after),
                                ),
                            }
                        }
                    };
                    state.set(next);
                }
                StateProj::Calling { call } => {
                    let response = ready!(call.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
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
}
