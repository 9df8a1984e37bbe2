//! [`RedisStore`]: sessions in Redis or Valkey, standalone or Cluster, shared
//! by every replica of a server (feature `redis`).
//!
//! # Client
//!
//! Built on [redis-rs](https://docs.rs/redis) 1.x: a standalone server is
//! reached through its [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself), a Cluster through its async [`ClusterConnection`]
//! (slot-aware routing, topology refresh). Both are wrapped in one store type.
//!
//! # Keys
//!
//! With the default prefix `mcp-session:`:
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `mcp-session:s:<hash>` | string | the session (format below), with a TTL of its remaining life plus a 1 s grace (the logical expiry check decides) |
//! | `mcp-session:i:<identity id>` | sorted set | hashes of the identity's sessions, scored by their deadline (ms) |
//! | `mcp-session:global` | sorted set | hashes of all sessions, scored by a lower bound of their expiry (ms): the expiry when the score was written |
//!
//! `<hash>` is the first half (128 bits, 32 hex digits) of SHA-256 over a
//! domain tag and the session id; the value keeps the second half and every
//! read and script compares it, so a session is found only by the id whose
//! whole 256-bit hash matches. **No whole session id is ever sent to Redis**:
//! not in a key name, an index member, a value or a script argument, so
//! `MONITOR`, `SLOWLOG`, keyspace notifications, `ZRANGE` of an index and
//! dumps show no bearer secret. The hash is unkeyed, so replicas need no
//! shared secret; a minted id (256 random bits) cannot be found from it.
//! Sessions the store ends by itself (evictions, [`SessionStore::delete_all_of`])
//! are therefore reported by [digest](crate::SessionId::digest) only
//! ([`RemovedSession`]), read from their values.
//!
//! Each add to an index extends its TTL to at least the new session's
//! remaining lifetime (never shortening it), so an index never expires while
//! it holds a live session.
//!
//! Every command and script touches exactly one key, so the store works on a
//! Redis Cluster without hash tags. Put a hash tag in the prefix (for example
//! `{mcp}:`) only if you want all keys on one shard.
//!
//! # Value format (version 2)
//!
//! A compact text record, readable by the server-side scripts without
//! parsing the variable part:
//!
//! ```text
//! v2 <last_access:16> <created_at:16> <deadline:16> <idle_ms:16> <check:32> <digest:16>\n<len>:<owner><len>:<name><count>:(<len>:<role>)*
//! ```
//!
//! The four numbers are zero-padded decimal milliseconds (UTC epoch for the
//! timestamps) at fixed offsets, clamped to 2^53 − 1 so that Lua's doubles
//! hold them exactly; `check` is the second half of the id's hash and
//! `digest` the id's [`SessionId::digest`](crate::SessionId::digest), both
//! in hex; strings are length-prefixed (byte lengths), so names
//! and roles may contain any character. The leading `v2` is the version
//! marker.
//!
//! **Rolling upgrades.** Every later version (`v3` … `v9`) must keep the
//! version-2 header fields where they are and only add: header fields after
//! `digest` (space-separated, before the newline), body fields after the
//! roles. Readers (the Rust decoder and the scripts) accept any such
//! version and ignore what they do not know, so during a rolling upgrade a
//! replica not yet upgraded keeps serving the sessions newer ones wrote
//! (an `update` it makes writes version 2, dropping the newer fields).
//! A value that follows no such format (or version 1, whose key named the
//! whole id and is never looked up any more) is treated as not found and
//! logged with the `tracing` feature — never a panic.
//!
//! # Commands per call
//!
//! - [`touch`](SessionStore::touch) (the per-request hot path): **one**
//!   `EVALSHA` (with `EVAL` fallback after a script cache flush). The script
//!   reads the value, checks the version marker, the owner and the logical
//!   expiry `min(last_access + idle, deadline)` against the caller's `now`;
//!   if all pass it writes the new last access in place (`SETRANGE`) and sets
//!   `PEXPIRE` to `min(idle, deadline − now)` plus a 1 s grace, then returns the value.
//!   Otherwise it returns nil and changes nothing.
//! - [`get`](SessionStore::get): `GET`, then decode and check expiry.
//! - [`update`](SessionStore::update): one script that writes with
//!   `SET … XX PX` only if the stored session is still live at `now`, so an
//!   update never brings back a deleted or expired session.
//! - [`delete`](SessionStore::delete): one script that deletes the value if
//!   its check hash is the id's and returns it, then best-effort `ZREM`
//!   from the identity's and the global index.
//! - [`create`](SessionStore::create): see below.
//!
//! # Creating, caps, and what is atomic
//!
//! 1. A script on `s:<hash>` writes the session (`SET … PX <ms>`) unless
//!    the key holds a session that is live at the create's `now` (or a
//!    value it cannot decode): a live id is never overwritten
//!    ([`StoreError::AlreadyExists`]), but one that is logically expired
//!    and still stored (its key outlives its expiry by a 1 s grace, and by
//!    any clock difference between the replicas and Redis) is replaced, as
//!    in every store; its old owner's index then stops counting it. The TTL
//!    is computed from the session's own timestamps (`expires_at −
//!    last_access`), never from Redis' clock.
//! 2. A script on the identity's index (one key, so atomic) drops members
//!    whose deadline has passed and adds the new id if the identity is
//!    below [`Limits::max_sessions_per_identity`]. At the cap it reports the
//!    members instead, earliest deadline first (at most 1024: all of them
//!    for caps up to 1024); the store reads their sessions (`GET`, 64 in
//!    flight at a time, stopping once enough are found gone) and runs the
//!    script again with the ones that are gone or expired (a value it cannot
//!    decode counts as live). That run removes them, then applies the
//!    policy: [`IdentityLimitPolicy::Reject`] refuses,
//!    [`IdentityLimitPolicy::EvictOldest`] pops the members with the
//!    earliest deadlines (the oldest sessions) and adds the new one, all in
//!    one step. The evicted sessions are then deleted (`GETDEL`, Redis ≥
//!    6.2 or any Valkey: their values give the digests to report).
//! 3. The same script on the global index enforces [`Limits::max_sessions`]
//!    with the reject policy, but there a score is a lower bound of the
//!    session's expiry, not its deadline: its expiry when the score was
//!    written (`touch` never writes the index, so a used session's real
//!    expiry is later). Nothing is ever dropped by score. Below the cap the
//!    new id is added, scored by its expiry. At the cap the script reports
//!    up to 64 members whose score has passed (the only ones that may have
//!    expired); the store reads their sessions, and the next run removes the
//!    gone or expired ones and re-scores the live ones with their current
//!    expiry (`ZADD XX`; one whose value cannot be decoded counts as live
//!    and is scored by when Redis drops it), then adds the new id if there
//!    is room now, or reports the next 64. After at most 16 such rounds
//!    (1024 sessions read) a last run applies what the 16th found and
//!    refuses if the index is still full. (The identity goes first so that an eviction can make room
//!    globally too; an identity refusal thus never takes a global slot.)
//! 4. A refusal in step 2 or 3 deletes the session written in step 1 and its
//!    index entry.
//! 5. After a global add, `EXISTS s:<hash>`: if a concurrent create evicted
//!    the new session (or a `delete` removed it) between steps 2 and 3, its
//!    clean-up of the global index ran before the id got there, so the id
//!    is removed from both indexes now (by a script that removes it only if
//!    it still has the score this create wrote, so an adopted id created
//!    again meanwhile keeps its entries).
//!
//! In steps 2 and 3 the script applies each removal or re-score only if the
//! member's score is still the one the store read, so nothing a concurrent
//! create changed meanwhile (for example an adopted id created again) is
//! touched. Each cap is thus enforced atomically on its own index:
//! concurrent creates on any number of replicas never put more ids into an
//! index than its cap, and every live session is in its indexes (it is
//! added before `create` returns and removed only once it is gone or
//! expired). The steps are *not* one transaction (they live on different
//! keys, hence possibly on different Cluster shards): for the moment between
//! steps 1 and 4 a new session exists before it is counted, and evicted
//! sessions are deleted just after the new one is counted.
//!
//! **A create cut off part way is undone.** The steps run in a task of
//! their own, so a caller that times out or goes away (its future dropped,
//! for example by a client disconnect) never stops them half way. A create
//! that fails after step 1, or that succeeds when no caller is waiting any
//! more, is undone: the session key is deleted if it still holds that
//! create's session (same id hash and creation time), then its index
//! entries if they still carry its scores. The undo runs on the same
//! connection after the steps (so after any step command still in flight)
//! and is retried for about 4 s. Left behind only if Redis stays
//! unreachable all that time, or the process dies: a session no caller
//! learnt of, which expires with its TTL, and index entries the cap checks
//! drop once they find the session gone. (Sessions a cut-off create had
//! already evicted stay evicted, unreported.)
//!
//! **Trade-off of the global cap:** one sorted set holds every session id
//! (about 100 bytes per session) and every create touches it, so it is a
//! single hot key on one Cluster shard. Below the cap a create costs one
//! script run on it. A session that ended (by idling, or by a `delete` whose
//! index clean-up failed) holds its slot until its score passes, at most one
//! idle timeout after the score was written, and then until the next create
//! at the cap checks it. A live session checked gets its current expiry as
//! its score, so it is read at most once per idle period however many
//! creates arrive, and a flood of refused creates at a cap full of live
//! sessions costs one script run each. If Redis' own `maxmemory` is the bound you
//! want, turn the global index off with
//! [`RedisStoreConfig::global_cap`]`(false)`; [`Limits::max_sessions`] is
//! then not enforced by this store.
//!
//! **Limits of the checks**, both bounding the work of one `create`:
//!
//! - A per-identity cap above 1024: only the 1024 members with the earliest
//!   deadlines are checked, so sessions of that identity that idled out
//!   behind 1024 or more live, older ones keep their slots until their
//!   deadline; meanwhile [`IdentityLimitPolicy::Reject`] refuses and
//!   [`IdentityLimitPolicy::EvictOldest`] evicts the oldest live session
//!   although there would be room. Up to 1024 every member is checked.
//! - The global cap: when more than 1024 members' scores have passed while
//!   their sessions stayed in use, one create may read 1024 live sessions
//!   and refuse. The re-scores it made are kept, so the next creates go on
//!   where it stopped: such a refusal is transient, and the backlog shrinks
//!   by up to 1024 sessions per create.
//!
//! # Replica notices
//!
//! [`SessionStore::publish`] / [`SessionStore::subscribe`] carry
//! [`ReplicaNotice`]s (role invalidations) between replicas over Redis
//! pub/sub, on the channel `<prefix>notices`. Each store subscribes on the
//! first reachable URL it was given (one extra connection, opened when a
//! [`SessionManager`](crate::SessionManager) with a
//! [`RoleSource`](crate::roles::RoleSource) is built over it) and
//! acknowledges every notice it applies. `publish` returns `Ok` once every
//! replica its `PUBLISH` reached has acknowledged: the next request
//! anywhere sees the change. Otherwise it fails within the command timeout,
//! and a replica that missed the notice keeps what it cached at most
//! [`Config::roles_max_age`](crate::Config::roles_max_age). A replica whose
//! subscription drops (connection lost, or a health-check `PING` every 2 s
//! unanswered within the command timeout) stops using its cache until it is
//! back, then drops it. Stores built from a connection you configured
//! ([`RedisStore::from_connection_manager`]) have no subscription unless
//! [`RedisStore::with_notices_from`] gives them one.
//!
//! # Failures
//!
//! Every store call is bounded by [`RedisStoreConfig::command_timeout`]
//! (default 500 ms): past it the call fails with [`StoreError::Timeout`];
//! connection and server errors become [`StoreError::Unavailable`]. The
//! underlying connections use the same timeout for connecting and for each
//! response, and retry connecting only briefly, so a Redis that is down or
//! slow never makes a call hang; when it comes back, the same store
//! reconnects on the next calls, no restart needed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{RedisError, Value};
use tokio::time::Instant;

