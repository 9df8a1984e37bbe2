//! The value format (see the [module docs](super#value-format-version-2)).

use std::fmt;
use std::time::Duration;

use super::clamp;
use super::hashed_id::HashedId;
use crate::log::log_warn;
use crate::store::RemovedSession;
use crate::{Identity, Roles, Session, SessionId, Timestamp};

/// Length of the fixed header, including the trailing newline.
pub(super) const HEADER_LEN: usize = 121;

/// Encodes a session as a version-2 record. The id is not stored, only the
/// check half of its hash and its digest (see [`HashedId`]).
pub(super) fn encode(session: &Session, hashed: &HashedId) -> Vec<u8> {
    use std::io::Write;
    let identity = session.identity();
    let roles = identity.roles();
    let mut out = Vec::with_capacity(
        HEADER_LEN
            + 24
            + identity.id().len()
            + identity.name().len()
            + roles.iter().map(|r| r.as_str().len() + 4).sum::<usize>(),
    );
    let idle = u64::try_from(session.idle_timeout().as_millis()).unwrap_or(u64::MAX);
    // Writing to a Vec cannot fail.
    let _ = writeln!(
        out,
        "v2 {:016} {:016} {:016} {:016} {} {:016x}",
        clamp(session.last_access().as_millis()),
        clamp(session.created_at().as_millis()),
        clamp(session.deadline().as_millis()),
        clamp(idle),
        hashed.check,
        hashed.digest,
    );
    let field = |s: &str, out: &mut Vec<u8>| {
        let _ = write!(out, "{}:", s.len());
        out.extend_from_slice(s.as_bytes());
    };
    field(identity.id(), &mut out);
    field(identity.name(), &mut out);
    let _ = write!(out, "{}:", roles.len());
    for role in roles.iter() {
        field(role.as_str(), &mut out);
    }
    out
}

/// Why a stored value could not be decoded.
#[derive(Debug)]
pub(super) struct UndecodableValue;

impl fmt::Display for UndecodableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a version-2 session record")
    }
}

/// A decoded record, before it is joined with its id.
pub(super) struct Decoded {
    /// The check half of the id's hash (32 hex digits).
    check: [u8; 32],
    /// The id's [`SessionId::digest`].
    digest: u64,
    pub(super) identity: Identity,
    last_access: Timestamp,
    created_at: Timestamp,
    pub(super) deadline: Timestamp,
    idle: Duration,
}

impl Decoded {
    pub(super) fn expires_at(&self) -> Timestamp {
        (self.last_access + self.idle).min(self.deadline)
    }

    pub(super) fn into_session(self, id: SessionId) -> Session {
        Session::from_parts(
            id,
            self.identity,
            self.created_at,
            self.last_access,
            self.idle,
            self.deadline,
        )
    }
}

/// The session `raw` holds if it is `id`'s (its check hash matches).
pub(super) fn decode_for(id: &SessionId, hashed: &HashedId, raw: &[u8]) -> Option<Session> {
    match decode(raw) {
        Ok(parts) if parts.check == hashed.check.as_bytes() => Some(parts.into_session(id.clone())),
        Ok(_) => None,
        Err(e) => {
            log_warn!(e; "undecodable session value in Redis for {}; treated as not found", id);
            None
        }
    }
}

/// A session this store removed by itself, from its value (`None` if
/// undecodable: then there is no digest to report).
pub(super) fn removed_session(raw: &[u8]) -> Option<RemovedSession> {
    decode(raw)
        .ok()
        .map(|parts| RemovedSession::from_digest(parts.digest))
}

