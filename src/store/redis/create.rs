//! `create` and the caps: the session key, then the per-identity and the
//! global index (see the [module docs](super#creating-caps-and-what-is-atomic)).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use ::redis::{RedisError, Value};

use super::codec::{decode, encode, removed_session};
use super::connection::Conn;
use super::hashed_id::HashedId;
use super::scripts::{ADD_TO_INDEX, CREATE};
use super::{
    clamp, ttl_millis, RedisStore, CHECK_CHUNK, GLOBAL_BATCH, GLOBAL_ROUNDS, IDENTITY_CHECK_MAX,
    RECHECK_UNKNOWN_MS,
};
use crate::store::CreateOutcome;
use crate::{CapacityScope, IdentityLimitPolicy, Limits, Session, StoreError, Timestamp};

impl RedisStore {
    pub(super) async fn create_now(
        &self,
        session: &Session,
        limits: &Limits,
    ) -> Result<CreateOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let now = session.last_access();
        let hashed = HashedId::of(session.id());
        let id = &hashed.member;
        let key = self.session_key(id);
        let value = encode(session, &hashed);
        let ttl = ttl_millis(session.expires_at(), now);
        let created: Value = CREATE
            .key(&key)
            .arg(&value)
            .arg(ttl)
            .arg(clamp(now.as_millis()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        match created {
            Value::Int(1) => {}
            // Replaced a logically expired session of the same id: its old
            // owner's index stops counting it (best effort, like `delete`;
            // if the owner is the same, the index step below re-adds it).
            Value::BulkString(old) => {
                if let Ok(old) = decode(&old) {
                    let old_index = self.identity_key(old.identity.id());
                    let old_score = clamp(old.deadline.as_millis());
                    let _ = conn.forget(&old_index, id, old_score).await;
                }
            }
            _ => return Err(StoreError::AlreadyExists),
        }
        let deadline_score = clamp(session.deadline().as_millis());
        let index_ttl = ttl_millis(session.deadline(), now);

        // Per-identity cap.
        let identity_key = self.identity_key(session.identity_id());
        let policy = match limits.per_identity_policy {
            IdentityLimitPolicy::Reject => Mode::Reject,
            IdentityLimitPolicy::EvictOldest => Mode::Evict,
        };
        let identity_index = Index {
            key: &identity_key,
            scoring: Scoring::Deadline,
            cap: u64::from(limits.max_sessions_per_identity),
            at_cap: policy,
        };
        let evicted = match self
            .add_to_index(
                &mut conn,
                &identity_index,
                id,
                deadline_score,
                index_ttl,
                now,
            )
            .await?
        {
            Some(evicted) => evicted,
            None => {
                let _: Result<(), _> = conn.del(&key).await;
                return Err(StoreError::AtCapacity(CapacityScope::Identity));
            }
        };
        let mut outcome = CreateOutcome::default();
        for victim in evicted {
            let removed = conn
                .getdel(&self.session_key(&victim))
                .await
                .map_err(|e| self.fail(e))?;
            if self.inner.config.global_cap {
                conn.zrem(&self.inner.global_key, &victim)
                    .await
                    .map_err(|e| self.fail(e))?;
            }
            if let Some(removed) = removed.as_deref().and_then(removed_session) {
                outcome.evicted.push(removed);
            }
        }

        // Global cap.
        if self.inner.config.global_cap {
            let global_index = Index {
                key: &self.inner.global_key,
                scoring: Scoring::Expiry,
                cap: limits.max_sessions,
                at_cap: Mode::Reject,
            };
            let expiry_score = clamp(session.expires_at().as_millis());
            let added = self
                .add_to_index(&mut conn, &global_index, id, expiry_score, index_ttl, now)
                .await?;
            if added.is_none() {
                let _: Result<(), _> = conn.del(&key).await;
                let _: Result<(), _> = conn.zrem(&identity_key, id).await;
                return Err(StoreError::AtCapacity(CapacityScope::Global));
            }
            // A concurrent create may have evicted this session (or a
            // delete removed it) between the two index steps, cleaning the
            // global index before the id got there. Catch that now, so the
            // gone session does not hold a global slot until a check finds
            // it (best effort, like the clean-up in `delete`). Only entries
            // still carrying this create's scores are removed: an adopted id
            // created again meanwhile keeps its own.
            if let Ok(0) = conn.exists(&key).await {
                let _ = conn.forget(global_index.key, id, expiry_score).await;
                let _ = conn.forget(&identity_key, id, deadline_score).await;
            }
        }
        Ok(outcome)
    }

    /// Adds `id` (with `score`) to `index` unless it is full of live
    /// sessions. `Some(evicted)` if added, `None` if refused.
    ///
    /// Each call of the index script applies what the previous round found
    /// out and either adds the id or reports members to check; the last call
    /// applies `index.at_cap` instead of reporting.
    pub(super) async fn add_to_index(
        &self,
        conn: &mut Conn,
        index: &Index<'_>,
        id: &str,
        score: u64,
        index_ttl: u64,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (rounds, batch) = match index.scoring {
            Scoring::Deadline => (1, IDENTITY_CHECK_MAX),
            Scoring::Expiry => (GLOBAL_ROUNDS, GLOBAL_BATCH),
        };
        let mut findings: Vec<Finding> = Vec::new();
        let mut round = 0;
        loop {
            let last = round == rounds;
            let mode = if last { index.at_cap } else { Mode::Check };
            let mut invocation = ADD_TO_INDEX.prepare_invoke();
            invocation
                .key(index.key)
                .arg(clamp(now.as_millis()))
                .arg(id)
                .arg(score)
                .arg(clamp(index.cap))
                .arg(mode.as_str())
                .arg(index.scoring.as_str())
                .arg(batch)
                .arg(index_ttl);
            for finding in &findings {
                invocation.arg(&finding.member).arg(&finding.seen);
                match finding.rescore {
                    Some(score) => invocation.arg(score),
                    None => invocation.arg(""),
                };
            }
            let reply: Vec<Value> = invocation
                .invoke_async(&mut conn.clone())
                .await
                .map_err(|e| self.fail(e))?;
            match index_reply(reply).map_err(|e| self.fail(e))? {
                IndexReply::Added(evicted) => return Ok(Some(evicted)),
                IndexReply::Full { .. } if last => return Ok(None),
                IndexReply::Full { size, candidates } => {
                    if candidates.is_empty() {
                        if matches!(index.at_cap, Mode::Reject) {
                            return Ok(None);
                        }
                        // Nothing to check: let the policy decide.
                        findings.clear();
                        round = rounds;
                        continue;
                    }
                    // Members to free for the new one to fit.
                    let needed = size.saturating_sub(index.cap).saturating_add(1);
                    findings = self
                        .check_members(conn, index.scoring, candidates, now, needed)
                        .await?;
                    round += 1;
                }
            }
        }
    }

    /// Reads the sessions of `candidates` (members of a full index with the
    /// scores seen) and returns what the index script must change: gone or
    /// expired sessions are removed; in an expiry-scored index, live ones are
    /// re-scored with their current expiry. A value that cannot be decoded
    /// counts as live (for example written by a newer release): better to
    /// refuse a create than to let a cap be exceeded.
    ///
    /// Deadline scoring stops early once `needed` gone sessions are found.
    pub(super) async fn check_members(
        &self,
        conn: &Conn,
        scoring: Scoring,
        candidates: Vec<(String, String)>,
        now: Timestamp,
        needed: u64,
    ) -> Result<Vec<Finding>, StoreError> {
        let mut findings = Vec::new();
        let mut gone = 0u64;
        let mut candidates = candidates.into_iter().peekable();
        while candidates.peek().is_some() {
            let chunk: Vec<(String, String)> = candidates.by_ref().take(CHECK_CHUNK).collect();
            let reads = chunk.iter().map(|(member, _)| {
                let mut conn = conn.clone();
                let key = self.session_key(member);
                async move { conn.get(&key).await }
            });
            let values = join_all(reads.collect()).await;
            for ((member, seen), value) in chunk.into_iter().zip(values) {
                let value = value.map_err(|e| self.fail(e))?;
                let rescore = match value.as_deref().map(decode) {
                    None => None,
                    Some(Ok(parts)) if now < parts.expires_at() => {
                        Some(clamp(parts.expires_at().as_millis()))
                    }
                    Some(Ok(_)) => None,
                    Some(Err(_)) => match scoring {
                        Scoring::Deadline => continue,
                        Scoring::Expiry => {
                            // Live until Redis drops it: check it again then.
                            let ttl = conn
                                .clone()
                                .pttl(&self.session_key(&member))
                                .await
                                .map_err(|e| self.fail(e))?;
                            match u64::try_from(ttl) {
                                Ok(ttl) => Some(clamp(now.as_millis().saturating_add(ttl))),
                                // -1: no TTL (not written by this store).
                                Err(_) if ttl == -1 => {
                                    Some(clamp(now.as_millis().saturating_add(RECHECK_UNKNOWN_MS)))
                                }
                                // -2: gone since the GET.
                                Err(_) => None,
                            }
                        }
                    },
                };
                match (rescore, scoring) {
                    // Deadline scores stay: they order the oldest first.
                    (Some(_), Scoring::Deadline) => {}
                    (rescore, _) => {
                        gone += u64::from(rescore.is_none());
                        findings.push(Finding {
                            member,
                            seen,
                            rescore,
                        });
                    }
                }
            }
            if matches!(scoring, Scoring::Deadline) && gone >= needed {
                break;
            }
        }
        Ok(findings)
    }
}

/// A capped index, as `create` sees it.
pub(super) struct Index<'a> {
    key: &'a str,
    scoring: Scoring,
    cap: u64,
    /// What the last call does at the cap: [`Mode::Reject`] or [`Mode::Evict`].
    at_cap: Mode,
}

