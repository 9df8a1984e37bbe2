//! The one body type the layer hands on, both ways: the original body passed
//! through, the same body tied to a session's life (event streams), or bytes
//! the layer holds itself (a request body it read, an error it answers).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::local::StreamGuard;

/// The request body the inner service receives: the original stream, or the
/// bytes the layer already read (to detect `initialize`, or to apply a
/// policy).
pub type RequestBody<B> = LayerBody<B>;

/// The response body the layer returns: the inner service's, or a JSON-RPC
/// error the layer produced itself. No `Default` bound on the inner body is
/// needed.
pub type ResponseBody<B> = LayerBody<B>;

pin_project! {
    /// A body passed through the layer (see [`RequestBody`] and
    /// [`ResponseBody`]). It yields the same frames, data and errors as the
    /// body it wraps; only its origin differs, and that stays private so
    /// that new origins are not a breaking change.
    pub struct LayerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // Passed through untouched.
        Inner { #[pin] body: B },
        // The inner service's event stream on a session: it ends when the
        // session does (`guard` also keeps the session alive meanwhile).
        Guarded { #[pin] body: B, guard: Box<StreamGuard> },
        // Bytes the layer holds (read from the request, or its own answer),
        // replayed as one frame: `None` once handed on, or if empty.
        Held { bytes: Option<Bytes> },
    }
}

impl<B> LayerBody<B> {
    /// The original body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        LayerBody {
            kind: Kind::Inner { body },
        }
    }

    /// Bytes the layer holds, sent as one frame (none if empty).
    pub(crate) fn held(bytes: Bytes) -> Self {
        LayerBody {
            kind: Kind::Held {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }

    /// A body that ends as soon as `guard`'s session does.
    pub(crate) fn guarded(body: B, guard: StreamGuard) -> Self {
        LayerBody {
            kind: Kind::Guarded {
                body,
                guard: Box::new(guard),
            },
        }
    }

    /// An empty body the layer answers with.
    pub(crate) fn empty() -> Self {
        Self::held(Bytes::new())
    }
}

impl<B: Body<Data = Bytes>> Body for LayerBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Guarded { body, guard } => {
                if guard.poll_ended(cx).is_ready() {
                    return Poll::Ready(None); // the session ended: so does its stream
                }
                body.poll_frame(cx)
            }
            KindProj::Held { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } | Kind::Guarded { body, .. } => body.is_end_stream(),
            Kind::Held { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            // It may end early, when the session does.
            Kind::Guarded { .. } => SizeHint::default(),
            Kind::Held { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn held_bytes_are_one_frame_with_an_exact_size() {
        let body: LayerBody<http_body_util::Empty<Bytes>> = LayerBody::held(Bytes::from("abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, Bytes::from("abc"));
    }

    #[tokio::test]
    async fn empty_held_body_is_at_its_end() {
        let body: LayerBody<http_body_util::Empty<Bytes>> = LayerBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = LayerBody::inner(http_body_util::Full::new(Bytes::from("xyz")));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from("xyz"));
    }
}
