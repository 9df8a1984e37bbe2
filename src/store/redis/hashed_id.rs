//! What a [`RedisStore`](super::RedisStore) keeps of a session id: hashes,
//! never the id itself, so the id shows up in no key name, index member,
//! value or command argument (`MONITOR`, `SLOWLOG`, keyspace notifications,
//! `ZRANGE` of an index, an RDB dump).
//!
//! SHA-256 over a fixed domain tag and the id's text, split in two halves:
//! the first 128 bits name the session (key suffix and index member), the
//! second 128 bits are stored in the value and compared on every read, so a
//! lookup matches only the id whose whole 256-bit hash matches. Unkeyed on
//! purpose: every replica finds the same key with no shared secret to
//! distribute, and minted ids (256 random bits) cannot be recovered from
//! their hash. Adopted ids are only as hard to guess from their hash as they
//! are to guess at all (rmcp mints UUIDv4s: 122 random bits).

use sha2::{Digest, Sha256};

use crate::SessionId;

/// Domain tag hashed before the id, so these hashes match no other use of
/// SHA-256 over session ids.
const DOMAIN: &[u8] = b"mcp-session/redis/session-id\0";

/// The hashes of one session id.
pub(super) struct HashedId {
    /// First half of the hash, 32 hex digits: the session key is
    /// `<prefix>s:<member>`, and indexes hold `member`.
    pub(super) member: String,
    /// Second half of the hash, 32 hex digits: stored in the value and
    /// checked on every read.
    pub(super) check: String,
    /// The id's [`SessionId::digest`], stored in the value so that sessions
    /// the store removes by itself (evictions, revocations) can be reported
    /// to [`SessionEnded`](crate::SessionEnded) hooks.
    pub(super) digest: u64,
}

impl HashedId {
    pub(super) fn of(id: &SessionId) -> Self {
        let hash = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(id.reveal().as_bytes())
            .finalize();
        let (member, check) = hash.split_at(16);
        HashedId {
            member: hex::encode(member),
            check: hex::encode(check),
            digest: id.digest(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_hex_stable_and_differ_per_id() {
        let id = SessionId::parse_adopted("6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e").unwrap();
        let a = HashedId::of(&id);
        let b = HashedId::of(&id.clone());
        assert_eq!((a.member.len(), a.check.len()), (32, 32));
        assert_eq!((&a.member, &a.check), (&b.member, &b.check));
        assert_eq!(a.digest, id.digest());
        let other = HashedId::of(
            &SessionId::parse_adopted("6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4f").unwrap(),
        );
        assert_ne!(a.member, other.member);
        assert_ne!(a.check, other.check);
        // A minted id hashes the same whichever way it is held.
        let minted = SessionId::generate();
        let parsed = SessionId::parse_adopted(&minted.reveal()).unwrap();
        assert_eq!(HashedId::of(&minted).member, HashedId::of(&parsed).member);
    }
}
