//! The server-side Lua scripts, each in its own `.lua` file next to this
//! one. Offsets in them are 1-based Lua positions of the fixed header
//! written by [`encode`](super::codec::encode); the codec's
//! `header_offsets_match_scripts` test checks them. Two placeholders are
//! filled in when a script is first used: the line `-- @header` (the shared
//! header reader, `header.lua`) and `GRACE_MS` ([`EXPIRY_GRACE_MS`]).

use std::sync::LazyLock;

use ::redis::Script;

use super::EXPIRY_GRACE_MS;

/// A script's source with its placeholders filled in.
fn source(lua: &str) -> String {
    lua.replace("-- @header\n", include_str!("scripts/header.lua"))
        .replace("GRACE_MS", &EXPIRY_GRACE_MS.to_string())
}

/// The first step of `create`. KEYS[1] = session key; ARGV[1] = value,
/// ARGV[2] = TTL (ms), ARGV[3] = now. Writes the session unless the key
/// holds a session that is live at now (or undecodable): returns 0 if the
/// id is taken, 1 if written, or the replaced value if it replaced a
/// logically expired session still stored.
pub(super) static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/create.lua"))));

/// The hot path. KEYS[1] = session key; ARGV[1] = owner, ARGV[2] = now
/// (16 zero-padded digits, written as is), ARGV[3] = the id's check hash.
/// Returns the stored value if the session is live, of this id and owned
/// by ARGV[1] (after sliding its expiry), nil if missing, expired, of
/// another id or someone else's (nothing changed), 0 if undecodable.
pub(super) static TOUCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/touch.lua"))));

/// KEYS[1] = session key; ARGV[1] = new value, ARGV[2] = now, ARGV[3] = TTL
/// (ms), ARGV[4] = owner, ARGV[5] = the id's check hash. Writes (`SET XX
/// PX`) only if the stored session is live at now, of this id and owned by
/// ARGV[4]. Returns 1 if written, 0 otherwise.
pub(super) static UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/update.lua"))));

// `header.lua` (pasted in place of `-- @header`) reads the fixed header
// of the value `v` into `last`, `deadline` and `idle`, and where the body
// starts into `body`, returning 0 (undecodable) unless it is a record of
// version 2 or a later one (which may add header fields after the
// version-2 ones, see `codec::decode`).

/// A capped index (sorted set, member = session id). KEYS[1] = index;
/// ARGV[1] = now, ARGV[2] = id, ARGV[3] = its score, ARGV[4] = cap,
/// ARGV[5] = mode (check | reject | evict), ARGV[6] = scoring (deadline |
/// expiry), ARGV[7] = how many members to report in check mode, ARGV[8] =
/// the new session's deadline − now (ms), ARGV[9..] = findings: triples
/// (member, score the caller saw, new score or '' if the session is gone).
///
/// 1. Applies the findings, each only to a member whose score is still the
///    one seen (so nothing a concurrent create or re-create changed is
///    touched): '' removes the member, a number re-scores it (`ZADD XX`).
/// 2. `deadline` scoring only: drops members whose deadline has passed
///    (an `expiry` score is a lower bound, not the expiry, so it is never
///    used to drop anything).
/// 3. Adds the id if the index is below the cap: {1}. At the cap: check →
///    {0, size, member, score, …} with the members to check (the earliest
///    deadlines, or the ones whose recorded expiry has passed); reject →
///    {0, size}; evict → pops the members with the lowest scores to make
///    room, adds the id and returns {1, popped…}.
/// 4. After an add, extends the index's TTL to at least ARGV[8], so the
///    index never expires while it holds a live session (`PTTL`, so it runs
///    on Redis 6.2).
pub(super) static ADD_TO_INDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/add_to_index.lua"))));

/// KEYS[1] = session key; ARGV[1] = the id's check hash. Deletes the
/// session unless it is a record (version 2 or later) of another id (whose
/// hash shares the key half); returns the value deleted, or nil.
pub(super) static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/delete.lua"))));

/// KEYS[1] = index; ARGV[1] = member, ARGV[2] = score. Removes the member
/// if it has that score; returns 1 if removed, 0 otherwise.
pub(super) static FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/forget.lua"))));

/// KEYS[1] = session key; ARGV[1] = the id's check hash, ARGV[2] = the
/// session's creation time as stored (16 digits). Deletes the session only
/// if it is that create's (same id, same creation time: an adopted id
/// created again by someone else keeps its session). Returns 1 if deleted.
pub(super) static UNDO: LazyLock<Script> =
    LazyLock::new(|| Script::new(&source(include_str!("scripts/undo.lua"))));
