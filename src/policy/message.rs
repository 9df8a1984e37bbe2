//! Reading a JSON-RPC request body for what the policy needs: each
//! message's `id`, `method` and `params.name` / `params.uri`. One pass, no
//! tree: every other member is skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One JSON-RPC message of a request body, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// The `id` (`None`: a notification, or a response).
    pub id: Option<Value>,
    /// The `method` (`None`: a response from the client).
    pub method: Option<Cow<'a, str>>,
    /// `params.name` or `params.uri` for the methods that name a target,
    /// when it is a string.
    pub name: Option<Cow<'a, str>>,
}

/// A request body: one message, or a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// One message.
    Single(Message<'a>),
    /// A JSON-RPC batch (allowed by 2025-03-26).
    Batch(Vec<Message<'a>>),
}

/// Why a body could not be read as JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON (or not UTF-8).
    Json,
    /// JSON, but not JSON-RPC messages the policy can decide: a repeated
    /// member, a batch that is empty or holds a non-object, a name-bearing
    /// method without a string name.
    Invalid(String),
}

/// Parses a request body.
pub fn parse(bytes: &[u8]) -> Result<Body<'_>, BodyError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let body = if first == Some(&b'[') {
        let messages: Vec<Raw<'_>> = serde_json::from_slice(bytes).map_err(map_err)?;
        if messages.is_empty() {
            return Err(BodyError::Invalid("empty JSON-RPC batch".into()));
        }
        Body::Batch(
            messages
                .into_iter()
                .map(Raw::finish)
                .collect::<Result<_, _>>()?,
        )
    } else {
        let raw: Raw<'_> = serde_json::from_slice(bytes).map_err(map_err)?;
        Body::Single(raw.finish()?)
    };
    Ok(body)
}

fn map_err(e: serde_json::Error) -> BodyError {
    match e.classify() {
        serde_json::error::Category::Data => BodyError::Invalid(e.to_string()),
        _ => BodyError::Json,
    }
}

struct Raw<'a> {
    id: Option<Value>,
    method: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'a> Raw<'a> {
    fn finish(self) -> Result<Message<'a>, BodyError> {
        let name = match self.method.as_deref() {
            Some("tools/call" | "prompts/get") => Some(self.name),
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                Some(self.uri)
            }
            _ => None,
        };
        let name = match name {
            Some(Some(name)) => Some(name),
            // Subscriptions were removed in 2026-07-28: such a request goes
            // on for the server to answer (`-32601`); rules on resource
            // URIs cannot match it, so it is decided by method alone.
            Some(None)
                if matches!(
                    self.method.as_deref(),
                    Some("resources/subscribe" | "resources/unsubscribe")
                ) =>
            {
                None
            }
            Some(None) => {
                let method = self.method.as_deref().unwrap_or_default();
                let key = if method.starts_with("resources/") {
                    "uri"
                } else {
                    "name"
                };
                return Err(BodyError::Invalid(format!(
                    "{method} without a string params.{key}"
                )));
            }
            None => None,
        };
        Ok(Message {
            id: self.id,
            method: self.method,
            name,
        })
    }
}

/// A string, borrowed from the body when it has no escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, or anything else (skipped).
pub(crate) struct MaybeStr<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `params`: an object (its `name` and `uri` kept), or anything else.
#[derive(Default)]
struct Params<'a> {
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON-RPC params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = Params::default();
                let (mut seen_name, mut seen_uri) = (false, false);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key.0 {
                        "name" => {
                            if std::mem::replace(&mut seen_name, true) {
                                return Err(de::Error::duplicate_field("params.name"));
                            }
                            params.name = map.next_value::<MaybeStr<'de>>()?.0;
                        }
                        "uri" => {
                            if std::mem::replace(&mut seen_uri, true) {
                                return Err(de::Error::duplicate_field("params.uri"));
                            }
                            params.uri = map.next_value::<MaybeStr<'de>>()?.0;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = Raw {
                    id: None,
                    method: None,
                    name: None,
                    uri: None,
                };
                let (mut seen_id, mut seen_method, mut seen_params) = (false, false, false);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key.0 {
                        "id" => {
                            if std::mem::replace(&mut seen_id, true) {
                                return Err(de::Error::duplicate_field("id"));
                            }
                            raw.id = Some(map.next_value::<Value>()?);
                        }
                        "method" => {
                            if std::mem::replace(&mut seen_method, true) {
                                return Err(de::Error::duplicate_field("method"));
                            }
                            raw.method = Some(map.next_value::<Str<'de>>()?.0);
                        }
                        "params" => {
                            if std::mem::replace(&mut seen_params, true) {
                                return Err(de::Error::duplicate_field("params"));
                            }
                            let params = map.next_value::<Params<'de>>()?;
                            raw.name = params.name;
                            raw.uri = params.uri;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes an `Mcp-Name`/`Mcp-Method` header value: verbatim, or the
/// `=?base64?…?=` form (standard alphabet, canonical, UTF-8). `None` when
/// the value is not UTF-8 or the encoded form is malformed: such a header
/// never matches a body.
pub fn decode_header(value: &[u8]) -> Option<Cow<'_, str>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(value).ok()?;
    match text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        None => Some(Cow::Borrowed(text)),
        Some(payload) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_batch_and_errors() {
        let b = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{"name":1},"name":"echo"}}"#).unwrap();
        assert_eq!(
            b,
            Body::Single(Message {
                id: Some(7.into()),
                method: Some("tools/call".into()),
                name: Some("echo".into())
            })
        );
        let b = parse(br#"[{"id":"a","method":"resources/read","params":{"uri":"file:///x"}},{"method":"notifications/x"}]"#).unwrap();
        let Body::Batch(m) = b else { panic!() };
        assert_eq!(m[0].name.as_deref(), Some("file:///x"));
        assert_eq!(m[1].id, None);
        assert_eq!(parse(b"{"), Err(BodyError::Json));
        assert!(matches!(parse(b"[]"), Err(BodyError::Invalid(_))));
        // A subscription without a URI (removed in 2026-07-28) goes on to
        // the server; a call without a name does not.
        let Ok(Body::Single(m)) =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}"#)
        else {
            panic!("a subscribe without a uri parses");
        };
        assert!(m.name.is_none());
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(parse(b"[1]"), Err(BodyError::Invalid(_))));
        assert!(matches!(
            parse(br#"{"method":"a","method":"b"}"#),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"method":"tools/call","params":{"name":"a","name":"b"}}"#),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"method":"tools/call","params":{"name":3}}"#),
            Err(BodyError::Invalid(_))
        ));
        // escaped names are decoded
        let Body::Single(m) =
            parse(br#"{"method":"tools/call","params":{"name":"a\u0062"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.name.as_deref(), Some("ab"));
        // other methods may carry any params
        assert!(parse(br#"{"id":1,"method":"x","params":[1,2]}"#).is_ok());
    }

    #[test]
    fn header_decoding() {
        assert_eq!(decode_header(b"echo").as_deref(), Some("echo"));
        assert_eq!(
            decode_header(b"=?base64?w6ljaG8=?=").as_deref(),
            Some("\u{e9}cho")
        );
        assert_eq!(decode_header(b"=?base64?!!?="), None);
        assert_eq!(decode_header(b"=?base64?w6ljaG9=?="), None); // non-canonical
    }
}