use self::codec::{decode_for, encode, removed_session, UndecodableValue};
use self::connection::{store_error, Conn};
use self::create::join_all;
use self::hashed_id::HashedId;
use self::notices::Notices;
use self::scripts::{ADD_TO_INDEX, CREATE, DELETE, FORGET, TOUCH, UNDO, UPDATE};
use super::{CreateOutcome, NoticeListener, RemovedSession, ReplicaNotice, SessionStore};
use crate::log::log_warn;
use crate::{Limits, Session, SessionId, StoreError, Timestamp};

mod codec;
mod config;
mod connection;
mod create;
mod create_guard;
#[cfg(feature = "rmcp")] // only the rmcp session-state store keeps such keys
mod digest_keys;
#[cfg(feature = "handles")] // RedisStore as a HandleStore
mod handles;
mod hashed_id;
mod notices;
mod scripts;

pub use self::config::RedisStoreConfig;

// Only named in the docs above.
#[cfg(doc)]
use crate::IdentityLimitPolicy;
#[cfg(doc)]
use ::redis::{aio::ConnectionManager, cluster_async::ClusterConnection};

/// Default key prefix of a [`RedisStore`].
pub const DEFAULT_KEY_PREFIX: &str = "mcp-session:";
/// Default bound on every [`RedisStore`] call: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on establishing the first connection: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most members of a full per-identity index that `create` checks for
/// sessions that are already gone before refusing or evicting (the ones with
/// the earliest deadlines).
const IDENTITY_CHECK_MAX: usize = 1024;

