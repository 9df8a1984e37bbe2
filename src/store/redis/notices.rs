//! The replicas' notice channel over Redis pub/sub: one channel per key
//! prefix (`<prefix>notices`), one subscriber connection per store, started
//! when the first listener registers.
//!
//! # Delivery, and what `publish` returning `Ok` means
//!
//! Every subscriber that applies a notice answers with an acknowledgement
//! on the same channel. The publisher counts the subscribers first (the
//! `PUBLISH` reply on a standalone server; `PUBSUB NUMSUB` summed over the
//! seed nodes on a Cluster, where a `PUBLISH` reply counts only the node's
//! own subscribers while the message reaches every node), then waits,
//! within the command timeout, until that many have acknowledged. So when
//! `publish` returns `Ok`, every replica subscribed on a seed node has
//! applied the notice: a request that any of them starts afterwards sees
//! its effect. An `Err` means some replica may not have applied it yet.
//!
//! A replica whose subscription is down cannot acknowledge and is not
//! counted; it does not trust its cache while down, and drops it when it
//! reconnects:
//!
//! - `Connected` once the subscription is confirmed (and again after every
//!   reconnect): notices published while it was down are lost, so listeners
//!   drop what they cached;
//! - `Disconnected` as soon as the subscriber sees the connection fail, or a
//!   health-check `PING` go unanswered within the command timeout (checked
//!   every [`HEALTH_CHECK_EVERY`]); listeners then stop trusting their cache.
//!
//! A message is `<kind> <nonce hex> <payload>`: `roles <nonce> <identity
//! id>`, `ended <nonce> <digest hex>:<reason>`, `ack <nonce> -`. Kinds this version does not know are ignored, so
//! a newer replica can add some during a rolling upgrade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::RedisError;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log::log_warn;
use crate::store::{NoticeListener, ReplicaNotice};
use crate::StoreError;

/// How often the subscriber checks that its connection still answers.
pub(crate) const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The channel of one store (shared by its clones).
pub(crate) struct Notices {
    channel: String,
    /// The seed nodes: where to subscribe (the first reachable) and count
    /// subscribers; empty for a store built from a connection the user
    /// configured.
    urls: Vec<String>,
    timeout: Duration,
    state: Arc<Mutex<State>>,
    /// One plain connection per seed node, opened on first use.
    publishers: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    listeners: Vec<NoticeListener>,
    connected: bool,
    /// Acknowledgements counted for notices this process published.
    acks: HashMap<u64, watch::Sender<usize>>,
}

impl State {
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

/// A message on the channel.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    Notice(ReplicaNotice, u64),
    Ack(u64),
}

impl Notices {
    pub(crate) fn new(prefix: &str, urls: Vec<String>, timeout: Duration) -> Self {
        let publishers = tokio::sync::Mutex::new(urls.iter().map(|_| None).collect());
        Notices {
            channel: format!("{prefix}notices"),
            urls,
            timeout,
            state: Arc::default(),
            publishers,
            task: Mutex::new(None),
        }
    }

