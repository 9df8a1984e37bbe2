//! Requests as a client of the layer may send them, built from generated
//! input: any method, header values as raw bytes, a body in chunks that may
//! end, fail or stall, and the caller an auth layer would have inserted.
//! Shared by the property test (tests/proptest_layer.rs) and the fuzz
//! target (fuzz/fuzz_targets/layer.rs), so that both drive the layer alike.
//!
//! Include it with `#[path = "support/layer_requests.rs"] mod layer_requests;`
//! (from fuzz/: `#[path = "../../tests/support/layer_requests.rs"]`). It
//! needs only `bytes`, `http`, `http-body` and `mcp-session`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body::{Body, Frame, SizeHint};
use mcp_session::Identity;

/// What a body does once its chunks are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    Complete,
    /// An I/O error (a connection reset).
    Error,
    /// Never another frame: the reader's timeout has to fire.
    Stall,
}

/// A request body that arrives in chunks, then ends as [`BodyEnd`] says,
/// declaring its length up front or not.
pub struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    end: BodyEnd,
    hint: Option<u64>,
    done: bool,
}

impl ChunkedBody {
    /// `chunks` in order; with `declare_len`, their total as the exact size
    /// hint (what a `Content-Length` gives).
    pub fn new(chunks: impl IntoIterator<Item = Bytes>, end: BodyEnd, declare_len: bool) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().collect();
        let total = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkedBody {
            chunks,
            end,
            hint: declare_len.then_some(total),
            done: false,
        }
    }

    /// `body` cut after each of `sizes` bytes in turn (what is left is the
    /// last chunk).
    pub fn split(body: &[u8], sizes: &[usize], end: BodyEnd, declare_len: bool) -> Self {
        let mut chunks = Vec::new();
        let mut rest = body;
        for size in sizes {
            let n = (*size).min(rest.len());
            chunks.push(Bytes::copy_from_slice(&rest[..n]));
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            chunks.push(Bytes::copy_from_slice(rest));
        }
        Self::new(chunks, end, declare_len)
    }
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        match self.end {
            BodyEnd::Complete => Poll::Ready(None),
            BodyEnd::Error => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
            }
            // Never wakes: the layer's body timeout has to fire.
            BodyEnd::Stall => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.hint {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// `method /mcp` with `headers` in order (a value `http` refuses is left
/// out: no server would ever see it), `body`, and `caller` in the
/// extensions.
pub fn request(
    method: Method,
    headers: impl IntoIterator<Item = (HeaderName, Vec<u8>)>,
    body: ChunkedBody,
    caller: Option<&Identity>,
) -> Request<ChunkedBody> {
    let mut builder = Request::builder().method(method).uri("/mcp");
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            builder = builder.header(name, value);
        }
    }
    let mut request = builder.body(body).unwrap();
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller.clone());
    }
    request
}

/// The values of header `name` that `request` carries, in order.
pub fn values<B>(request: &Request<B>, name: &str) -> Vec<Vec<u8>> {
    request
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}
