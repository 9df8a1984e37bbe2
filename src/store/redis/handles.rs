//! Handles in Redis (features `redis` and `handles`): [`RedisStore`] as a
//! [`HandleStore`], next to its sessions but in a namespace of its own.
//!
//! # Keys
//!
//! With the default prefix `mcp-session:`, where `<tag>` is a digest of the
//! handle's kind and owner, `<digest>` a digest of the handle, and `<kind>`
//! a digest of the kind (key names and indexes never hold a handle, an
//! owner or a kind in clear):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `mcp-session:h:{<tag>}:<digest>` | hash | owner, kind, handle, times, version, payload; TTL: its expiry plus the expired grace |
//! | `mcp-session:hi:{<tag>}` | sorted set | the owner's live handles of the kind, scored by their expiry (ms) |
//! | `mcp-session:hg:<kind>` | sorted set | `<tag>:<digest>` of every handle of the kind, scored by a lower bound of its expiry |
//! | `mcp-session:n:<nonce>` | string | a claimed single-use nonce ([sealed state](crate::sealed)), TTL until its state expires |
//!
//! None of these collides with a session key (`s:`, `i:`, `global`), and
//! no session script reads them: handles and sessions never share a cap.
//!
//! The `{<tag>}` hash tag puts a record and its owner's index in one
//! Cluster slot, so that one script reads and writes both atomically:
//! create (with the per-identity cap), open (sliding the expiry in both),
//! compare-and-set and delete. The record key is derived from the owner,
//! so another principal's lookup reads a key that does not exist: the same
//! path, the same answer, as an unknown handle. The owner and kind stored
//! in the record are checked as well.
//!
//! # Caps
//!
//! The per-identity cap is exact and atomic: the create script drops index
//! members whose expiry passed and refuses at the cap. The per-kind global
//! index lives in another slot, so a create adds to it in a second script
//! (refusing at the cap, then undoing the first step); its scores are the
//! expiry when written, a lower bound. At the cap, up to 256 members whose
//! score passed are checked against their records: gone or expired ones
//! leave, live ones get their current expiry; then the add is tried again.
//! As with the session store, the two steps are not one transaction: for a
//! moment a new handle exists before it is counted globally.

use std::future::Future;
use std::sync::LazyLock;

use ::redis::{RedisError, Script, Value};
use sha2::{Digest, Sha256};

use super::{join_all, RedisStore};
use crate::handles::{
    millis, Handle, HandleInfo, HandleKey, HandleLimits, HandleStore, Lookup, NewHandle, Replaced,
    StoredHandle,
};
use crate::{CapacityScope, StoreError, Timestamp};

/// Most members of a full global index checked by one create.
const GLOBAL_CHECK_MAX: usize = 256;

