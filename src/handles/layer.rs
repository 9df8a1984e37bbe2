//! [`HandlesLayer`]: hands a [`Handles`] to everything behind it, through
//! the request extensions (where the rmcp `OwnHandles` extractor finds it).

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::Handles;

/// Inserts a clone of a [`Handles`] into every request's extensions (a
/// reference-count increment). Made by [`Handles::layer`].
pub struct HandlesLayer<T, S> {
    handles: Handles<T, S>,
}

impl<T, S> Clone for HandlesLayer<T, S> {
    fn clone(&self) -> Self {
        HandlesLayer {
            handles: self.handles.clone(),
        }
    }
}

impl<T, S> std::fmt::Debug for HandlesLayer<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlesLayer")
            .field("handles", &self.handles)
            .finish()
    }
}

impl<T, S> Handles<T, S> {
    /// A tower layer that puts these handles into every request's
    /// extensions.
    pub fn layer(&self) -> HandlesLayer<T, S> {
        HandlesLayer {
            handles: self.clone(),
        }
    }
}

impl<T, S, Inner> Layer<Inner> for HandlesLayer<T, S> {
    type Service = HandlesService<T, S, Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        HandlesService {
            handles: self.handles.clone(),
            inner,
        }
    }
}

/// The service of a [`HandlesLayer`].
pub struct HandlesService<T, S, Inner> {
    handles: Handles<T, S>,
    inner: Inner,
}

impl<T, S, Inner: Clone> Clone for HandlesService<T, S, Inner> {
    fn clone(&self) -> Self {
        HandlesService {
            handles: self.handles.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S, Inner: std::fmt::Debug> std::fmt::Debug for HandlesService<T, S, Inner> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlesService")
            .field("handles", &self.handles)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T, S, B, Inner> Service<http::Request<B>> for HandlesService<T, S, Inner>
where
    T: 'static,
    S: Send + Sync + 'static,
    Inner: Service<http::Request<B>>,
{
    type Response = Inner::Response;
    type Error = Inner::Error;
    type Future = Inner::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.handles.clone());
        self.inner.call(request)
    }
}