/// What a capped index's scores are.
#[derive(Clone, Copy)]
pub(super) enum Scoring {
    /// The session's deadline (never changes): members are ordered oldest
    /// first and dropped once their deadline passes. Per-identity indexes.
    Deadline,
    /// A lower bound of the session's expiry: its expiry when the score was
    /// written, raised when a check finds the session still live. The
    /// global index.
    Expiry,
}

impl Scoring {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scoring::Deadline => "deadline",
            Scoring::Expiry => "expiry",
        }
    }
}

/// What a check found out about one member of a full index.
pub(super) struct Finding {
    member: String,
    /// The score the check saw (the script changes nothing if it moved).
    seen: String,
    /// The member's new score, `None` to remove it (the session is gone).
    rescore: Option<u64>,
}

#[derive(Clone, Copy)]
pub(super) enum Mode {
    /// Add if below the cap; otherwise report the members to check.
    Check,
    /// Add if below the cap; otherwise refuse.
    Reject,
    /// Add, evicting the oldest members if at the cap.
    Evict,
}

impl Mode {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Mode::Check => "check",
            Mode::Reject => "reject",
            Mode::Evict => "evict",
        }
    }
}

/// A reply of the index script.
pub(super) enum IndexReply {
    /// The id was added; these members were evicted to make room.
    Added(Vec<String>),
    /// The index is full: `size` members, `candidates` (member, score) to
    /// check (none unless in check mode).
    Full {
        size: u64,
        candidates: Vec<(String, String)>,
    },
}