impl RedisStore {
    fn handle_tag(&self, owner: &str, kind: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"mcp-session handle owner\0")
            .chain_update((kind.len() as u64).to_be_bytes())
            .chain_update(kind)
            .chain_update(owner)
            .finalize();
        hex::encode(&digest[..16])
    }

    fn handle_keys(&self, key: &HandleKey<'_>) -> HandleKeys {
        let tag = self.handle_tag(key.owner, key.kind);
        let prefix = &self.inner.config.key_prefix;
        let member = key.handle.digest_hex();
        HandleKeys {
            record: format!("{prefix}h:{{{tag}}}:{member}"),
            index: format!("{prefix}hi:{{{tag}}}"),
            global_member: format!("{tag}:{member}"),
            member,
        }
    }

    fn handle_global_key(&self, kind: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"mcp-session handle kind\0")
            .chain_update(kind)
            .finalize();
        format!(
            "{}hg:{}",
            self.inner.config.key_prefix,
            hex::encode(&digest[..8])
        )
    }

    async fn create_handle_now(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> Result<(), StoreError> {
        let keys = self.handle_keys(&new.key);
        let now = new.created_at.as_millis();
        let expires = crate::handles::expires_at(new.created_at, new.idle_timeout, new.deadline);
        let mut conn = self.conn.clone();
        let created: i64 = self
            .bounded(
                CREATE
                    .key(&keys.record)
                    .key(&keys.index)
                    .arg(new.key.owner)
                    .arg(new.key.kind)
                    .arg(now)
                    .arg(millis(new.idle_timeout))
                    .arg(new.deadline.as_millis())
                    .arg(millis(new.grace))
                    .arg(&keys.member)
                    .arg(new.payload)
                    .arg(new.key.handle.reveal())
                    .arg(limits.max_per_identity)
                    .invoke_async(&mut conn),
            )
            .await?
            .map_err(|e| self.fail(e))?;
        match created {
            1 => {}
            -1 => return Err(StoreError::AlreadyExists),
            _ => return Err(StoreError::AtCapacity(CapacityScope::Identity)),
        }
        let global = self.handle_global_key(new.key.kind);
        let added = self
            .bounded(self.add_global(&global, &keys.global_member, expires, now, limits))
            .await
            .and_then(|r| r.map_err(|e| self.fail(e)));
        match added {
            Ok(true) => Ok(()),
            refused => {
                // Undo the first step (best effort: the record expires anyway).
                let undo = async {
                    let _: Result<i64, _> = ::redis::cmd("DEL")
                        .arg(&keys.record)
                        .query_async(&mut conn)
                        .await;
                    let _: Result<i64, _> = ::redis::cmd("ZREM")
                        .arg(&keys.index)
                        .arg(&keys.member)
                        .query_async(&mut conn)
                        .await;
                };
                let _ = self.bounded(undo).await;
                match refused {
                    Ok(_) => Err(StoreError::AtCapacity(CapacityScope::Global)),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Adds to the kind's global index below its cap; at the cap, checks
    /// members whose score passed once, then tries again.
    async fn add_global(
        &self,
        global: &str,
        member: &str,
        expires: Timestamp,
        now: u64,
        limits: &HandleLimits,
    ) -> Result<bool, RedisError> {
        let mut conn = self.conn.clone();
        let add = |mut conn: super::Conn| async move {
            GLOBAL_ADD
                .key(global)
                .arg(limits.max_handles)
                .arg(member)
                .arg(expires.as_millis())
                .invoke_async::<i64>(&mut conn)
                .await
        };
        if add(conn.clone()).await? == 1 {
            return Ok(true);
        }
        let stale: Vec<String> = ::redis::cmd("ZRANGE")
            .arg(global)
            .arg("-inf")
            .arg(now)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(GLOBAL_CHECK_MAX)
            .query_async(&mut conn)
            .await?;
        let prefix = &self.inner.config.key_prefix;
        let reads = stale
            .iter()
            .map(|m| {
                let mut conn = conn.clone();
                let (tag, digest) = m.split_once(':').unwrap_or((m, ""));
                let record = format!("{prefix}h:{{{tag}}}:{digest}");
                async move {
                    ::redis::cmd("HMGET")
                        .arg(record)
                        .arg("l")
                        .arg("i")
                        .arg("d")
                        .query_async::<Vec<Option<u64>>>(&mut conn)
                        .await
                }
            })
            .collect();
        let mut changes = ::redis::pipe();
        for (m, times) in stale.iter().zip(join_all(reads).await) {
            match times?.as_slice() {
                [Some(last), Some(idle), Some(deadline)] if now < (last + idle).min(*deadline) => {
                    changes
                        .cmd("ZADD")
                        .arg(global)
                        .arg("XX")
                        .arg((last + idle).min(*deadline))
                        .arg(m)
                        .ignore();
                }
                _ => {
                    changes.cmd("ZREM").arg(global).arg(m).ignore();
                }
            }
        }
        if !stale.is_empty() {
            changes.query_async::<()>(&mut conn).await?;
        }
        Ok(add(conn).await? == 1)
    }

    async fn open_handle_now(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        let keys = self.handle_keys(key);
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .bounded(
                OPEN.key(&keys.record)
                    .key(&keys.index)
                    .arg(key.owner)
                    .arg(key.kind)
                    .arg(now.as_millis())
                    .arg(&keys.member)
                    .invoke_async(&mut conn),
            )
            .await?
            .map_err(|e| self.fail(e))?;
        lookup_reply(reply).map_err(|e| self.fail(e))
    }

    async fn replace_handle_now(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let keys = self.handle_keys(key);
        let mut conn = self.conn.clone();
        let reply: i64 = self
            .bounded(
                REPLACE
                    .key(&keys.record)
                    .key(&keys.index)
                    .arg(key.owner)
                    .arg(key.kind)
                    .arg(now.as_millis())
                    .arg(&keys.member)
                    .arg(version)
                    .arg(payload)
                    .invoke_async(&mut conn),
            )
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(match reply {
            3 => Replaced::Written,
            2 => Replaced::Stale,
            1 => Replaced::Expired,
            _ => Replaced::Missing,
        })
    }

    async fn delete_handle_now(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        let keys = self.handle_keys(key);
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .bounded(
                DELETE
                    .key(&keys.record)
                    .key(&keys.index)
                    .arg(key.owner)
                    .arg(key.kind)
                    .arg(now.as_millis())
                    .arg(&keys.member)
                    .invoke_async(&mut conn),
            )
            .await?
            .map_err(|e| self.fail(e))?;
        let found = lookup_reply(reply).map_err(|e| self.fail(e))?;
        if found != Lookup::Missing {
            // Best effort: a member whose record is gone leaves the global
            // index when a create at the cap checks it.
            let global = self.handle_global_key(key.kind);
            let _ = self
                .bounded(
                    ::redis::cmd("ZREM")
                        .arg(global)
                        .arg(&keys.global_member)
                        .query_async::<i64>(&mut conn),
                )
                .await;
        }
        Ok(found)
    }

    async fn list_handles_now(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> Result<Vec<HandleInfo>, StoreError> {
        let tag = self.handle_tag(owner, kind);
        let prefix = &self.inner.config.key_prefix;
        let index = format!("{prefix}hi:{{{tag}}}");
        let mut conn = self.conn.clone();
        let work = async {
            let members: Vec<String> = ::redis::cmd("ZRANGE")
                .arg(&index)
                .arg(format!("({}", now.as_millis()))
                .arg("+inf")
                .arg("BYSCORE")
                .query_async(&mut conn)
                .await?;
            let reads = members
                .iter()
                .map(|member| {
                    let mut conn = conn.clone();
                    let record = format!("{prefix}h:{{{tag}}}:{member}");
                    async move {
                        ::redis::cmd("HMGET")
                            .arg(record)
                            .arg(&["o", "k", "h", "c", "l", "i", "d"][..])
                            .query_async::<Vec<Option<String>>>(&mut conn)
                            .await
                    }
                })
                .collect();
            let mut list = Vec::new();
            for fields in join_all(reads).await {
                let fields = fields?;
                let [Some(o), Some(k), Some(h), Some(c), Some(l), Some(i), Some(d)] =
                    fields.as_slice()
                else {
                    continue;
                };
                let number = |s: &str| s.parse::<u64>().ok().map(Timestamp::from_millis);
                let (Ok(handle), Some(created_at), Some(last), Some(idle), Some(deadline)) =
                    (Handle::parse(h), number(c), number(l), number(i), number(d))
                else {
                    continue;
                };
                let idle = std::time::Duration::from_millis(idle.as_millis());
                let expires_at = crate::handles::expires_at(last, idle, deadline);
                if o == owner && k == kind && now < expires_at {
                    list.push(HandleInfo {
                        handle,
                        created_at,
                        expires_at,
                    });
                }
            }
            Ok::<_, RedisError>(list)
        };
        self.bounded(work).await?.map_err(|e| self.fail(e))
    }

    async fn claim_once_now(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = format!("{}n:{}", self.inner.config.key_prefix, hex::encode(nonce));
        // One more millisecond: the record outlives the last instant at
        // which the sealed state still opens.
        let ttl = until.as_millis().saturating_sub(now.as_millis()) + 1;
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .bounded(
                ::redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn),
            )
            .await?
            .map_err(|e| self.fail(e))?;
        Ok(set.is_some())
    }
}

struct HandleKeys {
    record: String,
    index: String,
    member: String,
    global_member: String,
}

fn bad_reply() -> RedisError {
    RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from a handle script",
    ))
}

/// `{0}` missing, `{1}` expired, `{2, version, payload, created, expires}` live.
fn lookup_reply(reply: Vec<Value>) -> Result<Lookup, RedisError> {
    let number = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| bad_reply()),
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad_reply),
        _ => Err(bad_reply()),
    };
    match reply.first() {
        Some(Value::Int(0)) => Ok(Lookup::Missing),
        Some(Value::Int(1)) => Ok(Lookup::Expired),
        Some(Value::Int(2)) => {
            let payload = match reply.get(2) {
                Some(Value::BulkString(b)) => b.clone(),
                _ => return Err(bad_reply()),
            };
            Ok(Lookup::Live(StoredHandle {
                version: number(reply.get(1))?,
                payload,
                created_at: Timestamp::from_millis(number(reply.get(3))?),
                expires_at: Timestamp::from_millis(number(reply.get(4))?),
            }))
        }
        _ => Err(bad_reply()),
    }
}

