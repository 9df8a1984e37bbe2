//! Session ids: generation, strict parsing and redacted display.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

use crate::error::InvalidSessionId;

/// Number of random bytes in a minted session id.
pub const SESSION_ID_BYTES: usize = 32;
/// Length of a minted session id in its textual (lowercase hex) form.
pub const SESSION_ID_HEX_LEN: usize = SESSION_ID_BYTES * 2;
/// Longest id accepted from an inner server in adopt mode (see [`SessionId::parse_adopted`]).
pub const MAX_ADOPTED_ID_LEN: usize = 128;

/// How many characters of an id `Debug`/`Display` show. Enough to correlate log
/// lines, far too few to hijack a session.
const REDACTED_PREFIX: usize = 8;

/// An MCP session id.
///
/// Ids minted by this crate are 32 bytes from the operating system's CSPRNG,
/// rendered as 64 lowercase hex characters. In adopt mode the layer may also
/// track an id that the inner server minted (for example rmcp's UUIDs); those
/// are accepted by a bounded visible-ASCII rule.
///
/// `Debug` and `Display` show only a short prefix, so logging a `SessionId`
/// never leaks a usable credential. Use [`SessionId::reveal`] or
/// [`SessionId::to_header_value`] when the whole id is really needed.
///
/// ```
/// use mcp_session::SessionId;
///
/// let id = SessionId::generate();
/// let text = id.reveal();
/// assert_eq!(text.len(), 64);
/// assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
/// assert_eq!(SessionId::parse(&text).unwrap(), id);
/// assert!(!format!("{id:?}").contains(&text));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Minted([u8; SESSION_ID_BYTES]),
    /// Never holds a string that would parse as `Minted`, so equal ids always
    /// have equal representations.
    Adopted(Arc<str>),
}

