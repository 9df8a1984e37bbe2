//! Body types the layer hands on: requests whose body it had to read, and
//! responses it answers itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::local::StreamGuard;

pin_project! {
    /// The request body the inner service receives: the original stream, or
    /// the bytes the layer already read (to detect `initialize`).
    #[project = RequestBodyProj]
    #[allow(missing_docs)] // fields are described on their variants

    pub enum RequestBody<B> {
        /// Passed through untouched: `body` is the original body.
        Streaming { #[pin] body: B },
        /// Read by the layer, replayed as one frame: `bytes` are those not yet handed on.
        Buffered { bytes: Option<Bytes> },
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn streaming(body: B) -> Self {
        RequestBody::Streaming { body }
    }

    pub(crate) fn buffered(bytes: Bytes) -> Self {
        RequestBody::Buffered {
            bytes: (!bytes.is_empty()).then_some(bytes),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            RequestBodyProj::Streaming { body } => body.poll_frame(cx),
            RequestBodyProj::Buffered { bytes } => {
                Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming { body } => body.is_end_stream(),
            RequestBody::Buffered { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming { body } => body.size_hint(),
            RequestBody::Buffered { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

pin_project! {
    /// The response body: the inner service's, or a JSON-RPC error the layer
    /// produced itself. No `Default` bound on the inner body is needed.
    #[project = ResponseBodyProj]
    #[allow(missing_docs)] // fields are described on their variants

    pub enum ResponseBody<B> {
        /// The inner service's `body`.
        Inner { #[pin] body: B },
        /// The inner service's event stream on a session: it ends when the
        /// session does (`guard` also keeps the session alive meanwhile).
        Stream { #[pin] body: B, guard: Box<StreamGuard> },
        /// A body the layer produced (a JSON-RPC error, or empty): `bytes` not yet sent.
        Layer { bytes: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody::Inner { body }
    }

    pub(crate) fn error(bytes: Bytes) -> Self {
        ResponseBody::Layer { bytes: Some(bytes) }
    }

    pub(crate) fn empty() -> Self {
        ResponseBody::Layer { bytes: None }
    }

    pub(crate) fn stream(body: B, guard: StreamGuard) -> Self {
        ResponseBody::Stream {
            body,
            guard: Box::new(guard),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            ResponseBodyProj::Inner { body } => body.poll_frame(cx),
            ResponseBodyProj::Stream { body, guard } => {
                if guard.poll_ended(cx).is_ready() {
                    return Poll::Ready(None); // the session ended: so does its stream
                }
                body.poll_frame(cx)
            }
            ResponseBodyProj::Layer { bytes } => {
                Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Inner { body } | ResponseBody::Stream { body, .. } => {
                body.is_end_stream()
            }
            ResponseBody::Layer { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Inner { body } => body.size_hint(),
            ResponseBody::Stream { .. } => SizeHint::default(),
            ResponseBody::Layer { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