impl HandleStore for RedisStore {
    fn create_handle(
        &self,
        new: &NewHandle<'_>,
        limits: &HandleLimits,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.create_handle_now(new, limits)
    }

    fn open_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send {
        self.open_handle_now(key, now)
    }

    fn replace_handle(
        &self,
        key: &HandleKey<'_>,
        version: u64,
        payload: &[u8],
        now: Timestamp,
    ) -> impl Future<Output = Result<Replaced, StoreError>> + Send {
        self.replace_handle_now(key, version, payload, now)
    }

    fn delete_handle(
        &self,
        key: &HandleKey<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send {
        self.delete_handle_now(key, now)
    }

    fn list_handles(
        &self,
        owner: &str,
        kind: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<HandleInfo>, StoreError>> + Send {
        self.list_handles_now(owner, kind, now)
    }

    fn claim_once(
        &self,
        nonce: &[u8; 16],
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.claim_once_now(nonce, until, now)
    }
}

// ----------------------------------------------------------------------------
// Scripts. KEYS[1] = record, KEYS[2] = the owner's index (one slot: the
// hash tag). Times are integer milliseconds; `fmt` writes them back without
// an exponent.

/// Reads the record's fields and checks owner (ARGV[1]) and kind (ARGV[2]).
const FIELDS: &str = r#"
local function fmt(n) return string.format('%.0f', n) end
local r = redis.call('HMGET', KEYS[1], 'o', 'k', 'l', 'i', 'd', 'g', 'v', 'p', 'c')
if not r[1] or r[1] ~= ARGV[1] or r[2] ~= ARGV[2] then return MISSING end
"#;

/// `exp` is the record's logical expiry, `now` ARGV[3]; an expired record
/// answers EXPIRED within its grace, MISSING after it.
const EXPIRY: &str = r#"
local now = tonumber(ARGV[3])
local last, idle, deadline, grace = tonumber(r[3]), tonumber(r[4]), tonumber(r[5]), tonumber(r[6])
local exp = math.min(last + idle, deadline)
if now >= exp then
  if now < exp + grace then return EXPIRED end
  return MISSING
end
"#;

/// Slides a live record's expiry to `now` (never backwards) in the record,
/// its TTL and its index score (ARGV[4] = member).
const SLIDE: &str = r#"
if now > last then
  last = now
  exp = math.min(now + idle, deadline)
  redis.call('HSET', KEYS[1], 'l', fmt(now))
  redis.call('ZADD', KEYS[2], 'XX', fmt(exp), ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], fmt(exp - now + grace))
"#;

/// A script's source: its parts in order, with the replies for a missing
/// and an expired record filled in.
fn source(parts: &[&str], missing: &str, expired: &str) -> String {
    parts
        .concat()
        .replace("MISSING", missing)
        .replace("EXPIRED", expired)
}

fn open_source() -> String {
    let live = "return {2, r[7], r[8], r[9], fmt(exp)}\n";
    source(&[FIELDS, EXPIRY, SLIDE, live], "{0}", "{1}")
}

fn replace_source() -> String {
    let compare = "if r[7] ~= ARGV[5] then return 2 end\n";
    let write =
        "redis.call('HSET', KEYS[1], 'p', ARGV[6], 'v', fmt(tonumber(r[7]) + 1))\nreturn 3\n";
    source(&[FIELDS, EXPIRY, compare, SLIDE, write], "0", "1")
}

fn delete_source() -> String {
    let delete = "redis.call('DEL', KEYS[1])\nredis.call('ZREM', KEYS[2], ARGV[4])\n";
    let live = "return {2, r[7], r[8], r[9], fmt(exp)}\n";
    source(&[FIELDS, delete, EXPIRY, live], "{0}", "{1}")
}

/// ARGV: 1 owner, 2 kind, 3 now, 4 idle, 5 deadline, 6 grace, 7 member,
/// 8 payload, 9 handle, 10 per-identity cap. 1 created, 0 at the cap, -1
/// exists. Index members whose expiry passed leave first.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local function fmt(n) return string.format('%.0f', n) end
local now, idle, deadline, grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[10]) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local exp = math.min(now + idle, deadline)
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'k', ARGV[2], 'c', ARGV[3], 'l', ARGV[3], 'i', ARGV[4],
  'd', ARGV[5], 'g', ARGV[6], 'v', '1', 'p', ARGV[8], 'h', ARGV[9])