impl SessionId {
    /// A fresh id: 32 bytes straight from the operating system's CSPRNG
    /// (`getrandom(2)` on Linux), one system call per id.
    ///
    /// Not from a user-space generator seeded once: such a generator's state
    /// is copied by `fork`, so parent and child would mint the same ids.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes at all (on Linux
    /// only before the kernel's pool is first initialized, long before a
    /// server runs). There is no safe fallback for a credential-grade id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        if let Err(error) = getrandom::fill(&mut bytes) {
            panic!("the operating system's random number generator failed: {error}");
        }
        SessionId(Repr::Minted(bytes))
    }

    /// Parses a minted id strictly: exactly 64 lowercase hex characters.
    ///
    /// ```
    /// use mcp_session::SessionId;
    /// assert!(SessionId::parse("not-an-id").is_err());
    /// assert!(SessionId::parse(&"A".repeat(64)).is_err()); // uppercase refused
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidSessionId> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`SessionId::parse`] over raw bytes (for example a header value).
    pub fn parse_bytes(text: &[u8]) -> Result<Self, InvalidSessionId> {
        if text.len() != SESSION_ID_HEX_LEN {
            return Err(InvalidSessionId::Length(text.len()));
        }
        // This runs on every request: eight characters at a time in a
        // 64-bit word, branch-free, one validity check at the end.
        let mut bytes = [0u8; SESSION_ID_BYTES];
        let mut invalid = 0u64;
        for (out, chunk) in bytes.chunks_exact_mut(4).zip(text.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let (decoded, bad) = decode_hex_word(u64::from_le_bytes(word));
            out.copy_from_slice(&decoded.to_le_bytes());
            invalid |= bad;
        }
        if invalid != 0 {
            return Err(InvalidSessionId::Character);
        }
        Ok(SessionId(Repr::Minted(bytes)))
    }

    /// Parses an id minted by someone else (adopt mode): 1 to
    /// [`MAX_ADOPTED_ID_LEN`] visible ASCII characters (0x21..=0x7E), the
    /// character set the MCP specification allows. A string that is also a
    /// valid minted id parses as one.
    ///
    /// ```
    /// use mcp_session::SessionId;
    /// let id = SessionId::parse_adopted("6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e").unwrap();
    /// assert_eq!(id.reveal(), "6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e");
    /// assert!(SessionId::parse_adopted("has space").is_err());
    /// ```
    pub fn parse_adopted(text: &str) -> Result<Self, InvalidSessionId> {
        Self::parse_adopted_bytes(text.as_bytes())
    }

    /// [`SessionId::parse_adopted`] over raw bytes.
    pub fn parse_adopted_bytes(text: &[u8]) -> Result<Self, InvalidSessionId> {
        if let Ok(minted) = Self::parse_bytes(text) {
            return Ok(minted);
        }
        if text.is_empty() || text.len() > MAX_ADOPTED_ID_LEN {
            return Err(InvalidSessionId::Length(text.len()));
        }
        if !text.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(InvalidSessionId::Character);
        }
        // Checked above: every byte is ASCII.
        let text = std::str::from_utf8(text).map_err(|_| InvalidSessionId::Character)?;
        Ok(SessionId(Repr::Adopted(Arc::from(text))))
    }

    /// Whether this id was minted by this crate (as opposed to adopted).
    pub fn is_minted(&self) -> bool {
        matches!(self.0, Repr::Minted(_))
    }

    /// The whole id as text. This is a bearer secret: do not log it.
    pub fn reveal(&self) -> String {
        match &self.0 {
            Repr::Minted(bytes) => hex::encode(bytes),
            Repr::Adopted(text) => text.to_string(),
        }
    }

    /// The whole id as an `Mcp-Session-Id` header value.
    pub fn to_header_value(&self) -> HeaderValue {
        match &self.0 {
            Repr::Minted(bytes) => {
                let mut buf = [0u8; SESSION_ID_HEX_LEN];
                // Cannot fail: the buffer is exactly twice the input.
                let _ = hex::encode_to_slice(bytes, &mut buf);
                HeaderValue::from_bytes(&buf).expect("hex is a valid header value")
            }
            Repr::Adopted(text) => {
                HeaderValue::from_str(text).expect("adopted ids are visible ASCII")
            }
        }
    }

    /// A 64-bit digest of the id, the same in every process and release:
    /// how replicas name a session to each other (in
    /// [`ReplicaNotice::SessionEnded`](crate::ReplicaNotice::SessionEnded))
    /// without sending the id itself. It identifies, it does not
    /// authenticate: a digest is no use for reaching a session.
    ///
    /// ```
    /// use mcp_session::SessionId;
    /// let id = SessionId::parse_adopted("6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e").unwrap();
    /// assert_eq!(id.digest(), SessionId::parse_adopted(&id.reveal()).unwrap().digest());
    /// assert_ne!(id.digest(), SessionId::generate().digest());
    /// ```
    pub fn digest(&self) -> u64 {
        // FNV-1a over the textual id: stable, and the same for a minted id
        // whichever way it is held.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |byte: u8| {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        };
        match &self.0 {
            Repr::Minted(bytes) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for byte in bytes {
                    eat(HEX[usize::from(byte >> 4)]);
                    eat(HEX[usize::from(byte & 0xf)]);
                }
            }
            Repr::Adopted(text) => text.bytes().for_each(eat),
        }
        hash
    }

    /// The raw bytes of a minted id (`None` for adopted ids). Stores use this
    /// as a compact key.
    pub fn minted_bytes(&self) -> Option<&[u8; SESSION_ID_BYTES]> {
        match &self.0 {
            Repr::Minted(bytes) => Some(bytes),
            Repr::Adopted(_) => None,
        }
    }

    fn redacted_prefix(&self) -> String {
        match &self.0 {
            Repr::Minted(bytes) => hex::encode(&bytes[..REDACTED_PREFIX / 2]),
            Repr::Adopted(text) => text
                .chars()
                .take(REDACTED_PREFIX.min(text.len() / 4))
                .collect(),
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Decodes eight lowercase hex characters (a little-endian word) into four
/// bytes (a little-endian `u32`). The second value is non-zero if any
/// character is not a lowercase hex digit.
///
/// Each byte is range-checked by adding `0x80 - bound` and reading its top
/// bit; with every byte below `0x80` (checked too) no addition carries into
/// the next byte, and a word with a byte above that is refused whatever the
/// carries did.
fn decode_hex_word(x: u64) -> (u32, u64) {
    let at_least = |bound: u64| x.wrapping_add(ONES * (0x80 - bound)) & HIGH_BITS;
    let digit = at_least(0x30) & !at_least(0x3a);
    let letter = at_least(0x61) & !at_least(0x67);
    let invalid = (x & HIGH_BITS) | ((digit | letter) ^ HIGH_BITS);
    // '0'..'9' are 0x30..0x39 and 'a'..'f' 0x61..0x66: the low nibble, plus
    // 9 for letters.
    let nibbles = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Pairs of nibbles (first character high) into the low byte of each
    // 16-bit lane, then the four lane bytes side by side.
    const LANE_LOW: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = ((nibbles & LANE_LOW) << 4) | ((nibbles >> 8) & LANE_LOW);
    let halves = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    ((halves | (halves >> 16)) as u32, invalid)
}

impl std::hash::Hash for SessionId {
    /// Hashes all 32 bytes of a minted id through the store's keyed hasher.
    /// Folding them into one word first would be cheaper, but the fold is
    /// unkeyed: ids a client influences (adopt mode, `create_with_id`) could
    /// then be built to collide without knowing the hasher's key, and flood
    /// one bucket. `write` (not `[u8; 32]::hash`) skips the length prefix,
    /// which is constant here.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Minted(bytes) => state.write(bytes),
            Repr::Adopted(text) => text.hash(state),
        }
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.redacted_prefix())
    }
}

