//! Helpers shared by the hardening tests (`proptest_*`, `model_based`,
//! `concurrency`, `abuse_limits`) and the `layer` fuzz target. Include with
//! `mod hardening;` (from fuzz/: `#[path = "../../tests/hardening/mod.rs"]`).

#![allow(dead_code)]

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::Either;
use mcp_session::store::CreateOutcome;
use mcp_session::{Limits, Session, SessionId, SessionStore, StoreError, Timestamp};

/// Calls a [`CountingStore`] has seen, per operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub create: usize,
    pub get: usize,
    pub touch: usize,
    pub update: usize,
    pub delete: usize,
}

impl Calls {
    /// Calls that look a session up by an id the client sent.
    pub fn by_id(&self) -> usize {
        self.get + self.touch + self.update + self.delete
    }

    pub fn total(&self) -> usize {
        self.create + self.by_id()
    }
}

#[derive(Default)]
struct Counters {
    create: AtomicUsize,
    get: AtomicUsize,
    touch: AtomicUsize,
    update: AtomicUsize,
    delete: AtomicUsize,
}

/// Wraps any store: counts every call, records every id it is asked about,
/// and fails like a store that is down while `down` is set.
pub struct CountingStore<S> {
    inner: S,
    counters: Arc<Counters>,
    ids: Arc<Mutex<Vec<SessionId>>>,
    down: Arc<AtomicBool>,
    down_for: Arc<Mutex<Vec<&'static str>>>,
}

impl<S: Clone> Clone for CountingStore<S> {
    fn clone(&self) -> Self {
        CountingStore {
            inner: self.inner.clone(),
            counters: self.counters.clone(),
            ids: self.ids.clone(),
            down: self.down.clone(),
            down_for: self.down_for.clone(),
        }
    }
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            counters: Arc::default(),
            ids: Arc::default(),
            down: Arc::default(),
            down_for: Arc::default(),
        }
    }

    /// The wrapped store (calls on it are not counted).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn calls(&self) -> Calls {
        let c = &self.counters;
        Calls {
            create: c.create.load(Ordering::SeqCst),
            get: c.get.load(Ordering::SeqCst),
            touch: c.touch.load(Ordering::SeqCst),
            update: c.update.load(Ordering::SeqCst),
            delete: c.delete.load(Ordering::SeqCst),
        }
    }

    /// Every id passed to get/touch/update/delete/create so far.
    pub fn ids_seen(&self) -> Vec<SessionId> {
        self.ids.lock().unwrap().clone()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Fails only these operations (`"create"`, `"get"`, `"touch"`,
    /// `"update"`, `"delete"`) from now on; empty to heal.
    pub fn set_down_for(&self, ops: &[&'static str]) {
        *self.down_for.lock().unwrap() = ops.to_vec();
    }

    fn enter(
        &self,
        op: &'static str,
        counter: &AtomicUsize,
        id: &SessionId,
    ) -> Result<(), StoreError> {
        counter.fetch_add(1, Ordering::SeqCst);
        self.ids.lock().unwrap().push(id.clone());
        if self.down.load(Ordering::SeqCst) || self.down_for.lock().unwrap().contains(&op) {
            Err(StoreError::Unavailable("test store is down".into()))
        } else {
            Ok(())
        }
    }
}

type TouchResult = Result<Option<Session>, StoreError>;

impl<S: SessionStore> SessionStore for CountingStore<S> {
    type TouchFuture = Either<S::TouchFuture, Ready<TouchResult>>;

    async fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        self.enter("create", &self.counters.create, session.id())?;
        self.inner.create(session, limits).await
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.enter("get", &self.counters.get, id)?;
        self.inner.get(id, now).await
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture {
        match self.enter("touch", &self.counters.touch, id) {
            Ok(()) => Either::Left(self.inner.touch(id, owner, now)),
            Err(e) => Either::Right(ready(Err(e))),
        }
    }

    async fn update(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        self.enter("update", &self.counters.update, session.id())?;
        self.inner.update(session, now).await
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.enter("delete", &self.counters.delete, id)?;
        self.inner.delete(id).await
    }

    async fn delete_all_of(
        &self,
        identity_id: &str,
    ) -> Result<Vec<mcp_session::RemovedSession>, StoreError> {
        self.inner.delete_all_of(identity_id).await
    }

    async fn publish(&self, notice: &mcp_session::ReplicaNotice) -> Result<(), StoreError> {
        self.inner.publish(notice).await
    }

    fn subscribe(&self, listener: mcp_session::store::NoticeListener) -> bool {
        self.inner.subscribe(listener)
    }
}

/// Checks a layer-produced error answer: `Content-Type: application/json`
/// and a JSON-RPC 2.0 error object with an integer code and a message.
/// Returns the code.
pub fn check_jsonrpc_error(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<i64, String> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    if ct.as_deref() != Some(&b"application/json"[..]) {
        return Err(format!("{status}: content-type {ct:?}"));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("{status}: body is not JSON ({e}): {body:?}"))?;
    if value["jsonrpc"] != "2.0" || !value["id"].is_null() {
        return Err(format!("{status}: not a JSON-RPC error envelope: {value}"));
    }
    let code = value["error"]["code"]
        .as_i64()
        .ok_or_else(|| format!("{status}: no integer error.code: {value}"))?;
    let message = value["error"]["message"]
        .as_str()
        .ok_or_else(|| format!("{status}: no error.message: {value}"))?;
    if message.is_empty() {
        return Err(format!("{status}: empty error.message"));
    }
    if status == http::StatusCode::SERVICE_UNAVAILABLE && headers.get("retry-after").is_none() {
        return Err("503 without Retry-After".into());
    }
    Ok(code)
}