/// Decodes a record of version 2, or of a later version that follows the
/// rule every later format must keep for rolling upgrades: the version-2
/// header fields stay where they are, new header fields come after them
/// (space-separated, before the newline), and new body fields after the
/// roles. A reader ignores what it does not know, so a replica not yet
/// upgraded keeps serving sessions a newer one wrote (an `update` it makes
/// writes version 2, dropping the newer fields).
pub(super) fn decode(raw: &[u8]) -> Result<Decoded, UndecodableValue> {
    let version = match raw {
        [b'v', digit @ b'2'..=b'9', b' ', ..] => digit - b'0',
        _ => return Err(UndecodableValue),
    };
    if raw.len() < HEADER_LEN {
        return Err(UndecodableValue);
    }
    let body = match raw[HEADER_LEN - 1] {
        b'\n' => HEADER_LEN,
        b' ' if version > 2 => {
            let newline = raw[HEADER_LEN..]
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(UndecodableValue)?;
            HEADER_LEN + newline + 1
        }
        _ => return Err(UndecodableValue),
    };
    let number = |at: usize| -> Result<u64, UndecodableValue> {
        if at > 3 && raw[at - 1] != b' ' {
            return Err(UndecodableValue);
        }
        parse_digits(&raw[at..at + 16])
    };
    let last_access = number(3)?;
    let created_at = number(20)?;
    let deadline = number(37)?;
    let idle = number(54)?;
    if raw[70] != b' ' || raw[103] != b' ' {
        return Err(UndecodableValue);
    }
    let mut check = [0u8; 32];
    check.copy_from_slice(&raw[71..103]);
    if !check.iter().all(u8::is_ascii_hexdigit) {
        return Err(UndecodableValue);
    }
    let digest = std::str::from_utf8(&raw[104..120])
        .ok()
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or(UndecodableValue)?;

    let mut rest = &raw[body..];
    let id = take_str(&mut rest)?;
    let name = take_str(&mut rest)?;
    let count = take_len(&mut rest)?;
    let mut roles = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        roles.push(take_str(&mut rest)?);
    }
    if !rest.is_empty() && version == 2 {
        return Err(UndecodableValue);
    }
    Ok(Decoded {
        check,
        digest,
        identity: Identity::from_stored(id, name, Roles::new(roles)),
        last_access: Timestamp::from_millis(last_access),
        created_at: Timestamp::from_millis(created_at),
        deadline: Timestamp::from_millis(deadline),
        idle: Duration::from_millis(idle),
    })
}

pub(super) fn parse_digits(digits: &[u8]) -> Result<u64, UndecodableValue> {
    if digits.is_empty() || digits.len() > 19 {
        return Err(UndecodableValue);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            Ok(acc * 10 + u64::from(d - b'0'))
        } else {
            Err(UndecodableValue)
        }
    })
}

/// Reads `<len>:` from the front of `rest`.
pub(super) fn take_len(rest: &mut &[u8]) -> Result<usize, UndecodableValue> {
    let colon = rest
        .iter()
        .take(20)
        .position(|&b| b == b':')
        .ok_or(UndecodableValue)?;
    let len = parse_digits(&rest[..colon])?;
    *rest = &rest[colon + 1..];
    usize::try_from(len).map_err(|_| UndecodableValue)
}

/// Reads `<len>:<bytes>` from the front of `rest`.
pub(super) fn take_str<'a>(rest: &mut &'a [u8]) -> Result<&'a str, UndecodableValue> {
    let len = take_len(rest)?;
    if rest.len() < len {
        return Err(UndecodableValue);
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(s).map_err(|_| UndecodableValue)
}

#[cfg(test)]
mod tests {
    use super::super::{ttl_millis, MAX_SAFE};
    use super::*;

    fn session(identity: Identity) -> Session {
        Session::from_parts(
            SessionId::generate(),
            identity,
            Timestamp::from_millis(1_700_000_000_000),
            Timestamp::from_millis(1_700_000_000_500),
            Duration::from_secs(1800),
            Timestamp::from_millis(1_700_086_400_000),
        )
    }

