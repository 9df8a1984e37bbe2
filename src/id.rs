//! Session ids: generation, strict parsing and redacted display.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use rand::RngCore;

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
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Minted([u8; SESSION_ID_BYTES]),
    /// Never holds a string that would parse as `Minted`, so equal ids always
    /// have equal representations.
    Adopted(Arc<str>),
}

impl SessionId {
    /// A fresh id: 32 bytes from the OS CSPRNG (via `rand`'s thread-local,
    /// OS-seeded ChaCha generator).
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
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
        // Branch-free over the 64 characters (this runs on every request):
        // a table lookup per character, one validity check at the end.
        let mut bytes = [0u8; SESSION_ID_BYTES];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let hi = LOWER_HEX_VALUE[usize::from(pair[0])];
            let lo = LOWER_HEX_VALUE[usize::from(pair[1])];
            invalid |= hi | lo;
            *byte = (hi << 4) | lo;
        }
        if invalid & NOT_HEX != 0 {
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

/// Marks a byte that is not a lowercase hex digit in [`LOWER_HEX_VALUE`]
/// (digit values use only the low four bits).
const NOT_HEX: u8 = 0x80;

/// The value of each byte as a lowercase hex digit, or [`NOT_HEX`].
const LOWER_HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

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