/// Parses `{1, evicted…}` or `{0, size, member, score, …}` from the index
/// script.
pub(super) fn index_reply(reply: Vec<Value>) -> Result<IndexReply, RedisError> {
    let text = |item: Value| match item {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| bad_reply()),
        _ => Err(bad_reply()),
    };
    let mut items = reply.into_iter();
    match items.next() {
        Some(Value::Int(1)) => Ok(IndexReply::Added(
            items.map(text).collect::<Result<_, _>>()?,
        )),
        Some(Value::Int(0)) => {
            let size = match items.next() {
                Some(Value::Int(size)) => u64::try_from(size).map_err(|_| bad_reply())?,
                _ => return Err(bad_reply()),
            };
            let mut candidates = Vec::with_capacity(items.len() / 2);
            while let Some(member) = items.next() {
                let score = items.next().ok_or_else(bad_reply)?;
                candidates.push((text(member)?, text(score)?));
            }
            Ok(IndexReply::Full { size, candidates })
        }
        _ => Err(bad_reply()),
    }
}

/// Awaits all `futures` concurrently and returns their outputs in order.
/// On a multiplexed connection their commands are pipelined: one round trip
/// for all of them.
pub(super) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

pub(super) fn bad_reply() -> RedisError {
    RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from the index script",
    ))
}