    #[test]
    fn round_trips_identity_and_times() {
        let alice = Identity::new(
            "alice:colon",
            "Alice \"A\"\n12:3",
            ["admin", "", "r:w", "ünï"],
        );
        let s = session(alice.clone());
        let hashed = HashedId::of(s.id());
        let raw = encode(&s, &hashed);
        let decoded = decode(&raw).unwrap();
        assert_eq!(decoded.digest, s.id().digest());
        assert_eq!(&decoded.check[..], hashed.check.as_bytes());
        let back = decode_for(s.id(), &hashed, &raw).unwrap();
        let other = SessionId::generate();
        assert!(decode_for(&other, &HashedId::of(&other), &raw).is_none());
        assert!(back.identity().same_as(&alice));
        assert_eq!(back.identity().roles().as_slice(), alice.roles().as_slice());
        assert_eq!(back.created_at(), s.created_at());
        assert_eq!(back.last_access(), s.last_access());
        assert_eq!(back.deadline(), s.deadline());
        assert_eq!(back.idle_timeout(), s.idle_timeout());
    }

    #[test]
    fn header_offsets_match_scripts() {
        let s = session(Identity::new("bob", "Bob", ["x"]));
        let hashed = HashedId::of(s.id());
        let raw = encode(&s, &hashed);
        let text = std::str::from_utf8(&raw).unwrap();
        // Lua's 1-based string.sub(v, a, b) is text[a-1..b].
        assert_eq!(&text[0..3], "v2 ");
        assert_eq!(&text[3..19], "0001700000000500"); // last (SETRANGE offset 3)
        assert_eq!(&text[20..36], "0001700000000000"); // created
        assert_eq!(&text[37..53], "0001700086400000"); // deadline
        assert_eq!(&text[54..70], "0000000001800000"); // idle
        assert_eq!(&text[71..103], hashed.check); // check at Lua 72..103
        assert_eq!(&text[104..120], format!("{:016x}", s.id().digest()));
        assert_eq!(&text[120..121], "\n");
        assert_eq!(&text[121..126], "3:bob"); // owner at Lua position 122
    }

    #[test]
    fn undecodable_values_are_errors_not_panics() {
        let s = session(Identity::new("a", "A", ["r"]));
        let good = encode(&s, &HashedId::of(s.id()));
        assert!(decode(&good).is_ok());
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"v2 whatever".to_vec(),
            b"{\"json\":true}".to_vec(),
            good[..HEADER_LEN].to_vec(),
            [&good[..], b"x"].concat(),
        ];
        for cut in 0..good.len() {
            cases.push(good[..cut].to_vec());
        }
        let mut bad_digit = good.clone();
        bad_digit[5] = b'x';
        cases.push(bad_digit);
        let mut huge_len = good[..HEADER_LEN].to_vec();
        huge_len.extend_from_slice(b"99999999999999999999:");
        cases.push(huge_len);
        for case in cases {
            assert!(
                decode(&case).is_err(),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn later_versions_are_read_ignoring_what_they_add() {
        let s = session(Identity::new("a", "A", ["r"]));
        let v2 = encode(&s, &HashedId::of(s.id()));
        let mut v3 = v2.clone();
        v3[1] = b'3';
        v3[HEADER_LEN - 1] = b' ';
        v3.splice(HEADER_LEN..HEADER_LEN, b"new-field 42\n".iter().copied());
        v3.extend_from_slice(b"7:more:it");
        let back = decode(&v3).unwrap();
        assert_eq!(back.identity.id(), "a");
        assert_eq!(back.deadline, s.deadline());
        // Version 2 itself stays strict, and nothing before 2 is read.
        let mut v2_extra = v2.clone();
        v2_extra.extend_from_slice(b"x");
        assert!(decode(&v2_extra).is_err());
        let mut v1 = v2.clone();
        v1[1] = b'1';
        assert!(decode(&v1).is_err());
    }

    #[test]
    fn huge_durations_clamp_instead_of_overflowing() {
        let s = Session::new(
            SessionId::generate(),
            Identity::new("a", "A", ["r"]),
            Timestamp::from_millis(5),
            Duration::MAX,
            Duration::MAX,
        );
        let back = decode(&encode(&s, &HashedId::of(s.id()))).unwrap();
        assert_eq!(back.deadline, Timestamp::from_millis(MAX_SAFE));
        assert_eq!(back.idle, Duration::from_millis(MAX_SAFE));
        assert_eq!(ttl_millis(s.expires_at(), s.last_access()), MAX_SAFE);
    }
}
