//! Reading what a request is, from its headers (and, for a POST without a
//! session id, its body): which protocol era, which session.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::rejection::Rejection;
use super::IdMode;
use crate::SessionId;

/// `Mcp-Session-Id` (header names are case-insensitive; `http` stores them lowercase).
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The first protocol revision without sessions (SEP-2567).
pub const SESSIONLESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// Which protocol era a request without a session id claims, by its
/// `MCP-Protocol-Version` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// No version header, or one before 2026-07-28.
    Handshake,
    /// 2026-07-28 or a later revision.
    Sessionless,
}

/// What the headers say about a request.
#[derive(Debug)]
pub(crate) enum HeaderVerdict {
    /// Carries a well-formed session id.
    Session(SessionId),
    /// A sessionless-era (2026-07-28+) request other than a POST: pass it
    /// through.
    Sessionless,
    /// A POST without a session id: its body decides, in either era (an
    /// `initialize` is a handshake whatever version header it carries).
    InspectBody(Era),
    /// Anything else without a session id (GET stream, DELETE, …).
    Missing,
}

pub(crate) fn classify_headers(
    method: &Method,
    headers: &HeaderMap,
    mode: IdMode,
) -> Result<HeaderVerdict, Rejection> {
    let mut values = headers.get_all(MCP_SESSION_ID).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(Rejection::RepeatedSessionId);
        }
        let parsed = match mode {
            IdMode::Mint => SessionId::parse_bytes(value.as_bytes()),
            IdMode::Adopt => SessionId::parse_adopted_bytes(value.as_bytes()),
        };
        return parsed
            .map(HeaderVerdict::Session)
            .map_err(Rejection::MalformedSessionId);
    }
    let era = if is_sessionless_version(headers) {
        Era::Sessionless
    } else {
        Era::Handshake
    };
    Ok(match (method == Method::POST, era) {
        (true, era) => HeaderVerdict::InspectBody(era),
        (false, Era::Sessionless) => HeaderVerdict::Sessionless,
        (false, Era::Handshake) => HeaderVerdict::Missing,
    })
}

/// Whether `MCP-Protocol-Version` names 2026-07-28 or a later revision.
/// Revisions are `YYYY-MM-DD` dates of real days, so byte order is date order.
pub(crate) fn is_sessionless_version(headers: &HeaderMap) -> bool {
    headers.get(MCP_PROTOCOL_VERSION).is_some_and(|v| {
        let v = v.as_bytes();
        is_calendar_date(v) && v >= SESSIONLESS_PROTOCOL_VERSION.as_bytes()
    })
}

/// `YYYY-MM-DD` naming a day that exists (`2026-02-29` and `2026-99-99` do not).
fn is_calendar_date(v: &[u8]) -> bool {
    let shape = v.len() == 10
        && v.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return false;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (number(&v[..4]), number(&v[5..7]), number(&v[8..]));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// What the body of a POST without a session id is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyVerdict {
    /// An `initialize` request.
    Initialize,
    /// `server/discover`: the sessionless probe.
    Discover,
    /// Any other JSON-RPC message, a batch without `initialize`, or a JSON
    /// value that is not an object: in the handshake era it needs a session.
    NeedsSession,
    /// A batch (array) with an `initialize` in it, which the specification
    /// forbids: in the handshake era it needs a session like any batch; in
    /// the sessionless era it is refused rather than passed on (a
    /// batch-capable inner server would create a session the layer never
    /// sees).
    BatchWithInitialize,
}

/// Reads the body's top-level `method` in one pass: no tree is built, every
/// other member is skipped (validated, not stored), so memory stays bounded
/// by the body itself. Invalid JSON (or UTF-8) is refused.
pub(crate) fn classify_body(body: &Bytes) -> Result<BodyVerdict, Rejection> {
    // UTF-8 first, for the whole body: skipped strings are not decoded.
    let text = std::str::from_utf8(body).map_err(|_| Rejection::InvalidJson)?;
    let message: Message = serde_json::from_str(text).map_err(|_| Rejection::InvalidJson)?;
    match message {
        Message::Object(MethodName::Initialize) => Ok(BodyVerdict::Initialize),
        Message::Object(MethodName::Discover) => Ok(BodyVerdict::Discover),
        Message::Object(MethodName::Other) | Message::Other => Ok(BodyVerdict::NeedsSession),
        // Which `method` the inner server would read is anyone's guess.
        Message::AmbiguousMethod => Err(Rejection::AmbiguousMethod),
        Message::Batch { initialize: true } => Ok(BodyVerdict::BatchWithInitialize),
        Message::Batch { initialize: false } => Ok(BodyVerdict::NeedsSession),
    }
}

/// A JSON value read as a JSON-RPC message, keeping only what the layer needs.
enum Message {
    /// An object, by its top-level `method` (`Other` when absent).
    Object(MethodName),
    /// An object with more than one top-level `method` member.
    AmbiguousMethod,
    /// An array: whether any element (at any depth) is an `initialize`.
    Batch { initialize: bool },
    /// A string, number, boolean or null.
    Other,
}

