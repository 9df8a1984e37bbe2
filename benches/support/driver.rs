//! What the in-process benches share, so that their variants are driven
//! alike: the callers, the runtime, criterion's settings, the request each
//! iteration builds, and the tower-sessions baseline.
//!
//! Include it with `#[path = "support/driver.rs"] mod driver;`.

#![allow(dead_code)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::Empty;
use mcp_session::roles::{RoleLookupError, RoleSource};
use mcp_session::{Config, Identity, IdentityLimitPolicy, Roles};
use tower::{service_fn, Layer, Service};
use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, SessionManagerLayer};

/// How many callers share the sessions: session `k` is `identities()[k % IDENTITIES]`'s.
pub const IDENTITIES: usize = 1_000;

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// `user-0` … `user-999`, roles `reader` and `writer`.
pub fn identities() -> Vec<Identity> {
    (0..IDENTITIES)
        .map(|i| {
            Identity::new(
                format!("user-{i}"),
                format!("User {i}"),
                ["reader", "writer"],
            )
        })
        .collect()
}

/// One core: a current-thread runtime, time and I/O on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Criterion without plots, 30 samples, the given warm-up and measurement
/// times.
pub fn criterion(warm_up: Duration, measurement: Duration) -> Criterion {
    Criterion::default()
        .without_plots()
        .sample_size(30)
        .warm_up_time(warm_up)
        .measurement_time(measurement)
}

/// A configuration whose caps are never in reach for `sessions` sessions
/// over [`IDENTITIES`] callers.
pub fn uncapped(sessions: u64) -> Config {
    Config::default()
        .max_sessions(sessions)
        .max_sessions_per_identity(u32::MAX)
        .identity_limit(IdentityLimitPolicy::Reject)
}

/// The request every variant builds per iteration: `POST`, one id header,
/// the caller's `Identity` in the extensions (as an auth layer leaves it).
pub fn request(name: &HeaderName, value: &HeaderValue, caller: &Identity) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::POST;
    request.headers_mut().insert(name, value.clone());
    request.extensions_mut().insert(caller.clone());
    request
}

/// The inner services' answer.
pub fn ok() -> Result<Response<Empty<Bytes>>, Infallible> {
    Ok(Response::new(Empty::new()))
}

/// Every identity's roles, from memory (what a directory would return).
pub struct Directory;

impl RoleSource for Directory {
    async fn roles(&self, _caller: &Identity) -> Result<Roles, RoleLookupError> {
        Ok(Roles::new(["reader", "writer"]))
    }
}

/// tower-sessions' records for `n` sessions like ours (the identity id,
/// name and roles, 30 min to live) in `store`; their `Cookie: id=…` values.
pub async fn tower_sessions_cookies<S: tower_sessions::SessionStore>(
    store: &S,
    identities: &[Identity],
    n: usize,
) -> Vec<HeaderValue> {
    let mut cookies = Vec::with_capacity(n);
    for k in 0..n {
        let identity = &identities[k % IDENTITIES];
        let mut record = Record {
            id: Id::default(),
            data: [
                ("identity_id".to_string(), identity.id().into()),
                ("identity_name".to_string(), identity.name().into()),
                ("roles".to_string(), serde_json::json!(["reader", "writer"])),
            ]
            .into_iter()
            .collect(),
            expiry_date: OffsetDateTime::now_utc() + TimeDuration::minutes(30),
        };
        store.create(&mut record).await.unwrap();
        cookies.push(HeaderValue::try_from(format!("id={}", record.id)).unwrap());
    }
    cookies
}

/// tower-sessions' sliding session over `store` (`Expiry::OnInactivity(30
/// min)`, `with_always_save(true)`: its only way to slide an expiry) around
/// an inner service that reads the owner from the session and compares it
/// with the caller, as the layer does for us.
pub fn tower_sessions_service<S: tower_sessions::SessionStore + Clone>(
    store: S,
) -> impl Service<Request<Empty<Bytes>>, Response = Response<Empty<Bytes>>, Error = Infallible> {
    let inner = service_fn(|r: Request<Empty<Bytes>>| async move {
        let session = r
            .extensions()
            .get::<tower_sessions::Session>()
            .cloned()
            .expect("tower-sessions session");
        let caller = r.extensions().get::<Identity>().expect("caller");
        let owner: Option<String> = session.get("identity_id").await.unwrap();
        assert_eq!(owner.as_deref(), Some(caller.id()));
        ok()
    });
    SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(TimeDuration::minutes(30)))
        .with_always_save(true)
        .layer(inner)
}
