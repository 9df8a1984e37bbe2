//! The replicas' notice channel over Redis pub/sub: one channel per key
//! prefix (`<prefix>notices`), one subscriber connection per store, started
//! when the first listener registers.
//!
//! What a listener can rely on:
//!
//! - `Connected` once the subscription is confirmed (and again after every
//!   reconnect): notices published while it was down are lost, so listeners
//!   drop what they cached;
//! - `Disconnected` as soon as the subscriber sees the connection fail, or a
//!   health-check `PING` go unanswered within the command timeout (checked
//!   every [`HEALTH_CHECK_EVERY`]); listeners then stop trusting their cache.
//!
//! On a Cluster, `PUBLISH` through any node reaches subscribers on every
//! node, so the subscriber connects to the first reachable seed node.
//!
//! A message is `<kind> <nonce> <payload>`. The nonce lets a publisher
//! wait for its own message to come back through the channel: Redis writes
//! a published message to every subscriber's connection in the same
//! `PUBLISH`, so once it is back here it is on its way to every replica.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::log::log_warn;
use crate::store::{NoticeListener, ReplicaNotice};

/// How often the subscriber checks that its connection still answers.
pub(crate) const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The subscriber side, shared by the store's clones.
pub(crate) struct Notices {
    channel: String,
    /// Where to subscribe; empty for a store built from a connection the
    /// user configured (no channel: see `RedisStore::from_connection_manager`).
    urls: Vec<String>,
    timeout: Duration,
    state: Arc<Mutex<Listeners>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Listeners {
    listeners: Vec<NoticeListener>,
    connected: bool,
    /// Publishers of this process waiting for their message's echo.
    echoes: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<()>>,
}

impl Listeners {
    fn tell(&self, notice: &ReplicaNotice) {
        for listener in &self.listeners {
            listener(notice);
        }
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl Notices {
    pub(crate) fn new(prefix: &str, urls: Vec<String>, timeout: Duration) -> Self {
        Notices {
            channel: format!("{prefix}notices"),
            urls,
            timeout,
            state: Arc::default(),
            task: Mutex::new(None),
        }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// A message for `notice` and, if this process listens on the channel,
    /// a receiver that fires when the message comes back through it.
    pub(crate) fn outgoing(
        &self,
        notice: &ReplicaNotice,
    ) -> Option<(String, Option<tokio::sync::oneshot::Receiver<()>>)> {
        let nonce = rand::random::<u64>();
        let message = encode(notice, nonce)?;
        let mut state = lock(&self.state);
        if !state.connected {
            return Some((message, None));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        state.echoes.insert(nonce, tx);
        Some((message, Some(rx)))
    }

    /// Stops waiting for an echo (the publish failed or timed out).
    pub(crate) fn forget_echo(&self, message: &str) {
        if let Some((_, nonce)) = decode(message.as_bytes()) {
            lock(&self.state).echoes.remove(&nonce);
        }
    }

    /// Registers a listener; see `SessionStore::subscribe`.
    pub(crate) fn subscribe(&self, listener: NoticeListener) -> bool {
        if self.urls.is_empty() {
            return false;
        }
        {
            let mut state = lock(&self.state);
            if state.connected {
                listener(&ReplicaNotice::Connected);
            }
            state.listeners.push(listener);
        }
        let mut task = lock(&self.task);
        if task.is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    *task = Some(runtime.spawn(subscriber(
                        self.urls.clone(),
                        self.channel.clone(),
                        self.timeout,
                        self.state.clone(),
                    )));
                }
                // No runtime to listen on: the listener never hears
                // `Connected`, so it never trusts what it caches (safe).
                Err(error) => log_warn!(error; "no tokio runtime: Redis notices are not received"),
            }
        }
        true
    }
}

/// Encodes a notice as a channel message; `None` for notices that are
/// local only (the channel's own state).
fn encode(notice: &ReplicaNotice, nonce: u64) -> Option<String> {
    match notice {
        ReplicaNotice::RolesChanged(identity_id) => {
            Some(format!("roles {nonce:016x} {identity_id}"))
        }
        ReplicaNotice::Connected | ReplicaNotice::Disconnected => None,
    }
}

/// Decodes a channel message; `None` for one this version does not know
/// (a newer replica's), which is ignored.
fn decode(payload: &[u8]) -> Option<(ReplicaNotice, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (kind, rest) = text.split_once(' ')?;
    let (nonce, identity_id) = rest.split_once(' ')?;
    let nonce = u64::from_str_radix(nonce, 16).ok()?;
    match kind {
        "roles" => Some((ReplicaNotice::RolesChanged(Arc::from(identity_id)), nonce)),
        _ => None,
    }
}

/// Subscribes, passes notices on, and reconnects, until the store is dropped.
async fn subscriber(
    urls: Vec<String>,
    channel: String,
    timeout: Duration,
    state: Arc<Mutex<Listeners>>,
) {
    let mut retry = RETRY_MIN;
    let mut next_url = 0;
    loop {
        let url = &urls[next_url % urls.len()];
        next_url += 1;
        match tokio::time::timeout(timeout, connect(url, &channel)).await {
            Ok(Ok(pubsub)) => {
                retry = RETRY_MIN;
                next_url -= 1; // stay with a node that worked
                let (mut sink, mut messages) = pubsub.split();
                set_connected(&state, true);
                let mut health = tokio::time::interval(HEALTH_CHECK_EVERY);
                health.tick().await; // the first tick is immediate
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Some((notice, nonce)) = decode(message.get_payload_bytes()) {
                                    let mut state = lock(&state);
                                    state.tell(&notice);
                                    if let Some(echo) = state.echoes.remove(&nonce) {
                                        let _ = echo.send(());
                                    }
                                }
                            }
                            None => break,
                        },
                        _ = health.tick() => {
                            let ping = tokio::time::timeout(timeout, sink.ping::<String>()).await;
                            if !matches!(ping, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                set_connected(&state, false);
                log_warn!("connection lost"; "Redis notice subscriber reconnecting");
            }
            Ok(Err(error)) => log_warn!(error; "Redis notice subscriber could not connect"),
            Err(_) => log_warn!("timed out"; "Redis notice subscriber could not connect"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn connect(url: &str, channel: &str) -> Result<::redis::aio::PubSub, ::redis::RedisError> {
    let client = ::redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

fn set_connected(state: &Mutex<Listeners>, connected: bool) {
    let mut state = lock(state);
    if state.connected != connected {
        state.connected = connected;
        // Whoever waits for an echo stops waiting: it will not come.
        state.echoes.clear();
        state.tell(if connected {
            &ReplicaNotice::Connected
        } else {
            &ReplicaNotice::Disconnected
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_unknown_ones_are_ignored() {
        let notice = ReplicaNotice::RolesChanged(Arc::from("alice with spaces:x"));
        let encoded = encode(&notice, 0xfeed).unwrap();
        assert_eq!(decode(encoded.as_bytes()), Some((notice, 0xfeed)));
        assert_eq!(decode(b"sessions-ended 00 x"), None);
        assert_eq!(decode(b"roles zz alice"), None);
        assert_eq!(decode(b"\xff"), None);
        assert_eq!(encode(&ReplicaNotice::Connected, 1), None);
    }
}