/// A `method` member's value.
enum MethodName {
    Initialize,
    Discover,
    Other,
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
                let mut method = None;
                let mut repeated = false;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Method if method.is_none() => method = Some(map.next_value()?),
                        Key::Method => {
                            repeated = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(if repeated {
                    Message::AmbiguousMethod
                } else {
                    Message::Object(method.unwrap_or(MethodName::Other))
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message, A::Error> {
                let mut initialize = false;
                while let Some(element) = seq.next_element::<Message>()? {
                    initialize |= matches!(
                        element,
                        Message::Object(MethodName::Initialize)
                            | Message::Batch { initialize: true }
                    );
                }
                Ok(Message::Batch { initialize })
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Message, E> {
                Ok(Message::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Message, E> {
                Ok(Message::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Message, E> {
                Ok(Message::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Message, E> {
                Ok(Message::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Message, E> {
                Ok(Message::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Message, E> {
                Ok(Message::Other)
            }
        }
        deserializer.deserialize_any(MessageVisitor)
    }
}

/// A top-level member name; escapes are decoded (`"meth\u006fd"` is `method`).
enum Key {
    Method,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(if key == "method" {
                    Key::Method
                } else {
                    Key::Other
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MethodVisitor;
        impl<'de> Visitor<'de> for MethodVisitor {
            type Value = MethodName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a method name")
            }

            fn visit_str<E: de::Error>(self, method: &str) -> Result<MethodName, E> {
                Ok(match method {
                    "initialize" => MethodName::Initialize,
                    "server/discover" => MethodName::Discover,
                    _ => MethodName::Other,
                })
            }

            // Not a string: not a method this layer acts on; skipped.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MethodName, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MethodName::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MethodName, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MethodName::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MethodName, E> {
                Ok(MethodName::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MethodName, E> {
                Ok(MethodName::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MethodName, E> {
                Ok(MethodName::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MethodName, E> {
                Ok(MethodName::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<MethodName, E> {
                Ok(MethodName::Other)
            }
        }
        deserializer.deserialize_any(MethodVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn session_header_is_case_insensitive_and_strict() {
        let id = SessionId::generate();
        let h = headers(&[("MCP-SESSION-ID", id.reveal().as_bytes())]);
        match classify_headers(&Method::POST, &h, IdMode::Mint).unwrap() {
            HeaderVerdict::Session(got) => assert_eq!(got, id),
            other => panic!("{other:?}"),
        }
        let h = headers(&[("mcp-session-id", b"nope")]);
        assert!(matches!(
            classify_headers(&Method::POST, &h, IdMode::Mint),
            Err(Rejection::MalformedSessionId(_))
        ));
        // Adopt mode accepts a UUID; mint mode does not.
        let h = headers(&[("mcp-session-id", b"6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e")]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Mint).is_err());
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_ok());
        let h = headers(&[("mcp-session-id", b"a"), ("mcp-session-id", b"b")]);
        assert_eq!(
            classify_headers(&Method::POST, &h, IdMode::Adopt).unwrap_err(),
            Rejection::RepeatedSessionId
        );
        let h = headers(&[("mcp-session-id", b"")]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_err());
        let h = headers(&[("mcp-session-id", "café".as_bytes())]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_err());
    }

    #[test]
    fn eras_are_told_apart_by_protocol_version() {
        for (version, sessionless) in [
            ("2026-07-28", true),
            ("2027-01-01", true),
            ("2025-11-25", false),
            ("2025-06-18", false),
            ("garbage!!!", false),
            ("2026-07-2x", false),
            // Real dates only.
            ("2026-99-99", false),
            ("2026-13-01", false),
            ("2026-00-10", false),
            ("2026-07-00", false),
            ("2026-07-32", false),
            ("2026-09-31", false),
            ("2027-02-29", false),
            ("2028-02-29", true),
            ("2100-02-29", false),
            ("2400-02-29", true),
            ("9999-12-31", true),
            ("2026-12-31", true),
        ] {
            let h = headers(&[("mcp-protocol-version", version.as_bytes())]);
            assert_eq!(is_sessionless_version(&h), sessionless, "{version}");
        }
        let h = headers(&[("mcp-protocol-version", b"2026-07-28")]);
        // A POST's body decides in either era (it may be an initialize).
        assert!(matches!(
            classify_headers(&Method::POST, &h, IdMode::Mint).unwrap(),
            HeaderVerdict::InspectBody(Era::Sessionless)
        ));
        assert!(matches!(
            classify_headers(&Method::GET, &h, IdMode::Mint).unwrap(),
            HeaderVerdict::Sessionless
        ));
        assert!(matches!(
            classify_headers(&Method::GET, &HeaderMap::new(), IdMode::Mint).unwrap(),
            HeaderVerdict::Missing
        ));
        assert!(matches!(
            classify_headers(&Method::POST, &HeaderMap::new(), IdMode::Mint).unwrap(),
            HeaderVerdict::InspectBody(Era::Handshake)
        ));
    }

    #[test]
    fn bodies_are_classified() {
        let b = |s: &str| Bytes::from(s.to_string());
        assert_eq!(
            classify_body(&b(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
            ))
            .unwrap(),
            BodyVerdict::Initialize
        );
        assert_eq!(
            classify_body(&b(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)).unwrap(),
            BodyVerdict::Discover
        );
        assert_eq!(
            classify_body(&b(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
        assert_eq!(
            classify_body(&b(r#"[{"method":"initialize"}]"#)).unwrap(),
            BodyVerdict::BatchWithInitialize
        );
        assert_eq!(classify_body(&b("{")).unwrap_err(), Rejection::InvalidJson);
        assert_eq!(
            classify_body(&Bytes::from_static(b"\xff\xfe")).unwrap_err(),
            Rejection::InvalidJson
        );
        assert_eq!(
            classify_body(&b(r#"{"method":5}"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
        // Escapes in the member name and value are decoded.
        assert_eq!(
            classify_body(&b(r#"{"meth\u006fd":"initi\u0061lize"}"#)).unwrap(),
            BodyVerdict::Initialize
        );
        // Two `method` members: the inner server might read either one.
        assert_eq!(
            classify_body(&b(r#"{"method":"tools/list","method":"initialize"}"#)).unwrap_err(),
            Rejection::AmbiguousMethod
        );
        assert_eq!(
            classify_body(&b(r#"[{"method":"tools/list"},{"method":"initialize"}]"#)).unwrap(),
            BodyVerdict::BatchWithInitialize
        );
        // Only the top level counts.
        assert_eq!(
            classify_body(&b(r#"{"params":{"method":"initialize"}}"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
        assert_eq!(classify_body(&b("")).unwrap_err(), Rejection::InvalidJson);
        assert_eq!(
            classify_body(&b(r#"{"method":"initialize"} x"#)).unwrap_err(),
            Rejection::InvalidJson
        );
        // Invalid UTF-8 inside a skipped string is still invalid.
        assert_eq!(
            classify_body(&Bytes::from_static(
                b"{\"method\":\"initialize\",\"x\":\"\xff\"}"
            ))
            .unwrap_err(),
            Rejection::InvalidJson
        );
        // Deep nesting: skipped iteratively inside a member (serde_json
        // keeps a bracket stack, no recursion); refused at its depth limit
        // where the layer itself descends (batches). Never a stack overflow.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(classify_body(&b(&deep)).unwrap(), BodyVerdict::NeedsSession);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            classify_body(&b(&deep)).unwrap_err(),
            Rejection::InvalidJson
        );
    }

    /// The previous classifier: a `serde_json::Value` tree, then a second
    /// parse for `method`.
    fn classify_body_by_tree(body: &Bytes) -> Result<BodyVerdict, Rejection> {
        #[derive(serde::Deserialize)]
        struct Probe<'a> {
            #[serde(borrow, default)]
            method: Option<std::borrow::Cow<'a, str>>,
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Rejection::InvalidJson)?;
        if !value.is_object() {
            return Ok(BodyVerdict::NeedsSession);
        }
        let probe: Probe<'_> = serde_json::from_slice(body).unwrap_or(Probe { method: None });
        Ok(match probe.method.as_deref() {
            Some("initialize") => BodyVerdict::Initialize,
            Some("server/discover") => BodyVerdict::Discover,
            _ => BodyVerdict::NeedsSession,
        })
    }

    /// Same answers as the tree-building classifier (a batch with an
    /// `initialize` aside, which it called `NeedsSession`: the handshake era
    /// still answers it so; and a repeated `method`, tested above).
    #[test]
    fn one_pass_agrees_with_the_tree() {
        let corpus = [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"a":[1,2,{"b":null}]}}"#,
            r#"{"params":{},"method":"server/discover","id":"x"}"#,
            r#"{"method":"notifications/initialized"}"#,
            r#"{"method":null}"#,
            r#"{"method":["initialize"]}"#,
            r#"{"method":{"initialize":true}}"#,
            r#"{"method":"initialize\u0000"}"#,
            r#"{"id":1}"#,
            r#"{}"#,
            r#"[]"#,
            r#"[{"method":"tools/list"}]"#,
            r#"[{"method":"initialize"}, 1, [{"method":"initialize"}]]"#,
            r#""initialize""#,
            "42",
            "-1.5e3",
            "true",
            "null",
            " \n{\"method\" : \"initialize\" }\t",
            r#"{"method":"initialize",}"#,
            r#"{"method":"initialize""#,
            r#"{"method" "initialize"}"#,
            r#"{'method':'initialize'}"#,
            r#"{"method":"initialize"}{}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":01}"#,
            r#"{"a":tru}"#,
            "{\"a\":\"\u{1}\"}",
            "\u{feff}{}",
            "",
            "   ",
        ];
        for text in corpus {
            let body = Bytes::from(text.to_string());
            let verdict = match classify_body(&body) {
                Ok(BodyVerdict::BatchWithInitialize) => Ok(BodyVerdict::NeedsSession),
                other => other,
            };
            assert_eq!(verdict, classify_body_by_tree(&body), "{text:?}");
        }
    }
}
