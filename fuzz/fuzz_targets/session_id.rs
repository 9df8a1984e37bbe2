//! Session id parsing (what the layer does with an `Mcp-Session-Id` header
//! value, and with an id an inner server minted in adopt mode): never
//! panics, accepts exactly its language, round-trips, never displays a
//! whole id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_session::SessionId;

fn minted_form(b: &[u8]) -> bool {
    b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn adoptable(b: &[u8]) -> bool {
    (1..=128).contains(&b.len()) && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

fuzz_target!(|data: &[u8]| {
    let strict = SessionId::parse_bytes(data);
    assert_eq!(strict.is_ok(), minted_form(data));
    let adopted = SessionId::parse_adopted_bytes(data);
    assert_eq!(adopted.is_ok(), adoptable(data));

    if let Ok(id) = &strict {
        assert!(id.is_minted());
        assert_eq!(id.reveal().as_bytes(), data);
        assert_eq!(adopted.as_ref().ok(), Some(id));
    }
    if let Ok(id) = &adopted {
        assert_eq!(id.is_minted(), strict.is_ok());
        assert_eq!(id.reveal().as_bytes(), data);
        let header = id.to_header_value();
        assert_eq!(header.as_bytes(), data);
        assert_eq!(
            SessionId::parse_adopted_bytes(header.as_bytes()).as_ref(),
            Ok(id)
        );
        if data.len() >= 16 {
            let whole = id.reveal();
            assert!(!format!("{id}").contains(&whole));
            assert!(!format!("{id:?}").contains(&whole));
        }
    }

    // The same bytes as a header value, as `http` (and so any server) accepts them.
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        assert_eq!(
            SessionId::parse_bytes(value.as_bytes()).is_ok(),
            strict.is_ok()
        );
    }
    // And as text, where the bytes are UTF-8.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(SessionId::parse(text).is_ok(), strict.is_ok());
        assert_eq!(SessionId::parse_adopted(text).is_ok(), adopted.is_ok());
    }
});