/// How many members of the full global index whose recorded expiry has
/// passed one round of `create` checks.
const GLOBAL_BATCH: usize = 64;

/// Most rounds of [`GLOBAL_BATCH`] checks one `create` runs before refusing.
const GLOBAL_ROUNDS: usize = 16;

/// How many `GET`s `create` has in flight at once while checking members.
const CHECK_CHUNK: usize = 64;

/// When a live member of the global index whose value cannot be decoded and
/// has no TTL is checked again (ms).
const RECHECK_UNKNOWN_MS: u64 = 60_000;

/// Largest integer a Lua (double) number holds exactly; stored numbers are
/// clamped to it.
const MAX_SAFE: u64 = (1 << 53) - 1;

// ----------------------------------------------------------------------------
// The store

/// A [`SessionStore`] in Redis or Valkey, standalone or Cluster, shared by any
/// number of server replicas. See the [module docs](self) for the data
/// layout, the commands each call issues and what is atomic.
///
/// Cloning is cheap and shares the connection.
///
/// ```no_run
/// use mcp_session::store::redis::{RedisStore, RedisStoreConfig};
/// use mcp_session::{Config, SessionManager};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Standalone (fails fast if Redis cannot be reached):
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
///
/// // Cluster, with a custom prefix and timeout:
/// let config = RedisStoreConfig::default()
///     .key_prefix("myapp:")
///     .command_timeout(Duration::from_millis(200));
/// let cluster = RedisStore::connect_cluster_with_config(
///     ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
///     config,
/// )
/// .await?;
///
/// let manager = SessionManager::new(store, Config::default());
/// # let _ = (manager, cluster);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisStoreConfig,
    global_key: String,
    notices: Notices,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.conn {
            Conn::Standalone(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("kind", &kind)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl RedisStore {
    fn fail(&self, e: RedisError) -> StoreError {
        store_error(e, self.inner.config.command_timeout)
    }

    /// The key of a session, by its [`HashedId::member`].
    fn session_key(&self, member: &str) -> String {
        let prefix = &self.inner.config.key_prefix;
        let mut key = String::with_capacity(prefix.len() + 2 + member.len());
        key.push_str(prefix);
        key.push_str("s:");
        key.push_str(member);
        key
    }

    /// The key of an identity's index.
    fn identity_key(&self, identity_id: &str) -> String {
        format!("{}i:{}", self.inner.config.key_prefix, identity_id)
    }

    /// Runs `fut` within the command timeout.
    async fn bounded<T>(&self, fut: impl Future<Output = T>) -> Result<T, StoreError> {
        let timeout = self.inner.config.command_timeout;
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| StoreError::Timeout(timeout))
    }

    /// Loads the scripts into the script cache now, so that the first calls
    /// send only `EVALSHA` (after a server restart redis-rs falls back to
    /// `EVAL`-style loading by itself).
    async fn preload_scripts(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(async move {
            for script in [
                &*CREATE,
                &*TOUCH,
                &*UPDATE,
                &*DELETE,
                &*ADD_TO_INDEX,
                &*FORGET,
                &*UNDO,
            ] {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(())
        })
        .await?
        .map_err(|e| self.fail(e))
    }

    async fn get_now(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let hashed = HashedId::of(id);
        let key = self.session_key(&hashed.member);
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .bounded(::redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(raw
            .and_then(|raw| decode_for(id, &hashed, &raw))
            .filter(|s| !s.is_expired(now)))
    }

    async fn update_now(&self, session: &Session, now: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(session.id());
        let key = self.session_key(&hashed.member);
        let value = encode(session, &hashed);
        let ttl = ttl_millis(session.expires_at(), now);
        let owner = session.identity_id();
        let fut = async move {
            UPDATE
                .key(&key)
                .arg(&value)
                .arg(clamp(now.as_millis()))
                .arg(ttl)
                .arg(owner)
                .arg(&hashed.check)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        let updated = self.bounded(fut).await?.map_err(|e| self.fail(e))?;
        Ok(updated == 1)
    }

    async fn delete_now(&self, id: &SessionId, deadline: Instant) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(id);
        let member = &hashed.member;
        let key = self.session_key(member);
        let timeout = self.inner.config.command_timeout;
        let mut invocation = DELETE.prepare_invoke();
        invocation.key(&key).arg(&hashed.check);
        let raw: Option<Vec<u8>> =
            tokio::time::timeout_at(deadline, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|e| self.fail(e))?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        // Deleted. An undecodable value names no owner: its index entries
        // go the way of any stale member (below).
        let Some(session) = decode_for(id, &hashed, &raw) else {
            return Ok(true);
        };
        // Index clean-up is best effort: a stale member is dropped by a
        // create that checks it at the cap, from an identity's index once
        // its deadline passes, or with its index once every deadline in it
        // has passed.
        let cleanup = async {
            let owner = self.identity_key(session.identity_id());
            let _: Result<(), _> = conn.zrem(&owner, member).await;
            if self.inner.config.global_cap {
                let _: Result<(), _> = conn.zrem(&self.inner.global_key, member).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline, cleanup).await;
        Ok(true)
    }
}

impl SessionStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    type TouchFuture = Pin<Box<dyn Future<Output = Result<Option<Session>, StoreError>> + Send>>;

    async fn create(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        self.create_detached(session, limits).await
    }

    fn get(
        &self,
        id: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send {
        self.get_now(id, now)
    }

    fn touch(&self, id: &SessionId, owner: &str, now: Timestamp) -> Self::TouchFuture {
        let mut conn = self.conn.clone();
        let hashed = HashedId::of(id);
        let key = self.session_key(&hashed.member);
        let owner = owner.to_owned();
        let id = id.clone();
        let timeout = self.inner.config.command_timeout;
        Box::pin(async move {
            let mut invocation = TOUCH.prepare_invoke();
            invocation
                .key(&key)
                .arg(&owner)
                .arg(format!("{:016}", clamp(now.as_millis())))
                .arg(&hashed.check);
            let call = invocation.invoke_async::<Value>(&mut conn);
            let reply = tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|e| store_error(e, timeout))?;
            match reply {
                Value::BulkString(raw) => Ok(decode_for(&id, &hashed, &raw)
                    // The script checked both; checking again costs nothing.
                    .filter(|s| s.identity_id() == owner && !s.is_expired(now))
                    .map(|s| s.touched(now))),
                Value::Int(0) => {
                    log_warn!(UndecodableValue; "undecodable session value in Redis for {}; treated as not found", id);
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
    }

    fn update(
        &self,
        session: &Session,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.update_now(session, now)
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let deadline = Instant::now() + self.inner.config.command_timeout;
        self.delete_now(id, deadline).await
    }

    async fn delete_all_of(&self, identity_id: &str) -> Result<Vec<RemovedSession>, StoreError> {
        let mut conn = self.conn.clone();
        let index = self.identity_key(identity_id);
        let fut = async {
            let members: Vec<String> = ::redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            // One GETDEL per session (each may live on another Cluster
            // shard), pipelined on the multiplexed connection; the values
            // tell the digests to report.
            let deleted = join_all(
                members
                    .iter()
                    .map(|member| {
                        let mut conn = conn.clone();
                        let key = self.session_key(member);
                        async move { conn.getdel(&key).await }
                    })
                    .collect(),
            )
            .await;
            let mut ended = Vec::new();
            for deleted in deleted {
                if let Some(removed) = deleted?.as_deref().and_then(removed_session) {
                    ended.push(removed);
                }
            }
            // Only the members read above: a session created meanwhile
            // keeps its slot.
            if !members.is_empty() {
                ::redis::cmd("ZREM")
                    .arg(&index)
                    .arg(&members)
                    .query_async::<()>(&mut conn)
                    .await?;
                if self.inner.config.global_cap {
                    ::redis::cmd("ZREM")
                        .arg(&self.inner.global_key)
                        .arg(&members)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
            }
            Ok::<_, RedisError>(ended)
        };
        self.bounded(fut).await?.map_err(|e| self.fail(e))
    }

    /// See [Replica notices](self#replica-notices): `Ok` once every
    /// subscribed replica applied the notice.
    async fn publish(&self, notice: &ReplicaNotice) -> Result<(), StoreError> {
        let notices = &self.inner.notices;
        if notices.has_channel() {
            return notices.publish(notice).await;
        }
        // No channel of our own: send it anyway for the replicas that have
        // one, without waiting for them.
        let Some(message) = notices::best_effort(notice) else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        let mut publish = ::redis::cmd("PUBLISH");
        publish.arg(notices.channel()).arg(message);
        self.bounded(publish.query_async::<i64>(&mut conn))
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn subscribe(&self, listener: NoticeListener) -> bool {
        self.inner.notices.subscribe(listener)
    }
}

fn clamp(millis: u64) -> u64 {
    millis.min(MAX_SAFE)
}

/// Milliseconds from `now` to `expires_at`, at least 1 (a TTL of 0 is
/// invalid; a session already expired is refused by every read anyway).
fn ttl_millis(expires_at: Timestamp, now: Timestamp) -> u64 {
    clamp(
        expires_at
            .as_millis()
            .saturating_sub(now.as_millis())
            .saturating_add(EXPIRY_GRACE_MS),
    )
}

/// How much longer than a session's logical expiry Redis keeps its key.
/// The logical check (`min(last_access + idle, deadline)` against the
/// caller's clock, in every read and script) is what decides; the key's own
/// TTL only frees the memory. Without the grace, a session whose last
/// millisecond is near would vanish on Redis' clock while a replica whose
/// clock trails by a few milliseconds still finds it live (and the other
/// way round): with it, replicas whose clocks differ by less than a second
/// agree on every session.
const EXPIRY_GRACE_MS: u64 = 1_000;