/// Shows a short prefix followed by `…`, never the whole id.
impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.redacted_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_64_lowercase_hex_and_unique() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = SessionId::generate();
            let text = id.reveal();
            assert_eq!(text.len(), 64);
            assert!(text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert_eq!(id.to_header_value().as_bytes(), text.as_bytes());
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn every_byte_at_every_position_is_judged_like_the_hex_crate() {
        let valid = SessionId::generate().reveal().into_bytes();
        for position in 0..valid.len() {
            for byte in 0..=255u8 {
                let mut text = valid.clone();
                text[position] = byte;
                let lowercase = matches!(byte, b'0'..=b'9' | b'a'..=b'f');
                match SessionId::parse_bytes(&text) {
                    Ok(id) => {
                        assert!(lowercase, "byte {byte:#04x} at {position} accepted");
                        let mut expected = [0u8; SESSION_ID_BYTES];
                        hex::decode_to_slice(&text, &mut expected).unwrap();
                        assert_eq!(id.minted_bytes(), Some(&expected));
                    }
                    Err(error) => {
                        assert!(!lowercase, "byte {byte:#04x} at {position} refused");
                        assert_eq!(error, InvalidSessionId::Character);
                    }
                }
            }
        }
    }

    #[test]
    fn hashing_agrees_with_equality() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let id = SessionId::generate();
        let again = SessionId::parse(&id.reveal()).unwrap();
        assert_eq!(state.hash_one(&id), state.hash_one(&again));
        let adopted = SessionId::parse_adopted("6f1c0b6e-0a52").unwrap();
        let adopted_again = SessionId::parse_adopted("6f1c0b6e-0a52").unwrap();
        assert_eq!(state.hash_one(&adopted), state.hash_one(&adopted_again));
        // Ids differing in any one byte land on different hashes (every
        // byte goes to the hasher).
        let bytes = *id.minted_bytes().unwrap();
        let text = |b: &[u8; SESSION_ID_BYTES]| hex::encode(b);
        for i in 0..SESSION_ID_BYTES {
            let mut other = bytes;
            other[i] ^= 1;
            let other = SessionId::parse(&text(&other)).unwrap();
            assert_ne!(state.hash_one(&id), state.hash_one(&other), "byte {i}");
        }
    }

    /// Flipping bit k of word 0 and bit (k - 17) mod 64 of word 1 left the
    /// old unkeyed fold (`w0 ^ w1.rotate_left(17) ^ ...`) unchanged, so such
    /// pairs collided under every key.
    #[test]
    fn collisions_need_the_hashers_key() {
        use std::hash::BuildHasher;
        let base = *SessionId::generate().minted_bytes().unwrap();
        let id = |b: &[u8; SESSION_ID_BYTES]| SessionId::parse(&hex::encode(b)).unwrap();
        for k in 0..64usize {
            let mut other = base;
            let j = (k + 64 - 17) % 64;
            other[k / 8] ^= 1 << (k % 8);
            other[8 + j / 8] ^= 1 << (j % 8);
            let state = std::collections::hash_map::RandomState::new();
            assert_ne!(
                state.hash_one(id(&base)),
                state.hash_one(id(&other)),
                "bit {k}"
            );
        }
    }

    #[test]
    fn strict_parse_round_trips_and_rejects() {
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(&id.reveal()).unwrap(), id);
        assert_eq!(SessionId::parse(""), Err(InvalidSessionId::Length(0)));
        assert_eq!(
            SessionId::parse(&"a".repeat(63)),
            Err(InvalidSessionId::Length(63))
        );
        assert_eq!(
            SessionId::parse(&"a".repeat(65)),
            Err(InvalidSessionId::Length(65))
        );
        assert_eq!(
            SessionId::parse(&"A".repeat(64)),
            Err(InvalidSessionId::Character)
        );
        assert_eq!(
            SessionId::parse(&"g".repeat(64)),
            Err(InvalidSessionId::Character)
        );
        let mut multibyte = "é".repeat(32);
        assert_eq!(multibyte.len(), 64);
        assert_eq!(
            SessionId::parse(&multibyte),
            Err(InvalidSessionId::Character)
        );
        multibyte.clear();
    }

    #[test]
    fn adopted_ids_follow_visible_ascii_rule_and_normalise_minted() {
        let minted = SessionId::generate();
        let again = SessionId::parse_adopted(&minted.reveal()).unwrap();
        assert!(again.is_minted());
        assert_eq!(again, minted);
        assert!(SessionId::parse_adopted("abc").is_ok());
        assert!(SessionId::parse_adopted("").is_err());
        assert!(SessionId::parse_adopted(&"x".repeat(129)).is_err());
        assert!(SessionId::parse_adopted("a\tb").is_err());
        assert!(SessionId::parse_adopted("a\u{7f}").is_err());
        assert!(SessionId::parse_adopted("caf\u{e9}").is_err());
    }

    #[test]
    fn debug_and_display_never_show_the_whole_id() {
        let id = SessionId::generate();
        let text = id.reveal();
        for shown in [format!("{id:?}"), format!("{id}")] {
            assert!(!shown.contains(&text));
            assert!(shown.contains(&text[..8]));
        }
        let adopted = SessionId::parse_adopted("6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e").unwrap();
        assert!(!format!("{adopted:?}").contains("1f8c3b1c2d4e"));
    }
}