    /// The channel's name.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether this store has a channel of its own.
    pub(crate) fn has_channel(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Registers a listener; see `SessionStore::subscribe`.
    pub(crate) fn subscribe(&self, listener: NoticeListener) -> bool {
        if !self.has_channel() {
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

    /// Publishes `notice` and waits until every subscriber counted has
    /// acknowledged it (see the module docs). Local-only notices are not
    /// sent.
    pub(crate) async fn publish(&self, notice: &ReplicaNotice) -> Result<(), StoreError> {
        let nonce = nonce();
        let Some(message) = encode(&Message::Notice(notice.clone(), nonce)) else {
            return Ok(());
        };
        let (acked, mut acks) = watch::channel(0usize);
        lock(&self.state).acks.insert(nonce, acked);
        let result = tokio::time::timeout(self.timeout, async {
            let expected = self.send(&message).await?;
            acks.wait_for(|&count| count >= expected)
                .await
                .map(drop)
                .map_err(|_| StoreError::Unavailable("notice channel closed".into()))
        })
        .await
        .unwrap_or(Err(StoreError::Timeout(self.timeout)));
        lock(&self.state).acks.remove(&nonce);
        result
    }

    /// Counts the subscribers (on a Cluster), then `PUBLISH`es through the
    /// first reachable seed node; returns how many acknowledgements to
    /// expect.
    async fn send(&self, message: &str) -> Result<usize, StoreError> {
        let mut publishers = self.publishers.lock().await;
        let mut counted = 0;
        if self.urls.len() > 1 {
            for (url, slot) in self.urls.iter().zip(publishers.iter_mut()) {
                // A node we cannot reach is skipped: its subscribers (if
                // any) are not counted, so we do not wait for them.
                let Some(conn) = connected(slot, url).await else {
                    continue;
                };
                match numsub(conn, &self.channel).await {
                    Ok(n) => counted += n,
                    Err(_) => *slot = None,
                }
            }
        }
        let mut last = None;
        for (url, slot) in self.urls.iter().zip(publishers.iter_mut()) {
            let Some(conn) = connected(slot, url).await else {
                continue;
            };
            match publish(conn, &self.channel, message).await {
                Ok(reached) => return Ok(counted.max(reached)),
                Err(error) => {
                    *slot = None; // reconnect next time
                    last = Some(error);
                }
            }
        }
        Err(match last {
            Some(error) => StoreError::Unavailable(Box::new(error)),
            None => StoreError::Unavailable("no seed node reachable for notices".into()),
        })
    }
}

/// The connection in `slot`, opened now if need be; `None` if unreachable.
async fn connected<'a>(
    slot: &'a mut Option<MultiplexedConnection>,
    url: &str,
) -> Option<&'a mut MultiplexedConnection> {
    if slot.is_none() {
        *slot = connect_plain(url).await.ok();
    }
    slot.as_mut()
}

async fn connect_plain(url: &str) -> Result<MultiplexedConnection, RedisError> {
    ::redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

async fn publish(
    conn: &mut MultiplexedConnection,
    channel: &str,
    message: &str,
) -> Result<usize, RedisError> {
    let reached: i64 = ::redis::cmd("PUBLISH")
        .arg(channel)
        .arg(message)
        .query_async(conn)
        .await?;
    Ok(usize::try_from(reached).unwrap_or(0))
}

/// Subscribers of `channel` on the node `conn` is connected to.
async fn numsub(conn: &mut MultiplexedConnection, channel: &str) -> Result<usize, RedisError> {
    let (_, count): (String, i64) = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// A notice as a message, for a store that has no channel of its own (no
/// acknowledgement is awaited).
pub(crate) fn best_effort(notice: &ReplicaNotice) -> Option<String> {
    encode(&Message::Notice(notice.clone(), nonce()))
}

/// Tells a publisher's acknowledgements apart from another's: unique, not
/// secret (a replica that can publish on the channel is trusted anyway).
fn nonce() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let distinct = getrandom::u64().unwrap_or(0);
    distinct ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn encode(message: &Message) -> Option<String> {
    match message {
        Message::Notice(ReplicaNotice::RolesChanged(identity_id), nonce) => {
            Some(format!("roles {nonce:016x} {identity_id}"))
        }
        Message::Notice(ReplicaNotice::SessionEnded { digest, reason }, nonce) => {
            Some(format!("ended {nonce:016x} {digest:016x}:{reason}"))
        }
        Message::Notice(ReplicaNotice::Connected | ReplicaNotice::Disconnected, _) => None,
        Message::Ack(nonce) => Some(format!("ack {nonce:016x} -")),
    }
}

/// `None` for a message this version does not know (a newer replica's).
fn decode(payload: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(payload).ok()?;
    let (kind, rest) = text.split_once(' ')?;
    let (nonce, payload) = rest.split_once(' ')?;
    let nonce = u64::from_str_radix(nonce, 16).ok()?;
    match kind {
        "roles" => Some(Message::Notice(
            ReplicaNotice::RolesChanged(Arc::from(payload)),
            nonce,
        )),
        "ended" => {
            let (digest, reason) = payload.split_once(':')?;
            let digest = u64::from_str_radix(digest, 16).ok()?;
            let reason = crate::EndReason::from_name(reason)?;
            Some(Message::Notice(
                ReplicaNotice::SessionEnded { digest, reason },
                nonce,
            ))
        }
        "ack" => Some(Message::Ack(nonce)),
        _ => None,
    }
}

/// Subscribes, applies notices and acknowledges them, and reconnects,
/// until the store is dropped.
async fn subscriber(
    urls: Vec<String>,
    channel: String,
    timeout: Duration,
    state: Arc<Mutex<State>>,
) {
    let mut retry = RETRY_MIN;
    let mut next_url = 0;
    loop {
        let url = &urls[next_url % urls.len()];
        match tokio::time::timeout(timeout, connect(url, &channel)).await {
            Ok(Ok((pubsub, acker))) => {
                retry = RETRY_MIN;
                let (mut sink, mut messages) = pubsub.split();
                set_connected(&state, true);
                let mut health = tokio::time::interval(HEALTH_CHECK_EVERY);
                health.tick().await; // the first tick is immediate
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => match decode(message.get_payload_bytes()) {
                                Some(Message::Notice(notice, nonce)) => {
                                    // This process applied its own notices
                                    // before publishing them.
                                    let state = lock(&state);
                                    if !state.acks.contains_key(&nonce) {
                                        state.tell(&notice);
                                    }
                                    drop(state);
                                    // Applied: say so (off this loop).
                                    let (mut acker, channel) = (acker.clone(), channel.clone());
                                    tokio::spawn(async move {
                                        if let Some(ack) = encode(&Message::Ack(nonce)) {
                                            let _ = publish(&mut acker, &channel, &ack).await;
                                        }
                                    });
                                }
                                Some(Message::Ack(nonce)) => {
                                    if let Some(acks) = lock(&state).acks.get(&nonce) {
                                        acks.send_modify(|count| *count += 1);
                                    }
                                }
                                None => {}
                            },
                            None => break,
                        },
                        _ = health.tick() => {
                            let ping = tokio::time::timeout(timeout, sink.ping::<::redis::Value>()).await;
                            if !matches!(ping, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                set_connected(&state, false);
                log_warn!("connection lost"; "Redis notice subscriber reconnecting");
            }
            Ok(Err(error)) => {
                next_url += 1;
                log_warn!(error; "Redis notice subscriber could not connect");
            }
            Err(_) => {
                next_url += 1;
                log_warn!("timed out"; "Redis notice subscriber could not connect");
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// A subscribed pub/sub connection, and a plain one to acknowledge on.
async fn connect(
    url: &str,
    channel: &str,
) -> Result<(::redis::aio::PubSub, MultiplexedConnection), RedisError> {
    let client = ::redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let acker = client.get_multiplexed_async_connection().await?;
    Ok((pubsub, acker))
}

fn set_connected(state: &Mutex<State>, connected: bool) {
    let mut state = lock(state);
    if state.connected != connected {
        state.connected = connected;
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
    fn messages_round_trip_and_unknown_ones_are_ignored() {
        let notice = ReplicaNotice::RolesChanged(Arc::from("alice with spaces:x"));
        let message = Message::Notice(notice, 0xfeed);
        let encoded = encode(&message).unwrap();
        assert_eq!(decode(encoded.as_bytes()), Some(message));
        let ended = ReplicaNotice::SessionEnded {
            digest: u64::MAX,
            reason: crate::EndReason::Revoked,
        };
        let message = Message::Notice(ended, 3);
        assert_eq!(decode(encode(&message).unwrap().as_bytes()), Some(message));
        assert_eq!(decode(b"ended 01 ff:unheard-of"), None);
        let ack = Message::Ack(7);
        assert_eq!(decode(encode(&ack).unwrap().as_bytes()), Some(ack));
        assert_eq!(decode(b"sessions-ended 00 x"), None);
        assert_eq!(decode(b"roles zz alice"), None);
        assert_eq!(decode(b"\xff"), None);
        assert_eq!(encode(&Message::Notice(ReplicaNotice::Connected, 1)), None);
    }
}