redis.call('PEXPIRE', KEYS[1], fmt(exp - now + grace))
redis.call('ZADD', KEYS[2], fmt(exp), ARGV[7])
local keep = deadline - now + grace
if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], fmt(keep)) end
return 1
"#,
    )
});

/// ARGV: 1 owner, 2 kind, 3 now, 4 member. `{2, version, payload, created,
/// expires}` after sliding; `{1}` expired (owner only); `{0}` otherwise.
static OPEN: LazyLock<Script> = LazyLock::new(|| Script::new(&open_source()));

/// ARGV: 1 owner, 2 kind, 3 now, 4 member, 5 expected version, 6 payload.
/// 3 written, 2 stale, 1 expired, 0 missing.
static REPLACE: LazyLock<Script> = LazyLock::new(|| Script::new(&replace_source()));

/// ARGV: 1 owner, 2 kind, 3 now, 4 member. Deletes the owner's record (live
/// or not) and its index entry; replies as OPEN with what it was.
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(&delete_source()));

/// KEYS[1] = a kind's global index; ARGV: 1 cap, 2 member, 3 score. 1
/// added, 0 at the cap.
static GLOBAL_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 1
"#,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_have_no_placeholders_left() {
        for code in [open_source(), replace_source(), delete_source()] {
            for word in ["MISSING", "EXPIRED"] {
                assert!(!code.contains(word), "{word} in {code}");
            }
        }
    }
}
