//! Property tests of session id parsing: `SessionId::parse*` and
//! `SessionId::parse_adopted*` never panic, accept exactly their language
//! (checked against an independent oracle), round-trip, and never show a
//! whole id in `Debug`/`Display`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use http::HeaderValue;
use mcp_session::{InvalidSessionId, SessionId, MAX_ADOPTED_ID_LEN, SESSION_ID_HEX_LEN};
use proptest::prelude::*;

/// The minted-id language: exactly 64 characters of `[0-9a-f]`.
fn oracle_minted(bytes: &[u8]) -> bool {
    bytes.len() == 64
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The adopted-id language: 1..=128 visible ASCII characters (0x21..=0x7E).
/// (Every minted id is in it too.)
fn oracle_adopted(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

fn hash_of(id: &SessionId) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Byte strings biased towards the interesting neighbourhood: near-valid
/// hex ids (one byte changed, wrong length, uppercase), visible ASCII, and
/// arbitrary bytes including control and non-ASCII bytes.
fn id_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let hex = prop::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), 60..=68);
    let mutated_hex = (
        prop::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), 64),
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(mut v, i, b)| {
            let i = i.index(v.len());
            v[i] = b;
            v
        });
    let visible = prop::collection::vec(0x21u8..=0x7e, 0..=140);
    let near_visible = prop::collection::vec(0x00u8..=0x80, 0..=140);
    let arbitrary = prop::collection::vec(any::<u8>(), 0..=300);
    prop_oneof![hex, mutated_hex, visible, near_visible, arbitrary]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn parse_bytes_accepts_exactly_64_lowercase_hex(bytes in id_like_bytes()) {
        let parsed = SessionId::parse_bytes(&bytes);
        prop_assert_eq!(parsed.is_ok(), oracle_minted(&bytes), "{:?}", bytes);
        match parsed {
            Ok(id) => {
                prop_assert!(id.is_minted());
                prop_assert_eq!(id.reveal().into_bytes(), bytes.clone());
                prop_assert_eq!(id.to_header_value().as_bytes().to_vec(), bytes.clone());
                prop_assert!(id.minted_bytes().is_some());
                prop_assert_eq!(hex::encode(id.minted_bytes().unwrap()).into_bytes(), bytes.clone());
            }
            Err(InvalidSessionId::Length(n)) => {
                prop_assert_eq!(n, bytes.len());
                prop_assert_ne!(n, SESSION_ID_HEX_LEN);
            }
            Err(InvalidSessionId::Character) => prop_assert_eq!(bytes.len(), SESSION_ID_HEX_LEN),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn parse_adopted_bytes_accepts_exactly_bounded_visible_ascii(bytes in id_like_bytes()) {
        let parsed = SessionId::parse_adopted_bytes(&bytes);
        prop_assert_eq!(parsed.is_ok(), oracle_adopted(&bytes), "{:?}", bytes);
        if let Ok(id) = parsed {
            // Minted-form strings normalise to minted ids, equal to the strict parse.
            prop_assert_eq!(id.is_minted(), oracle_minted(&bytes));
            if id.is_minted() {
                let strict = SessionId::parse_bytes(&bytes).unwrap();
                prop_assert_eq!(hash_of(&strict), hash_of(&id));
                prop_assert_eq!(strict, id.clone());
            } else {
                prop_assert!(id.minted_bytes().is_none());
            }
            prop_assert_eq!(id.reveal().into_bytes(), bytes.clone());
            prop_assert_eq!(id.to_header_value().as_bytes().to_vec(), bytes.clone());
            // Round trip through the header value and through the text.
            let again = SessionId::parse_adopted_bytes(id.to_header_value().as_bytes()).unwrap();
            prop_assert_eq!(&again, &id);
            prop_assert_eq!(SessionId::parse_adopted(&id.reveal()).unwrap(), id);
        } else {
            prop_assert!(bytes.is_empty() || bytes.len() > MAX_ADOPTED_ID_LEN
                || bytes.iter().any(|b| !(0x21..=0x7e).contains(b)));
        }
    }

    #[test]
    fn str_parsers_never_panic_and_agree_with_byte_parsers(text in any::<String>()) {
        prop_assert_eq!(SessionId::parse(&text), SessionId::parse_bytes(text.as_bytes()));
        prop_assert_eq!(
            SessionId::parse_adopted(&text),
            SessionId::parse_adopted_bytes(text.as_bytes())
        );
        prop_assert_eq!(SessionId::parse(&text).is_ok(), oracle_minted(text.as_bytes()));
        prop_assert_eq!(SessionId::parse_adopted(&text).is_ok(), oracle_adopted(text.as_bytes()));
    }

    #[test]
    fn header_values_from_the_wire_parse_like_their_bytes(bytes in id_like_bytes()) {
        // What a server hands the layer: only bytes `http` accepts in a header value.
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            prop_assert_eq!(SessionId::parse_bytes(value.as_bytes()).is_ok(), oracle_minted(&bytes));
            prop_assert_eq!(
                SessionId::parse_adopted_bytes(value.as_bytes()).is_ok(),
                oracle_adopted(&bytes)
            );
        }
    }

    #[test]
    fn minted_round_trip(seed in any::<[u8; 32]>()) {
        let text = hex::encode(seed);
        let id = SessionId::parse(&text).unwrap();
        prop_assert_eq!(id.minted_bytes().unwrap(), &seed);
        prop_assert_eq!(id.reveal(), text.clone());
        prop_assert_eq!(SessionId::parse_adopted(&text).unwrap(), id.clone());
        // Uppercase is a different language: refused by the strict parser,
        // adopted (as a distinct, non-minted id) only if it has a letter.
        let upper = text.to_uppercase();
        if upper != text {
            prop_assert_eq!(SessionId::parse(&upper), Err(InvalidSessionId::Character));
            let adopted = SessionId::parse_adopted(&upper).unwrap();
            prop_assert!(!adopted.is_minted());
            prop_assert_ne!(adopted, id);
        }
    }

    #[test]
    fn debug_and_display_never_show_a_whole_id(bytes in prop::collection::vec(0x21u8..=0x7e, 16..=128)) {
        let id = SessionId::parse_adopted_bytes(&bytes).unwrap();
        let whole = id.reveal();
        for shown in [format!("{id:?}"), format!("{id}")] {
            prop_assert!(!shown.contains(&whole), "{} shows {}", shown, whole);
            // Not even half of it.
            prop_assert!(!shown.contains(&whole[..whole.len() / 2]), "{} shows half of {}", shown, whole);
        }
    }
}

#[test]
fn generated_ids_parse_back() {
    for _ in 0..1_000 {
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(&id.reveal()).unwrap(), id);
        assert_eq!(SessionId::parse_adopted(&id.reveal()).unwrap(), id);
        assert!(!format!("{id:?}").contains(&id.reveal()[..16]));
    }
}
